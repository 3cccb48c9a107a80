//! Eligibility of a guarantee application under a policy.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{BorrowerCategory, BorrowerKind, DomainError, Money, NationalId, Policy, Rate};

/// The borrower's security to the centre (反担保), or the credit-community waiver.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CounterGuarantee {
    /// A person who guarantees the loan (保证人).
    Guarantor {
        #[schema(min_length = 1, max_length = 100)]
        name: String,
        national_id: NationalId,
    },
    /// A joint guarantee group (联保小组) of `members` borrowers.
    JointGuaranteeGroup {
        #[schema(minimum = 2, maximum = 100)]
        members: u32,
    },
    /// 抵押.
    Mortgage {
        #[schema(min_length = 1, max_length = 500)]
        description: String,
    },
    /// 质押.
    Pledge {
        #[schema(min_length = 1, max_length = 500)]
        description: String,
    },
    /// No counter-guarantee: the borrower lives in a certified credit community (免除反担保).
    CreditCommunityWaiver,
}

impl CounterGuarantee {
    /// The snake_case `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Guarantor { .. } => "guarantor",
            Self::JointGuaranteeGroup { .. } => "joint_guarantee_group",
            Self::Mortgage { .. } => "mortgage",
            Self::Pledge { .. } => "pledge",
            Self::CreditCommunityWaiver => "credit_community_waiver",
        }
    }

    /// True for the credit-community waiver.
    pub fn is_waiver(&self) -> bool {
        matches!(self, Self::CreditCommunityWaiver)
    }
}

/// Debug without personal data: a guarantor's name is shortened to its first character and the
/// id masked.
impl fmt::Debug for CounterGuarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Guarantor { name, national_id } => {
                let initial: String = name.chars().take(1).chain("*".chars()).collect();
                f.debug_struct("Guarantor")
                    .field("name", &initial)
                    .field("national_id", national_id)
                    .finish()
            }
            Self::JointGuaranteeGroup { members } => f
                .debug_struct("JointGuaranteeGroup")
                .field("members", members)
                .finish(),
            Self::Mortgage { description } => f
                .debug_struct("Mortgage")
                .field("description", description)
                .finish(),
            Self::Pledge { description } => f
                .debug_struct("Pledge")
                .field("description", description)
                .finish(),
            Self::CreditCommunityWaiver => f.write_str("CreditCommunityWaiver"),
        }
    }
}

/// What the rules need to know about an application, gathered by the caller (the database
/// knows about other loans and communities; this crate does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationFacts {
    pub kind: BorrowerKind,
    pub category: BorrowerCategory,
    /// Age in whole years on the decision date; `None` for a firm (or when unknown).
    pub age: Option<u32>,
    /// An employment certificate (再就业优惠证 / 就业失业登记证) number is on file.
    pub has_certificate: bool,
    /// Members of a partnership including the borrower; 1 otherwise.
    pub member_count: u32,
    pub principal: Money,
    pub term_months: u32,
    pub annual_rate: Rate,
    pub counter_guarantee: CounterGuarantee,
    /// The borrower's credit community is certified on the decision date.
    pub community_certified_on_decision_date: bool,
    /// The borrower already has a guaranteed loan that is not settled.
    pub has_unsettled_loan: bool,
}

/// Longest free-text description of a mortgage or pledge, in characters.
const MAX_DESCRIPTION_CHARS: usize = 500;
/// Longest guarantor name, in characters.
const MAX_NAME_CHARS: usize = 100;
/// Most members of a joint guarantee group (as of a partnership).
const MAX_GROUP_MEMBERS: u32 = 100;

