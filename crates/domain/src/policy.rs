//! Policy: the effective-dated parameters of the programme. Limits changed often and differ by
//! province, so they are data; a loan keeps the policy it was approved under.

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::{BorrowerCategory, BorrowerKind, DomainError, Money, Rate, Share};

/// Interest-subsidy share (财政贴息) of the interest on micro-profit projects, per category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubsidyShares {
    pub laid_off: Share,
    pub registered_unemployed: Share,
    pub graduate: Share,
    pub demobilised_soldier: Share,
    pub returning_migrant: Share,
    pub disabled: Share,
    pub small_enterprise: Share,
}

impl SubsidyShares {
    /// The same share for every category.
    pub fn uniform(share: Share) -> Self {
        Self {
            laid_off: share,
            registered_unemployed: share,
            graduate: share,
            demobilised_soldier: share,
            returning_migrant: share,
            disabled: share,
            small_enterprise: share,
        }
    }

    /// The share for `category`.
    pub fn get(&self, category: BorrowerCategory) -> Share {
        match category {
            BorrowerCategory::LaidOff => self.laid_off,
            BorrowerCategory::RegisteredUnemployed => self.registered_unemployed,
            BorrowerCategory::Graduate => self.graduate,
            BorrowerCategory::DemobilisedSoldier => self.demobilised_soldier,
            BorrowerCategory::ReturningMigrant => self.returning_migrant,
            BorrowerCategory::Disabled => self.disabled,
            BorrowerCategory::SmallEnterprise => self.small_enterprise,
        }
    }
}

/// Regular expression of a multiple such as `1.10` or `5` (`NUMERIC(9,6)`); the OpenAPI
/// `pattern` of the multiple fields of [`Policy`] (partnership, penalty).
pub const MULTIPLE_PATTERN: &str = r"^[0-9]{1,3}(\.[0-9]{1,6})?$";
/// `pattern` of the leverage multiples, stored as `NUMERIC(9,4)`.
pub const LEVERAGE_PATTERN: &str = r"^[0-9]{1,3}(\.[0-9]{1,4})?$";

