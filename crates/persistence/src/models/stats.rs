//! Facts kept for statistics, and targets.
use crate::schema::{instalment_facts, principal_payments, targets};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = instalment_facts, check_for_backend(diesel::pg::Pg))]
pub struct InstalmentFactRow {
    pub loan_id: Uuid,
    pub number: i32,
    pub due_date: NaiveDate,
    pub principal: Decimal,
    pub interest: Decimal,
    pub subsidy: Decimal,
    pub extended: bool,
    pub paid_on: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = principal_payments, check_for_backend(diesel::pg::Pg))]
pub struct PrincipalPaymentRow {
    pub loan_id: Uuid,
    pub number: i32,
    pub value_date: NaiveDate,
    pub principal: Decimal,
    /// Its instalment's (so that a moved due date rewrites the row, and its rollup month).
    pub due_date: NaiveDate,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = targets, check_for_backend(diesel::pg::Pg))]
pub struct TargetRow {
    pub id: i64,
    pub region_code: String,
    pub year: i32,
    pub measure: String,
    pub value: Decimal,
    pub set_by: Uuid,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = targets, check_for_backend(diesel::pg::Pg))]
pub struct NewTarget {
    pub region_code: String,
    pub year: i32,
    pub measure: String,
    pub value: Decimal,
    pub set_by: Uuid,
}

/// A run of as-of dates `[starts_on, ends_on)` (`ends_on` `None`: still) on which a loan is
/// overdue the same way: the due date of its oldest instalment not paid, its principal past
/// due and not paid, and its principal not repaid. Derived from the loan's facts (see
/// [`overdue_spans`]), so that overdue and PAR on any date read the loans overdue on it
/// rather than every instalment not paid by then (migration 000016).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OverdueSpan {
    pub loan_id: Uuid,
    pub starts_on: NaiveDate,
    pub ends_on: Option<NaiveDate>,
    pub oldest_due: NaiveDate,
    pub overdue: Decimal,
    pub outstanding: Decimal,
    /// The loan's last due date (so that the count-based rate needs no look at the loan).
    pub maturity: NaiveDate,
}

/// The overdue spans of the loans whose facts these are (all of each loan's rows, in any
/// order). An instalment is overdue on date A when it fell due before A and was not paid in
/// full by A (`paid_on` after A, or never); what was paid of it is its payments dated up to A.
/// A loan that was never late and has nothing left to pay costs one pass over its
/// instalments; an active loan has spans for its instalments not yet due too (each would be
/// overdue from the day after its due date if nothing were paid, and days pass with no write).
pub fn overdue_spans(
    facts: &[InstalmentFactRow],
    payments: &[PrincipalPaymentRow],
) -> Vec<OverdueSpan> {
    overdue_spans_of(facts, payments)
}