/// Checks an application against `policy` on `decision_date`. Returns every problem at once;
/// each error names the field to fix. Rule codes: `policy_not_in_force`,
/// `unsettled_loan_exists`, `not_eligible`, `certificate_required`, `age_out_of_range`,
/// `amount_over_limit`, `term_over_maximum`, `rate_over_cap`, `waiver_not_allowed`.
pub fn check_application(
    policy: &Policy,
    app: &ApplicationFacts,
    decision_date: NaiveDate,
) -> Result<(), Vec<DomainError>> {
    let mut errors = Vec::new();
    let mut rule = |code: &'static str, field: &str, message: String| {
        errors.push(DomainError::rule(code, Some(field), message));
    };

    if decision_date < policy.effective_from {
        rule(
            "policy_not_in_force",
            "policy",
            format!(
                "policy {} takes effect on {}, after the decision date {decision_date}",
                policy.code, policy.effective_from
            ),
        );
    }
    if app.has_unsettled_loan {
        rule(
            "unsettled_loan_exists",
            "borrower_id",
            "the borrower already has an unsettled guaranteed loan".into(),
        );
    }

    // Who may borrow.
    let firm_kind = app.kind == BorrowerKind::SmallEnterprise;
    let firm_category = app.category == BorrowerCategory::SmallEnterprise;
    if firm_kind != firm_category {
        rule(
            "not_eligible",
            "category",
            format!(
                "borrower kind {} does not go with category {}",
                app.kind, app.category
            ),
        );
    }
    if policy.certificate_required
        && app.category == BorrowerCategory::LaidOff
        && !app.has_certificate
    {
        rule(
            "certificate_required",
            "employment_certificate_no",
            "a laid-off borrower needs a re-employment certificate (再就业优惠证)".into(),
        );
    }
    if !firm_kind {
        match app.age {
            Some(age) if (policy.min_age..=policy.max_age).contains(&age) => {}
            Some(age) => rule(
                "age_out_of_range",
                "borrower_id",
                format!(
                    "the borrower is {age}; the policy allows ages {} to {}",
                    policy.min_age, policy.max_age
                ),
            ),
            None => errors.push(DomainError::invalid(
                "borrower_id",
                "the borrower's age is unknown (no valid national id)",
            )),
        }
    }

    // How much.
    if app.principal.is_zero() {
        errors.push(DomainError::invalid("principal", "must be positive"));
    }
    let limit = match app.kind {
        BorrowerKind::Partnership if app.member_count < 2 => {
            errors.push(DomainError::invalid(
                "member_count",
                "a partnership has at least 2 members",
            ));
            None
        }
        BorrowerKind::SmallEnterprise if policy.small_enterprise_limit.is_none() => {
            errors.push(DomainError::rule(
                "not_eligible",
                Some("kind"),
                format!(
                    "small enterprises are not eligible under policy {}",
                    policy.code
                ),
            ));
            None
        }
        kind => policy.limit_for(kind, app.member_count),
    };
    if let Some(limit) = limit {
        if app.principal > limit {
            errors.push(DomainError::rule(
                "amount_over_limit",
                Some("principal"),
                format!("principal {} exceeds the limit of {limit}", app.principal),
            ));
        }
    }

    // How long, at what rate.
    let max_term = policy.max_term_for(app.kind);
    if app.term_months == 0 {
        errors.push(DomainError::invalid("term_months", "must be at least 1"));
    } else if app.term_months > max_term {
        errors.push(DomainError::rule(
            "term_over_maximum",
            Some("term_months"),
            format!(
                "term of {} months exceeds the maximum of {max_term}",
                app.term_months
            ),
        ));
    }
    if app.annual_rate.value() > policy.rate_cap() {
        errors.push(DomainError::rule(
            "rate_over_cap",
            Some("annual_rate"),
            format!(
                "annual rate {} exceeds the cap of {} (benchmark {} + {})",
                app.annual_rate,
                policy.rate_cap().normalize(),
                policy.benchmark_rate,
                policy.max_rate_spread
            ),
        ));
    }

    // Security.
    check_counter_guarantee(policy, app, &mut errors);

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check_counter_guarantee(policy: &Policy, app: &ApplicationFacts, errors: &mut Vec<DomainError>) {
    const FIELD: &str = "counter_guarantee";
    let waiver_refused =
        |message: String| DomainError::rule("waiver_not_allowed", Some(FIELD), message);
    let text_ok = |s: &str, max: usize| crate::bounds::check_text(FIELD, s, max).is_ok();
    match &app.counter_guarantee {
        CounterGuarantee::CreditCommunityWaiver => {
            if app.kind == BorrowerKind::SmallEnterprise {
                errors.push(waiver_refused(
                    "the credit-community waiver is for residents, not firms".into(),
                ));
            }
            if !app.community_certified_on_decision_date {
                errors.push(waiver_refused(
                    "the borrower's community is not a certified credit community on the decision date; a counter-guarantee is required".into(),
                ));
            }
            if app.principal > policy.waiver_limit {
                errors.push(waiver_refused(format!(
                    "principal {} exceeds the waiver limit of {}; a counter-guarantee is required",
                    app.principal, policy.waiver_limit
                )));
            }
        }
        CounterGuarantee::Guarantor { name, .. } => {
            // The id already passed its check digit when it was parsed.
            if !text_ok(name, MAX_NAME_CHARS) {
                errors.push(DomainError::invalid(
                    FIELD,
                    format!(
                        "the guarantor's name must be 1 to {MAX_NAME_CHARS} printable characters"
                    ),
                ));
            }
        }
        CounterGuarantee::JointGuaranteeGroup { members } => {
            if !(2..=MAX_GROUP_MEMBERS).contains(members) {
                errors.push(DomainError::invalid(
                    FIELD,
                    format!("a joint guarantee group has 2 to {MAX_GROUP_MEMBERS} members"),
                ));
            }
        }
        CounterGuarantee::Mortgage { description } | CounterGuarantee::Pledge { description } => {
            if !text_ok(description, MAX_DESCRIPTION_CHARS) {
                errors.push(DomainError::invalid(
                    FIELD,
                    format!(
                        "the description must be 1 to {MAX_DESCRIPTION_CHARS} printable characters"
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::presets;

    fn policy(code: &str) -> Policy {
        presets().into_iter().find(|p| p.code == code).unwrap()
    }
    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }
    fn day(y: i32, mo: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, d).unwrap()
    }
    fn guarantor() -> CounterGuarantee {
        CounterGuarantee::Guarantor {
            name: "王芳".into(),
            national_id: NationalId::parse("11010519491231002X").unwrap(),
        }
    }
    /// A laid-off person with a certificate asking for 20,000.00 over 24 months at 5.31 %.
    fn good() -> ApplicationFacts {
        ApplicationFacts {
            kind: BorrowerKind::Individual,
            category: BorrowerCategory::LaidOff,
            age: Some(40),
            has_certificate: true,
            member_count: 1,
            principal: m("20000"),
            term_months: 24,
            annual_rate: Rate::parse("0.0531").unwrap(),
            counter_guarantee: guarantor(),
            community_certified_on_decision_date: false,
            has_unsettled_loan: false,
        }
    }
    fn on2006() -> NaiveDate {
        day(2006, 6, 1)
    }
    /// (code, field) of every error, in order.
    fn refusals(p: &Policy, a: &ApplicationFacts, on: NaiveDate) -> Vec<(&'static str, String)> {
        check_application(p, a, on)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.code(), e.field().unwrap_or_default().to_owned()))
            .collect()
    }
    fn one(code: &'static str, field: &str) -> Vec<(&'static str, String)> {
        vec![(code, field.to_owned())]
    }

    #[test]
    fn a_plain_application_passes() {
        assert_eq!(
            check_application(&policy("PBOC-2006-5"), &good(), on2006()),
            Ok(())
        );
    }

    #[test]
    fn limits_per_kind() {
        let p = policy("PBOC-2006-5");
        let mut a = good();
        a.principal = m("20000.01");
        assert_eq!(
            refusals(&p, &a, on2006()),
            one("amount_over_limit", "principal")
        );

        // Partnership of 3 under 2006: 1.00 × 3 × 20,000 = 60,000.00.
        a.kind = BorrowerKind::Partnership;
        a.member_count = 3;
        a.principal = m("60000");
        assert_eq!(check_application(&p, &a, on2006()), Ok(()));
        a.principal = m("60000.01");
        assert_eq!(
            refusals(&p, &a, on2006()),
            one("amount_over_limit", "principal")
        );
        a.member_count = 1;
        a.principal = m("10000");
        assert_eq!(
            refusals(&p, &a, on2006()),
            vec![("invalid", "member_count".to_owned())]
        );

        // Small enterprise: 1,000,000.00 in 2006, not eligible in 2002.
        let mut f = good();
        f.kind = BorrowerKind::SmallEnterprise;
        f.category = BorrowerCategory::SmallEnterprise;
        f.age = None;
        f.principal = m("1000000");
        assert_eq!(check_application(&p, &f, on2006()), Ok(()));
        f.principal = m("1000000.01");
        assert_eq!(
            refusals(&p, &f, on2006()),
            one("amount_over_limit", "principal")
        );
        let p2002 = policy("PBOC-2002-394");
        f.principal = m("10000");
        assert_eq!(
            refusals(&p2002, &f, day(2004, 1, 1)),
            one("not_eligible", "kind")
        );
    }

    #[test]
    fn partnership_2020_uses_the_multiple() {
        // 1.10 × 2 × 200,000.00 = 440,000.00
        let p = policy("MOF-2020-21");
        let mut a = good();
        a.kind = BorrowerKind::Partnership;
        a.member_count = 2;
        a.annual_rate = Rate::parse("0.0535").unwrap();
        a.principal = m("440000");
        assert_eq!(check_application(&p, &a, day(2021, 1, 1)), Ok(()));
        a.principal = m("440000.01");
        assert_eq!(
            refusals(&p, &a, day(2021, 1, 1)),
            one("amount_over_limit", "principal")
        );
    }

    #[test]
    fn term_and_rate() {
        let p = policy("PBOC-2008-238");
        let on = day(2009, 1, 1);
        let mut a = good();
        a.term_months = 25;
        a.annual_rate = Rate::parse("0.0831").unwrap(); // exactly the cap 5.31 % + 3 %
        assert_eq!(
            refusals(&p, &a, on),
            one("term_over_maximum", "term_months")
        );
        a.term_months = 24;
        a.annual_rate = Rate::parse("0.083101").unwrap();
        assert_eq!(refusals(&p, &a, on), one("rate_over_cap", "annual_rate"));
        a.annual_rate = Rate::parse("0.05").unwrap();
        a.term_months = 0;
        assert_eq!(
            refusals(&p, &a, on),
            vec![("invalid", "term_months".to_owned())]
        );

        // 2020: persons 36 months, firms 24.
        let p = policy("MOF-2020-21");
        let mut f = good();
        f.annual_rate = Rate::parse("0.04").unwrap();
        f.term_months = 36;
        assert_eq!(check_application(&p, &f, day(2021, 1, 1)), Ok(()));
        f.kind = BorrowerKind::SmallEnterprise;
        f.category = BorrowerCategory::SmallEnterprise;
        assert_eq!(
            refusals(&p, &f, day(2021, 1, 1)),
            one("term_over_maximum", "term_months")
        );
    }

    #[test]
    fn certificate_and_age() {
        let p = policy("PBOC-2006-5");
        let mut a = good();
        a.has_certificate = false;
        assert_eq!(
            refusals(&p, &a, on2006()),
            one("certificate_required", "employment_certificate_no")
        );
        // Only laid-off borrowers need the certificate.
        a.category = BorrowerCategory::Graduate;
        assert_eq!(check_application(&p, &a, on2006()), Ok(()));
        let mut no_cert_policy = p.clone();
        no_cert_policy.certificate_required = false;
        a.category = BorrowerCategory::LaidOff;
        assert_eq!(check_application(&no_cert_policy, &a, on2006()), Ok(()));

        let mut a = good();
        a.age = Some(60);
        assert_eq!(check_application(&p, &a, on2006()), Ok(()));
        a.age = Some(61);
        assert_eq!(
            refusals(&p, &a, on2006()),
            one("age_out_of_range", "borrower_id")
        );
        a.age = Some(17);
        assert_eq!(
            refusals(&p, &a, on2006()),
            one("age_out_of_range", "borrower_id")
        );
        a.age = None;
        assert_eq!(
            refusals(&p, &a, on2006()),
            vec![("invalid", "borrower_id".to_owned())]
        );
    }

    #[test]
    fn waiver_rules() {
        let p = policy("PBOC-2006-5"); // waiver limit 20,000.00
        let mut a = good();
        a.counter_guarantee = CounterGuarantee::CreditCommunityWaiver;
        a.community_certified_on_decision_date = true;
        assert_eq!(check_application(&p, &a, on2006()), Ok(()));
        a.community_certified_on_decision_date = false;
        assert_eq!(
            refusals(&p, &a, on2006()),
            one("waiver_not_allowed", "counter_guarantee")
        );
        a.community_certified_on_decision_date = true;
        let mut p2 = p.clone();
        p2.waiver_limit = m("19999.99");
        assert_eq!(
            refusals(&p2, &a, on2006()),
            one("waiver_not_allowed", "counter_guarantee")
        );
        // A firm cannot use it.
        let mut f = good();
        f.kind = BorrowerKind::SmallEnterprise;
        f.category = BorrowerCategory::SmallEnterprise;
        f.age = None;
        f.counter_guarantee = CounterGuarantee::CreditCommunityWaiver;
        f.community_certified_on_decision_date = true;
        f.principal = m("10000");
        assert_eq!(
            refusals(&p, &f, on2006()),
            one("waiver_not_allowed", "counter_guarantee")
        );
    }

    #[test]
    fn other_counter_guarantees() {
        let p = policy("PBOC-2006-5");
        let mut a = good();
        for (cg, ok) in [
            (CounterGuarantee::JointGuaranteeGroup { members: 5 }, true),
            (CounterGuarantee::JointGuaranteeGroup { members: 1 }, false),
            (CounterGuarantee::JointGuaranteeGroup { members: 100 }, true),
            (
                CounterGuarantee::JointGuaranteeGroup { members: 101 },
                false,
            ),
            (
                CounterGuarantee::Mortgage {
                    description: "房产\u{0}抵押".into(),
                },
                false,
            ),
            (
                CounterGuarantee::Mortgage {
                    description: "房产 南昌市东湖区".into(),
                },
                true,
            ),
            (
                CounterGuarantee::Pledge {
                    description: "  ".into(),
                },
                false,
            ),
            (
                CounterGuarantee::Pledge {
                    description: "x".repeat(501),
                },
                false,
            ),
            (
                CounterGuarantee::Guarantor {
                    name: String::new(),
                    national_id: NationalId::parse("11010519491231002X").unwrap(),
                },
                false,
            ),
        ] {
            a.counter_guarantee = cg;
            let result = check_application(&p, &a, on2006());
            if ok {
                assert_eq!(result, Ok(()), "{:?}", a.counter_guarantee);
            } else {
                assert_eq!(
                    refusals(&p, &a, on2006()),
                    vec![("invalid", "counter_guarantee".to_owned())]
                );
            }
        }
    }

    #[test]
    fn unsettled_loan_policy_date_and_category_mismatch() {
        let p = policy("PBOC-2006-5");
        let mut a = good();
        a.has_unsettled_loan = true;
        assert_eq!(
            refusals(&p, &a, on2006()),
            one("unsettled_loan_exists", "borrower_id")
        );
        let a = good();
        assert_eq!(
            refusals(&p, &a, day(2005, 12, 31)),
            one("policy_not_in_force", "policy")
        );
        let mut a = good();
        a.category = BorrowerCategory::SmallEnterprise;
        assert_eq!(refusals(&p, &a, on2006()), one("not_eligible", "category"));
    }

    #[test]
    fn all_problems_are_reported_together() {
        let p = policy("PBOC-2006-5");
        let a = ApplicationFacts {
            has_certificate: false,
            principal: m("30000"),
            term_months: 36,
            annual_rate: Rate::parse("0.07").unwrap(),
            counter_guarantee: CounterGuarantee::CreditCommunityWaiver,
            has_unsettled_loan: true,
            ..good()
        };
        let fields: Vec<String> = refusals(&p, &a, on2006())
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "borrower_id",
                "employment_certificate_no",
                "principal",
                "term_months",
                "annual_rate",
                "counter_guarantee",
                "counter_guarantee"
            ]
        );
    }

    #[test]
    fn counter_guarantee_json_and_debug() {
        let json = serde_json::to_value(guarantor()).unwrap();
        assert_eq!(json["kind"], "guarantor");
        assert_eq!(json["national_id"], "11010519491231002X");
        let waiver: CounterGuarantee =
            serde_json::from_str(r#"{"kind":"credit_community_waiver"}"#).unwrap();
        assert!(waiver.is_waiver());
        assert_eq!(waiver.kind(), "credit_community_waiver");
        let group: CounterGuarantee =
            serde_json::from_str(r#"{"kind":"joint_guarantee_group","members":4}"#).unwrap();
        assert_eq!(group, CounterGuarantee::JointGuaranteeGroup { members: 4 });
        assert!(serde_json::from_str::<CounterGuarantee>(
            r#"{"kind":"guarantor","name":"王芳","national_id":"110105194912310021"}"#
        )
        .is_err());
        let debug = format!("{:?}", guarantor());
        assert!(
            !debug.contains("王芳") && !debug.contains("19491231"),
            "{debug}"
        );
        assert!(debug.contains("王*"));
    }
}