/// One effective-dated parameter set (`policy` row). See the policy table in domain.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Short stable code, e.g. `PBOC-2002-394`.
    #[schema(min_length = 1, max_length = 64)]
    pub code: String,
    /// Human-readable name, e.g. the document title.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// First day on which new approvals use this policy: 1990-01-01 to 2200-12-31.
    pub effective_from: NaiveDate,
    /// Maximum principal for one person.
    pub individual_limit: Money,
    /// Partnership limit = this × member count × `individual_limit` (2020: 1.10).
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, pattern = r"^[0-9]{1,3}(\.[0-9]{1,6})?$", example = "1.10")]
    pub partnership_limit_multiple: Decimal,
    /// Maximum principal for a small labour-intensive firm; null = firms are not eligible.
    pub small_enterprise_limit: Option<Money>,
    /// Maximum term for persons and partnerships, in months.
    #[schema(minimum = 1, maximum = 120)]
    pub max_term_months: u32,
    /// Maximum term for small enterprises, in months.
    #[schema(minimum = 1, maximum = 120)]
    pub enterprise_max_term_months: u32,
    /// Longest single extension (展期), in months; 0 = no extension allowed.
    #[schema(maximum = 60)]
    pub extension_max_months: u32,
    /// Benchmark annual rate the cap is based on (PBOC 1-year rate, later the 1-year LPR).
    pub benchmark_rate: Rate,
    /// Most a loan's annual rate may exceed the benchmark (rate cap = benchmark + spread).
    pub max_rate_spread: Rate,
    /// Penalty interest rate = loan rate × this (e.g. 1.5).
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, pattern = r"^[0-9]{1,3}(\.[0-9]{1,6})?$", example = "1.5")]
    pub penalty_rate_multiplier: Decimal,
    /// Outstanding guaranteed principal may be at most this × fund balance (放大倍数).
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, pattern = r"^[0-9]{1,3}(\.[0-9]{1,4})?$", example = "5")]
    pub leverage_multiple: Decimal,
    /// Higher leverage allowed when last year's repayment rate reached
    /// `leverage_bonus_min_repayment_rate` (2020: 10×); null = no bonus.
    #[serde(with = "rust_decimal::serde::str_option")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,3}(\.[0-9]{1,4})?$", example = "10")]
    pub leverage_bonus_multiple: Option<Decimal>,
    /// Repayment rate last year needed for `leverage_bonus_multiple` (2020: 0.90).
    pub leverage_bonus_min_repayment_rate: Option<Share>,
    /// Credit-community loans without counter-guarantee are allowed up to this principal.
    pub waiver_limit: Money,
    /// A compensation claim is allowed once a loan is overdue this many days.
    #[schema(minimum = 1, maximum = 3650)]
    pub compensation_overdue_days: u32,
    /// The fund pays an accepted claim within this many days.
    #[schema(minimum = 1, maximum = 3650)]
    pub compensation_pay_within_days: u32,
    /// Risk share borne by the guarantee fund.
    pub fund_share: Share,
    /// Risk share borne by the bank.
    pub bank_share: Share,
    /// Risk share borne by others (e.g. a local government); the three sum to exactly 1.
    pub other_share: Share,
    /// Interest-subsidy share per borrower category, for micro-profit projects.
    pub subsidy_shares: SubsidyShares,
    /// Days after a due date that still count as on time for the on-time repayment rate.
    #[schema(maximum = 365)]
    pub grace_days: u32,
    /// A bank stops new lending when its overdue ratio reaches this (0.20).
    pub bank_stop_overdue_ratio: Share,
    /// Reward as a share of the year's new loans (0.01).
    pub reward_share: Share,
    /// Repayment rate needed for the reward.
    pub reward_min_repayment_rate: Share,
    /// Youngest eligible age of an individual borrower, in years.
    #[schema(minimum = 16, maximum = 99)]
    pub min_age: u32,
    /// Oldest eligible age of an individual borrower, in years.
    #[schema(minimum = 17, maximum = 100)]
    pub max_age: u32,
    /// Laid-off borrowers must present an employment certificate (再就业优惠证).
    pub certificate_required: bool,
}

/// Largest term any policy may allow, in months (10 years).
const MAX_TERM_LIMIT: u32 = 120;
/// Longest extension a policy may allow, as the `policies` table's CHECK has it.
const MAX_EXTENSION_MONTHS: u32 = 60;

impl Policy {
    /// Highest annual rate a loan may carry: benchmark + spread.
    pub fn rate_cap(&self) -> Decimal {
        self.benchmark_rate.value() + self.max_rate_spread.value()
    }

    /// Penalty interest rate for a loan at `loan_rate`: loan rate × multiplier (not rounded;
    /// it is a rate, rounding happens on the interest amount).
    pub fn penalty_rate(&self, loan_rate: Rate) -> Decimal {
        loan_rate.value() * self.penalty_rate_multiplier
    }

    /// Partnership limit: multiple × member count × individual limit, truncated to the fen
    /// (a limit never rounds up). `None` if it does not fit a `Money`.
    pub fn partnership_limit(&self, member_count: u32) -> Option<Money> {
        let raw = self
            .partnership_limit_multiple
            .checked_mul(Decimal::from(member_count))?
            .checked_mul(self.individual_limit.amount())?;
        Money::from_decimal(raw.round_dp_with_strategy(2, RoundingStrategy::ToZero)).ok()
    }

    /// The principal limit for a borrower of `kind` (`member_count` counts partners incl. the
    /// borrower; ignored otherwise). `None` if that kind is not eligible under this policy.
    pub fn limit_for(&self, kind: BorrowerKind, member_count: u32) -> Option<Money> {
        match kind {
            BorrowerKind::Individual => Some(self.individual_limit),
            BorrowerKind::Partnership => self.partnership_limit(member_count),
            BorrowerKind::SmallEnterprise => self.small_enterprise_limit,
        }
    }

    /// Maximum term in months for `kind`.
    pub fn max_term_for(&self, kind: BorrowerKind) -> u32 {
        if kind.is_enterprise() {
            self.enterprise_max_term_months
        } else {
            self.max_term_months
        }
    }