/// [`overdue_spans`] of some of the rows (all of each loan's rows among them).
pub fn overdue_spans_of<'a>(
    facts: impl IntoIterator<Item = &'a InstalmentFactRow>,
    payments: impl IntoIterator<Item = &'a PrincipalPaymentRow>,
) -> Vec<OverdueSpan> {
    use std::collections::BTreeMap;
    let mut by_loan: BTreeMap<Uuid, (Vec<&InstalmentFactRow>, Vec<&PrincipalPaymentRow>)> =
        BTreeMap::new();
    for f in facts {
        by_loan.entry(f.loan_id).or_default().0.push(f);
    }
    for p in payments {
        by_loan.entry(p.loan_id).or_default().1.push(p);
    }
    let mut out = Vec::new();
    for (loan_id, (facts, payments)) in by_loan {
        // Overdue on some date only if an instalment was paid two days or more after its due
        // date, or not at all (paid the day after, it is overdue on no date).
        let late = |f: &&InstalmentFactRow| {
            f.paid_on
                .is_none_or(|t| f.due_date.succ_opt().is_some_and(|d1| t > d1))
        };
        if !facts.iter().any(late) {
            continue;
        }
        // The state changes only on these dates: an instalment falls due the day before, is
        // paid in full, or a payment is made.
        let mut dates: Vec<NaiveDate> = facts
            .iter()
            .filter_map(|f| f.due_date.succ_opt())
            .chain(facts.iter().filter_map(|f| f.paid_on))
            .chain(payments.iter().map(|p| p.value_date))
            .collect();
        dates.sort_unstable();
        dates.dedup();
        let principal: Decimal = facts.iter().map(|f| f.principal).sum();
        let Some(maturity) = facts.iter().map(|f| f.due_date).max() else {
            continue;
        };
        let mut to_instalment: BTreeMap<i32, Vec<&PrincipalPaymentRow>> = BTreeMap::new();
        for p in &payments {
            to_instalment.entry(p.number).or_default().push(p);
        }
        let mut in_order = payments.clone();
        in_order.sort_unstable_by_key(|p| p.value_date);
        let (mut next, mut repaid) = (0, Decimal::ZERO);
        let mut current: Option<OverdueSpan> = None;
        for a in dates {
            // Dates come in order: the loan's payments up to `a` are summed once.
            while let Some(p) = in_order.get(next).filter(|p| p.value_date <= a) {
                repaid += p.principal;
                next += 1;
            }
            let mut oldest: Option<NaiveDate> = None;
            let mut overdue = Decimal::ZERO;
            for f in facts
                .iter()
                .filter(|f| f.due_date < a && f.paid_on.is_none_or(|t| t > a))
            {
                oldest = Some(oldest.map_or(f.due_date, |o| o.min(f.due_date)));
                let paid: Decimal = to_instalment
                    .get(&f.number)
                    .into_iter()
                    .flatten()
                    .filter(|p| p.value_date <= a)
                    .map(|p| p.principal)
                    .sum();
                overdue += f.principal - paid;
            }
            let state = oldest.map(|oldest_due| (oldest_due, overdue, principal - repaid));
            let same = match (&current, &state) {
                (Some(c), Some((o, d, s))) => {
                    (c.oldest_due, c.overdue, c.outstanding) == (*o, *d, *s)
                }
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            if let Some(mut c) = current.take() {
                c.ends_on = Some(a);
                out.push(c);
            }
            current = state.map(|(oldest_due, overdue, outstanding)| OverdueSpan {
                loan_id,
                starts_on: a,
                ends_on: None,
                oldest_due,
                overdue,
                outstanding,
                maturity,
            });
        }
        out.extend(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_loan_is_overdue_from_the_day_after_a_due_date_until_paid() {
        let loan = Uuid::from_u128(7);
        let fact = |number, due, principal: i64, paid_on: Option<&str>| InstalmentFactRow {
            loan_id: loan,
            number,
            due_date: d(due),
            principal: Decimal::from(principal),
            interest: Decimal::ONE,
            subsidy: Decimal::ZERO,
            extended: false,
            paid_on: paid_on.map(d),
        };
        let pay = |number, on, principal: i64, due| PrincipalPaymentRow {
            loan_id: loan,
            number,
            value_date: d(on),
            principal: Decimal::from(principal),
            due_date: d(due),
        };
        // The first instalment paid on its day; the second 100 paid late in two parts (40 on
        // 03-10, 60 on 03-20); the third never.
        let facts = [
            fact(1, "2025-01-31", 100, Some("2025-01-31")),
            fact(2, "2025-02-28", 100, Some("2025-03-20")),
            fact(3, "2025-03-31", 100, None),
        ];
        let payments = [
            pay(1, "2025-01-31", 100, "2025-01-31"),
            pay(2, "2025-03-10", 40, "2025-02-28"),
            pay(2, "2025-03-20", 60, "2025-02-28"),
        ];
        let span = |from, to: Option<&str>, oldest, overdue: i64, outstanding: i64| OverdueSpan {
            loan_id: loan,
            starts_on: d(from),
            ends_on: to.map(d),
            oldest_due: d(oldest),
            overdue: Decimal::from(overdue),
            outstanding: Decimal::from(outstanding),
            maturity: d("2025-03-31"),
        };
        assert_eq!(
            overdue_spans(&facts, &payments),
            vec![
                span("2025-03-01", Some("2025-03-10"), "2025-02-28", 100, 200),
                span("2025-03-10", Some("2025-03-20"), "2025-02-28", 60, 160),
                span("2025-04-01", None, "2025-03-31", 100, 100),
            ]
        );
        // Paid the day after its due date, an instalment is overdue on no date.
        let facts = [fact(1, "2025-01-31", 100, Some("2025-02-01"))];
        assert_eq!(overdue_spans(&facts, &[]), vec![]);
    }
}