    /// Leverage allowed given last year's repayment rate (`None` = unknown, no bonus).
    pub fn leverage_for(&self, last_year_repayment_rate: Option<Share>) -> Decimal {
        match (
            self.leverage_bonus_multiple,
            self.leverage_bonus_min_repayment_rate,
            last_year_repayment_rate,
        ) {
            (Some(bonus), Some(min), Some(actual)) if actual >= min => bonus,
            _ => self.leverage_multiple,
        }
    }

    /// Interest-subsidy share for `category`.
    pub fn subsidy_share(&self, category: BorrowerCategory) -> Share {
        self.subsidy_shares.get(category)
    }

    /// Checks every parameter; returns all problems at once, each naming its field.
    pub fn validate(&self) -> Result<(), Vec<DomainError>> {
        let mut errors = Vec::new();
        let mut bad =
            |field: &str, message: String| errors.push(DomainError::invalid(field, message));

        let code = self.code.as_str();
        if code.trim().is_empty() {
            bad("code", "must not be empty".into());
        } else if code.chars().count() > 64 {
            bad("code", "must be at most 64 characters".into());
        } else if code.trim() != code || code.chars().any(char::is_control) {
            bad(
                "code",
                "must not have surrounding spaces or control characters".into(),
            );
        }
        if self.name.trim().is_empty() {
            bad("name", "must not be empty".into());
        } else if self.name.chars().count() > 200 {
            bad("name", "must be at most 200 characters".into());
        } else if self.name.chars().any(char::is_control) {
            bad("name", "must not contain control characters".into());
        }

        if let Err(e) = crate::bounds::check_date("effective_from", self.effective_from) {
            bad("effective_from", e.message().to_owned());
        }
        if self.individual_limit.is_zero() {
            bad("individual_limit", "must be positive".into());
        }
        check_multiple(
            &mut bad,
            "partnership_limit_multiple",
            self.partnership_limit_multiple,
            6,
        );
        if self.partnership_limit(2).is_none() {
            bad(
                "partnership_limit_multiple",
                "the partnership limit for two members does not fit an amount".into(),
            );
        }
        if self.small_enterprise_limit.is_some_and(|l| l.is_zero()) {
            bad(
                "small_enterprise_limit",
                "must be positive, or null when firms are not eligible".into(),
            );
        }
        for (field, months) in [
            ("max_term_months", self.max_term_months),
            (
                "enterprise_max_term_months",
                self.enterprise_max_term_months,
            ),
        ] {
            if !(1..=MAX_TERM_LIMIT).contains(&months) {
                bad(
                    field,
                    format!("must be between 1 and {MAX_TERM_LIMIT} months"),
                );
            }
        }
        if self.extension_max_months > MAX_EXTENSION_MONTHS {
            bad(
                "extension_max_months",
                format!("must be at most {MAX_EXTENSION_MONTHS} months (0 = no extension)"),
            );
        }
        if self.benchmark_rate.is_zero() {
            bad("benchmark_rate", "must be positive".into());
        }
        if self.rate_cap() > Decimal::ONE {
            bad(
                "max_rate_spread",
                "benchmark_rate + max_rate_spread must not exceed 1".into(),
            );
        }
        if self.penalty_rate_multiplier < Decimal::ONE {
            bad(
                "penalty_rate_multiplier",
                "must be at least 1 (penalty interest is never below the loan rate)".into(),
            );
        }
        check_multiple(
            &mut bad,
            "penalty_rate_multiplier",
            self.penalty_rate_multiplier,
            6,
        );
        check_multiple(&mut bad, "leverage_multiple", self.leverage_multiple, 4);
        match (
            self.leverage_bonus_multiple,
            self.leverage_bonus_min_repayment_rate,
        ) {
            (None, None) => {}
            (Some(bonus), Some(_)) => {
                check_multiple(&mut bad, "leverage_bonus_multiple", bonus, 4);
                if bonus <= self.leverage_multiple {
                    bad(
                        "leverage_bonus_multiple",
                        "must be greater than leverage_multiple".into(),
                    );
                }
            }
            (Some(_), None) => bad(
                "leverage_bonus_min_repayment_rate",
                "is required when leverage_bonus_multiple is set".into(),
            ),
            (None, Some(_)) => bad(
                "leverage_bonus_multiple",
                "is required when leverage_bonus_min_repayment_rate is set".into(),
            ),
        }
        for (field, days) in [
            ("compensation_overdue_days", self.compensation_overdue_days),
            (
                "compensation_pay_within_days",
                self.compensation_pay_within_days,
            ),
        ] {
            if !(1..=3650).contains(&days) {
                bad(field, "must be between 1 and 3650 days".into());
            }
        }
        let split = self.fund_share.value() + self.bank_share.value() + self.other_share.value();
        if split != Decimal::ONE {
            bad(
                "fund_share",
                format!("fund_share + bank_share + other_share must be exactly 1, not {split}"),
            );
        }
        if self.grace_days > 365 {
            bad("grace_days", "must be at most 365 days".into());
        }
        if self.bank_stop_overdue_ratio.is_zero() {
            bad("bank_stop_overdue_ratio", "must be positive".into());
        }
        if self.min_age < 16 {
            bad("min_age", "must be at least 16 (legal working age)".into());
        }
        if self.max_age > 100 {
            bad("max_age", "must be at most 100".into());
        }
        if self.min_age >= self.max_age {
            bad("max_age", "must be greater than min_age".into());
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// A multiple: positive, below 1000, at most `scale` decimals, so that it fits its column
/// (`NUMERIC(9,6)` for partnership and penalty, `NUMERIC(9,4)` for leverage) unrounded.
fn check_multiple(bad: &mut impl FnMut(&str, String), field: &str, value: Decimal, scale: u32) {
    if value <= Decimal::ZERO {
        bad(field, "must be positive".into());
    } else if value >= Decimal::ONE_THOUSAND {
        bad(field, "must be less than 1000".into());
    } else if value.normalize().scale() > scale {
        bad(field, format!("has at most {scale} decimal places"));
    }
}

/// The policy in force on `date` among `policies` (the one with the latest `effective_from`
/// not after `date`). Callers pass the policies of one province/programme.
pub fn in_force_on(policies: &[Policy], date: NaiveDate) -> Option<&Policy> {
    policies
        .iter()
        .filter(|p| p.effective_from <= date)
        .max_by_key(|p| p.effective_from)
}

// ---- presets -------------------------------------------------------------------------------

fn money(yuan: i64) -> Money {
    // Whole yuan below 10^16 always fit; a failure here is a typo in a preset.
    Money::from_decimal(Decimal::from(yuan)).expect("preset amount")
}

fn rate(value: Decimal) -> Rate {
    Rate::from_decimal(value).expect("preset rate")
}

fn share(value: Decimal) -> Share {
    Share::from_decimal(value).expect("preset share")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("preset date")
}

/// Four presets from the national documents (domain.md policy table).
///
/// "documented" marks a value stated in domain.md's table or the provincial rules it quotes;
/// "default" marks our choice where the documents are vague or silent — a province loading a
/// preset should review those. Effective dates are defaults: the first of a month shortly after
/// the document was issued; use the date your province implemented it.
///
/// Benchmark rates: the PBOC 1-year lending rate moved within some of these periods (2006:
/// 5.58 % → 5.85 % on 2006-04-28 → 6.12 % on 2006-08-19; 2008: 7.47 % in August, 5.31 % from
/// 2008-12-23). A preset carries one value, chosen as noted; a rate change in production is
/// a new policy row with its own `effective_from`.
pub fn presets() -> Vec<Policy> {
    let d = |mantissa: i64, scale: u32| Decimal::new(mantissa, scale);
    // Risk split from provincial rules (fund 70 % / bank 25 % / other 5 %): documented as one
    // provincial example, used as the default for every preset.
    let (fund, bank, other) = (share(d(70, 2)), share(d(25, 2)), share(d(5, 2)));

    vec![
        Policy {
            code: "PBOC-2002-394".into(),
            name: "银发〔2002〕394号 下岗失业人员小额担保贷款管理办法".into(),
            effective_from: date(2003, 1, 1),         // default
            individual_limit: money(20_000),          // documented: about 2万
            partnership_limit_multiple: Decimal::ONE, // default: "can be larger" by head count
            small_enterprise_limit: None,             // documented: firms not covered
            max_term_months: 24,                      // documented: ≤ 2 years
            enterprise_max_term_months: 24,           // default (firms not eligible anyway)
            extension_max_months: 12,                 // documented: once, ≤ 1 year
            benchmark_rate: rate(d(531, 4)), // documented: 1-year rate 5.31 % from 2002-02-21
            max_rate_spread: Rate::ZERO,     // documented: benchmark, no float
            penalty_rate_multiplier: d(15, 1), // default: PBOC overdue surcharge of up to 50 %
            leverage_multiple: Decimal::from(5), // default: table silent, later rules say ≤ 5×
            leverage_bonus_multiple: None,
            leverage_bonus_min_repayment_rate: None,
            waiver_limit: money(20_000), // default: the individual limit
            compensation_overdue_days: 60, // default: claim after 60 days overdue...
            compensation_pay_within_days: 30, // ...paid within 30: inside "3 months of maturity"
            fund_share: fund,
            bank_share: bank,
            other_share: other,
            // documented: 100 % for micro-profit projects; firms not covered.
            subsidy_shares: SubsidyShares {
                small_enterprise: Share::ZERO,
                ..SubsidyShares::uniform(Share::ONE)
            },
            grace_days: 0,                              // default
            bank_stop_overdue_ratio: share(d(20, 2)),   // documented (provincial): 20 %
            reward_share: share(d(1, 2)),               // documented (provincial): 1 %
            reward_min_repayment_rate: share(d(95, 2)), // default: 95 %
            min_age: 18,                                // default
            max_age: 60,                                // default
            certificate_required: true,                 // documented: 再就业优惠证 holders
        },
        Policy {
            code: "PBOC-2006-5".into(),
            name: "银发〔2006〕5号 关于改进和完善小额担保贷款政策的通知".into(),
            effective_from: date(2006, 2, 1),         // default
            individual_limit: money(20_000), // documented: about 2万 (provinces went higher)
            partnership_limit_multiple: Decimal::ONE, // default
            small_enterprise_limit: Some(money(1_000_000)), // documented: 100万
            max_term_months: 24,             // documented: ≤ 2 years
            enterprise_max_term_months: 24,  // default: same as persons
            extension_max_months: 12,        // documented: once, ≤ 1 year
            // default: 6.12 %, the year's highest 1-year rate, so every 2006 rate fits the cap.
            benchmark_rate: rate(d(612, 4)),
            max_rate_spread: Rate::ZERO,         // documented: benchmark
            penalty_rate_multiplier: d(15, 1),   // default
            leverage_multiple: Decimal::from(5), // documented (provincial): ≤ 5×
            leverage_bonus_multiple: None,
            leverage_bonus_min_repayment_rate: None,
            waiver_limit: money(20_000),      // default
            compensation_overdue_days: 60,    // default, see 2002
            compensation_pay_within_days: 30, // default; documented total: within 3 months
            fund_share: fund,
            bank_share: bank,
            other_share: other,
            // documented: 100 % for certificate holders and demobilised soldiers, 50 % for other
            // registered unemployed (we count graduates, returning migrants and disabled people
            // among those); firms 50 % is our default.
            subsidy_shares: SubsidyShares {
                laid_off: Share::ONE,
                demobilised_soldier: Share::ONE,
                ..SubsidyShares::uniform(share(d(50, 2)))
            },
            grace_days: 0,
            bank_stop_overdue_ratio: share(d(20, 2)),
            reward_share: share(d(1, 2)),
            reward_min_repayment_rate: share(d(95, 2)),
            min_age: 18,
            max_age: 60,
            certificate_required: true,
        },
        Policy {
            code: "PBOC-2008-238".into(),
            name: "银发〔2008〕238号 / 财金〔2008〕100号 关于进一步改进小额担保贷款管理".into(),
            effective_from: date(2008, 9, 1),         // default
            individual_limit: money(50_000),          // documented: 5万
            partnership_limit_multiple: Decimal::ONE, // default
            small_enterprise_limit: Some(money(2_000_000)), // documented: 200万
            max_term_months: 24,                      // documented: ≤ 2 years
            enterprise_max_term_months: 24,           // default
            extension_max_months: 12,                 // documented: once, ≤ 1 year
            // default: 5.31 %, the 1-year rate from 2008-12-23 (7.47 % at the time of issue).
            benchmark_rate: rate(d(531, 4)),
            max_rate_spread: rate(d(3, 2)), // documented: benchmark + up to 3 points
            penalty_rate_multiplier: d(15, 1), // default
            leverage_multiple: Decimal::from(5), // documented: ≤ 5×
            leverage_bonus_multiple: None,
            leverage_bonus_min_repayment_rate: None,
            waiver_limit: money(50_000), // default: the individual limit
            compensation_overdue_days: 60, // default
            compensation_pay_within_days: 30, // default
            fund_share: fund,
            bank_share: bank,
            other_share: other,
            // documented: 100 % including the float for persons; firms 50 % is our default.
            subsidy_shares: SubsidyShares {
                small_enterprise: share(d(50, 2)),
                ..SubsidyShares::uniform(Share::ONE)
            },
            grace_days: 0,
            bank_stop_overdue_ratio: share(d(20, 2)),
            reward_share: share(d(1, 2)),
            reward_min_repayment_rate: share(d(95, 2)), // default
            min_age: 18,
            max_age: 60,
            certificate_required: true,
        },
        Policy {
            code: "MOF-2020-21".into(),
            name:
                "财金〔2020〕21号 关于进一步加大创业担保贷款贴息力度全力支持重点群体创业就业的通知"
                    .into(),
            effective_from: date(2020, 5, 1),      // default
            individual_limit: money(200_000),      // documented: 20万
            partnership_limit_multiple: d(110, 2), // documented: up to 110 %
            small_enterprise_limit: Some(money(3_000_000)), // documented: 300万
            max_term_months: 36,                   // documented: ≤ 3 years
            enterprise_max_term_months: 24,        // documented: firms ≤ 2 years
            extension_max_months: 0,               // default: the notice provides none
            benchmark_rate: rate(d(385, 4)),       // documented: 1-year LPR 3.85 % from 2020-04-20
            // default: LPR + 150bp, the cap for central provinces such as Jiangxi.
            max_rate_spread: rate(d(15, 3)),
            penalty_rate_multiplier: d(15, 1),   // default
            leverage_multiple: Decimal::from(5), // default base
            leverage_bonus_multiple: Some(Decimal::from(10)), // documented: ≤ 10×...
            leverage_bonus_min_repayment_rate: Some(share(d(90, 2))), // ...if last year ≥ 90 %
            waiver_limit: money(100_000),        // default
            compensation_overdue_days: 60,       // default
            compensation_pay_within_days: 30,    // default
            fund_share: fund,
            bank_share: bank,
            other_share: other,
            // documented: the borrower pays at most LPR − 150bp. That is not a fixed share; at
            // the cap rate of 5.35 % the state pays 3.00 / 5.35 = 0.560748 of the interest, which
            // we use as the default share (exact at the cap, slightly low below it).
            subsidy_shares: SubsidyShares::uniform(share(d(560_748, 6))),
            grace_days: 0,
            bank_stop_overdue_ratio: share(d(20, 2)),
            reward_share: share(d(1, 2)),
            reward_min_repayment_rate: share(d(95, 2)),
            min_age: 18,
            max_age: 60,
            certificate_required: true,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn preset(code: &str) -> Policy {
        presets().into_iter().find(|p| p.code == code).unwrap()
    }

    #[test]
    fn every_preset_validates() {
        let all = presets();
        assert_eq!(all.len(), 4);
        for p in &all {
            assert_eq!(p.validate(), Ok(()), "{}", p.code);
        }
    }

    #[test]
    fn preset_values() {
        let p2002 = preset("PBOC-2002-394");
        assert_eq!(p2002.individual_limit, Money::parse("20000").unwrap());
        assert_eq!(p2002.rate_cap(), dec!(0.0531));
        assert_eq!(p2002.limit_for(BorrowerKind::SmallEnterprise, 1), None);

        let p2008 = preset("PBOC-2008-238");
        assert_eq!(p2008.rate_cap(), dec!(0.0831));

        let p2020 = preset("MOF-2020-21");
        assert_eq!(p2020.rate_cap(), dec!(0.0535));
        // 1.10 × 3 × 200,000.00 = 660,000.00
        assert_eq!(
            p2020.limit_for(BorrowerKind::Partnership, 3),
            Some(Money::parse("660000").unwrap())
        );
        assert_eq!(p2020.max_term_for(BorrowerKind::Individual), 36);
        assert_eq!(p2020.max_term_for(BorrowerKind::SmallEnterprise), 24);
        assert_eq!(
            p2020.leverage_for(Some(Share::parse("0.90").unwrap())),
            dec!(10)
        );
        assert_eq!(
            p2020.leverage_for(Some(Share::parse("0.8999").unwrap())),
            dec!(5)
        );
        assert_eq!(p2020.leverage_for(None), dec!(5));
        // 0.0535 × 1.5 = 0.08025
        assert_eq!(
            p2020.penalty_rate(Rate::parse("0.0535").unwrap()),
            dec!(0.08025)
        );

        let p2006 = preset("PBOC-2006-5");
        assert_eq!(p2006.subsidy_share(BorrowerCategory::LaidOff), Share::ONE);
        assert_eq!(
            p2006.subsidy_share(BorrowerCategory::Graduate).value(),
            dec!(0.5)
        );
    }

    #[test]
    fn partnership_limit_truncates_to_the_fen() {
        let mut p = preset("PBOC-2006-5");
        p.individual_limit = Money::parse("10000.01").unwrap();
        p.partnership_limit_multiple = dec!(1.333333);
        // 1.333333 × 2 × 10000.01 = 26666.686666... → 26666.68 (never rounded up)
        assert_eq!(
            p.partnership_limit(2),
            Some(Money::parse("26666.68").unwrap())
        );
    }

    #[test]
    fn validate_names_each_bad_field() {
        let mut p = preset("PBOC-2008-238");
        p.code = String::new();
        p.name = "x".repeat(201);
        p.individual_limit = Money::ZERO;
        p.partnership_limit_multiple = dec!(0);
        p.small_enterprise_limit = Some(Money::ZERO);
        p.max_term_months = 0;
        p.enterprise_max_term_months = 121;
        p.extension_max_months = 61; // the table allows 0 to 60
        p.effective_from = NaiveDate::from_ymd_opt(1989, 12, 31).unwrap();
        p.benchmark_rate = Rate::ZERO;
        p.max_rate_spread = Rate::ONE;
        p.penalty_rate_multiplier = dec!(0.5);
        p.leverage_multiple = dec!(0);
        p.leverage_bonus_multiple = Some(dec!(3));
        p.compensation_overdue_days = 0;
        p.compensation_pay_within_days = 4000;
        p.other_share = Share::parse("0.06").unwrap();
        p.grace_days = 400;
        p.bank_stop_overdue_ratio = Share::ZERO;
        p.min_age = 10;
        p.max_age = 9;
        let errors = p.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().filter_map(DomainError::field).collect();
        for f in [
            "code",
            "name",
            "individual_limit",
            "partnership_limit_multiple",
            "small_enterprise_limit",
            "max_term_months",
            "enterprise_max_term_months",
            "extension_max_months",
            "effective_from",
            "benchmark_rate",
            "penalty_rate_multiplier",
            "leverage_multiple",
            "leverage_bonus_min_repayment_rate",
            "compensation_overdue_days",
            "compensation_pay_within_days",
            "fund_share",
            "grace_days",
            "bank_stop_overdue_ratio",
            "min_age",
            "max_age",
        ] {
            assert!(fields.contains(&f), "{f} not in {fields:?}");
        }
    }

    #[test]
    fn leverage_has_at_most_four_decimals_as_its_column() {
        let mut p = preset("MOF-2020-21");
        p.leverage_multiple = dec!(5.1234);
        assert_eq!(p.validate(), Ok(()));
        p.leverage_multiple = dec!(5.12345);
        let errors = p.validate().unwrap_err();
        assert_eq!(errors[0].field(), Some("leverage_multiple"), "{errors:?}");
        p.leverage_multiple = dec!(5);
        p.penalty_rate_multiplier = dec!(1.123456);
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn validate_more_cases() {
        let mut p = preset("MOF-2020-21");
        p.leverage_bonus_multiple = Some(dec!(5)); // not above the base 5
        p.code = " X".into();
        p.max_rate_spread = Rate::parse("0.99").unwrap(); // cap 1.0385 > 1
        p.penalty_rate_multiplier = dec!(1.0000001);
        let fields: Vec<String> = p
            .validate()
            .unwrap_err()
            .iter()
            .filter_map(|e| e.field().map(str::to_owned))
            .collect();
        assert_eq!(
            fields,
            [
                "code",
                "max_rate_spread",
                "penalty_rate_multiplier",
                "leverage_bonus_multiple"
            ]
        );
        let mut q = preset("MOF-2020-21");
        q.leverage_bonus_min_repayment_rate = None;
        assert_eq!(
            q.validate().unwrap_err()[0].field(),
            Some("leverage_bonus_min_repayment_rate")
        );
    }

    #[test]
    fn in_force_picks_the_latest_started() {
        let all = presets();
        assert_eq!(in_force_on(&all, date(2002, 6, 1)), None);
        assert_eq!(
            in_force_on(&all, date(2003, 1, 1)).unwrap().code,
            "PBOC-2002-394"
        );
        assert_eq!(
            in_force_on(&all, date(2007, 3, 1)).unwrap().code,
            "PBOC-2006-5"
        );
        assert_eq!(
            in_force_on(&all, date(2019, 12, 31)).unwrap().code,
            "PBOC-2008-238"
        );
        assert_eq!(
            in_force_on(&all, date(2024, 1, 1)).unwrap().code,
            "MOF-2020-21"
        );
    }

    #[test]
    fn serde_round_trip_with_string_decimals() {
        let p = preset("MOF-2020-21");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["individual_limit"], "200000.00");
        assert_eq!(json["partnership_limit_multiple"], "1.10");
        assert_eq!(json["leverage_bonus_multiple"], "10");
        assert_eq!(json["benchmark_rate"], "0.0385");
        assert_eq!(json["effective_from"], "2020-05-01");
        assert_eq!(json["subsidy_shares"]["laid_off"], "0.560748");
        let back: Policy = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, p);

        let mut as_number = json.clone();
        as_number["leverage_multiple"] = serde_json::json!(5);
        assert!(serde_json::from_value::<Policy>(as_number).is_err());
        let mut unknown = json;
        unknown["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<Policy>(unknown).is_err());
    }

    #[test]
    fn openapi_schema_references_value_types() {
        use utoipa::{PartialSchema, ToSchema};
        let json = serde_json::to_value(Policy::schema()).unwrap();
        assert_eq!(
            json["properties"]["individual_limit"]["$ref"],
            "#/components/schemas/Money"
        );
        assert_eq!(json["properties"]["leverage_multiple"]["type"], "string");
        assert_eq!(
            json["properties"]["leverage_multiple"]["pattern"],
            LEVERAGE_PATTERN
        );
        assert_eq!(
            json["properties"]["penalty_rate_multiplier"]["pattern"],
            MULTIPLE_PATTERN
        );
        let mut schemas = Vec::new();
        Policy::schemas(&mut schemas);
        let names: Vec<&str> = schemas.iter().map(|(n, _)| n.as_str()).collect();
        for n in ["Money", "Rate", "Share", "SubsidyShares"] {
            assert!(names.contains(&n), "{n} not in {names:?}");
        }
    }
}
