//! Repayment rate (到期还贷率) arithmetic for statistics, on the principal that fell due in a
//! period (domain.md, "Statistics"):
//!
//! * `collection_rate = repaid by the as-of date / fell due`;
//! * `on_time_rate = repaid by due date + grace days / fell due`;
//! * count-based: loans whose last instalment fell due in the period and that are repaid in
//!   full by the as-of date / loans whose last instalment fell due in it.
//!
//! Principal only. A [`RepaymentTally`] holds sums and counts, never percentages, so tallies of
//! loans, banks or sub-regions add up to their parent's exactly and the rates are computed last.
//! Money paid by the fund (compensation) is not a repayment and must not be passed as one.

use chrono::{Duration, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::fen;
use crate::position::Position;
use crate::{DomainError, Money};

/// `numerator / denominator` as a percentage rounded to 0.01 half away from zero
/// (75,000 / 85,000 → 88.24); `None` when the denominator is zero.
pub fn percent(numerator: Decimal, denominator: Decimal) -> Option<Decimal> {
    if denominator.is_zero() {
        return None;
    }
    let ratio = numerator.checked_mul(Decimal::ONE_HUNDRED)? / denominator;
    Some(crate::round_money(ratio))
}

/// The principal of one instalment and the principal paid towards it, by value date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrincipalDue {
    pub due_date: NaiveDate,
    pub principal: Money,
    /// `(value date, principal paid)`, any order.
    pub payments: Vec<(NaiveDate, Money)>,
}

impl PrincipalDue {
    /// The instalments of a loan's position with the principal each repayment paid to them.
    pub fn from_position<K>(position: &Position<K>) -> Vec<PrincipalDue> {
        position
            .instalments
            .iter()
            .map(|i| PrincipalDue {
                due_date: i.due_date,
                principal: i.principal,
                payments: position
                    .allocations
                    .iter()
                    .flat_map(|a| {
                        a.parts
                            .iter()
                            .filter(|p| p.number == i.number && !p.to_principal.is_zero())
                            .map(|p| (a.value_date, p.to_principal))
                    })
                    .collect(),
            })
            .collect()
    }

    /// Principal paid on or before `day`, at most the principal.
    fn paid_by(&self, day: NaiveDate) -> i128 {
        let paid: i128 = self
            .payments
            .iter()
            .filter(|(date, _)| *date <= day)
            .map(|(_, amount)| fen::fen(*amount))
            .sum();
        paid.min(fen::fen(self.principal))
    }
}

/// A period `[from, to]` (both days included), an as-of date and the grace days that still
/// count as on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePeriod {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub as_of: NaiveDate,
    pub grace_days: u32,
}

impl RatePeriod {
    /// Checks `from ≤ to`.
    pub fn new(
        from: NaiveDate,
        to: NaiveDate,
        as_of: NaiveDate,
        grace_days: u32,
    ) -> Result<Self, DomainError> {
        if from > to {
            return Err(DomainError::invalid(
                "from",
                format!("the period starts on {from}, after its end {to}"),
            ));
        }
        Ok(RatePeriod {
            from,
            to,
            as_of,
            grace_days,
        })
    }

    fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

/// Sums and counts behind the repayment rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RepaymentTally {
    /// Principal of the instalments due in the period.
    pub fell_due: Money,
    /// Of that, repaid by the as-of date.
    pub repaid_by_as_of: Money,
    /// Of that, repaid by the due date + grace days (and by the as-of date).
    pub repaid_on_time: Money,
    /// Loans whose last instalment fell due in the period.
    pub loans_matured: u64,
    /// Of those, loans with all their principal repaid by the as-of date.
    pub loans_matured_repaid: u64,
}

impl RepaymentTally {
    /// The tally of one loan's instalments.
    pub fn of_loan(
        instalments: &[PrincipalDue],
        period: &RatePeriod,
    ) -> Result<RepaymentTally, DomainError> {
        let (mut fell_due, mut repaid, mut on_time) = (0i128, 0i128, 0i128);
        for i in instalments.iter().filter(|i| period.contains(i.due_date)) {
            fell_due += fen::fen(i.principal);
            repaid += i.paid_by(period.as_of);
            let deadline = i
                .due_date
                .checked_add_signed(Duration::days(i64::from(period.grace_days)))
                .unwrap_or(NaiveDate::MAX);
            on_time += i.paid_by(deadline.min(period.as_of));
        }
        let last_due = instalments.iter().map(|i| i.due_date).max();
        let matured = last_due.is_some_and(|d| period.contains(d));
        let repaid_in_full = instalments
            .iter()
            .all(|i| i.paid_by(period.as_of) == fen::fen(i.principal));
        Ok(RepaymentTally {
            fell_due: fen::money(fell_due)?,
            repaid_by_as_of: fen::money(repaid)?,
            repaid_on_time: fen::money(on_time)?,
            loans_matured: u64::from(matured),
            loans_matured_repaid: u64::from(matured && repaid_in_full),
        })
    }

    /// The tally of many loans: the sum of theirs.
    pub fn of_loans<'a, I>(loans: I, period: &RatePeriod) -> Result<RepaymentTally, DomainError>
    where
        I: IntoIterator<Item = &'a [PrincipalDue]>,
    {
        loans
            .into_iter()
            .try_fold(RepaymentTally::default(), |acc, loan| {
                acc.add(&RepaymentTally::of_loan(loan, period)?)
            })
    }

    /// The sum of two tallies (a region and its sub-region, two banks, …).
    pub fn add(&self, other: &RepaymentTally) -> Result<RepaymentTally, DomainError> {
        let add = |a: Money, b: Money| a.checked_add(b).ok_or_else(fen::too_large);
        Ok(RepaymentTally {
            fell_due: add(self.fell_due, other.fell_due)?,
            repaid_by_as_of: add(self.repaid_by_as_of, other.repaid_by_as_of)?,
            repaid_on_time: add(self.repaid_on_time, other.repaid_on_time)?,
            loans_matured: self.loans_matured + other.loans_matured,
            loans_matured_repaid: self.loans_matured_repaid + other.loans_matured_repaid,
        })
    }

    /// Repaid by the as-of date / fell due, in % (2 decimals); `None` if nothing fell due.
    pub fn collection_rate(&self) -> Option<Decimal> {
        percent(self.repaid_by_as_of.amount(), self.fell_due.amount())
    }

    /// Repaid on time / fell due, in % (2 decimals); `None` if nothing fell due.
    pub fn on_time_rate(&self) -> Option<Decimal> {
        percent(self.repaid_on_time.amount(), self.fell_due.amount())
    }

    /// Matured loans repaid in full / matured loans, in % (2 decimals); `None` if none matured.
    pub fn count_rate(&self) -> Option<Decimal> {
        percent(
            Decimal::from(self.loans_matured_repaid),
            Decimal::from(self.loans_matured),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::{allocate, Repayment};
    use crate::{build_schedule, InterestConvention, Rate, ScheduleMethod};
    use rust_decimal_macros::dec;

    fn d(y: i32, mo: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, day).unwrap()
    }
    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }
    fn due(date: NaiveDate, principal: &str, payments: &[(NaiveDate, &str)]) -> PrincipalDue {
        PrincipalDue {
            due_date: date,
            principal: m(principal),
            payments: payments.iter().map(|(d, a)| (*d, m(a))).collect(),
        }
    }

    /// domain.md, "Statistics": period 2006, as of 2006-12-31, grace 0 days, principal only.
    fn loans_a_to_d() -> Vec<Vec<PrincipalDue>> {
        vec![
            // A, bullet 20,000.00 due 2006-03-31, paid 03-30
            vec![due(d(2006, 3, 31), "20000", &[(d(2006, 3, 30), "20000")])],
            // B, bullet 30,000.00 due 2006-06-30, paid 08-15
            vec![due(d(2006, 6, 30), "30000", &[(d(2006, 8, 15), "30000")])],
            // C, 50,000.00 in two equal-principal parts due 2006-09-30 and 2007-03-31, first
            // paid on time
            vec![
                due(d(2006, 9, 30), "25000", &[(d(2006, 9, 30), "25000")]),
                due(d(2007, 3, 31), "25000", &[]),
            ],
            // D, bullet 10,000.00 due 2006-12-31, nothing paid
            vec![due(d(2006, 12, 31), "10000", &[])],
        ]
    }

    #[test]
    fn the_worked_example_of_domain_md() {
        let period = RatePeriod::new(d(2006, 1, 1), d(2006, 12, 31), d(2006, 12, 31), 0).unwrap();
        let loans = loans_a_to_d();
        let t = RepaymentTally::of_loans(loans.iter().map(Vec::as_slice), &period).unwrap();
        // fell due 20,000 + 30,000 + 25,000 + 10,000 = 85,000.00
        assert_eq!(t.fell_due, m("85000"));
        // on time: A 20,000 + C 25,000 = 45,000.00
        assert_eq!(t.repaid_on_time, m("45000"));
        // by 2006-12-31: A 20,000 + B 30,000 + C 25,000 = 75,000.00
        assert_eq!(t.repaid_by_as_of, m("75000"));
        // matured in 2006: A, B, D; repaid in full: A, B
        assert_eq!((t.loans_matured, t.loans_matured_repaid), (3, 2));
        // 75,000 / 85,000 = 0.882352… → 88.24 %
        assert_eq!(t.collection_rate(), Some(dec!(88.24)));
        // 45,000 / 85,000 = 0.529411… → 52.94 %
        assert_eq!(t.on_time_rate(), Some(dec!(52.94)));
        // 2 / 3 = 0.666… → 66.67 %
        assert_eq!(t.count_rate(), Some(dec!(66.67)));

        // Per-loan tallies add up to the same total.
        let mut sum = RepaymentTally::default();
        for loan in &loans {
            sum = sum
                .add(&RepaymentTally::of_loan(loan, &period).unwrap())
                .unwrap();
        }
        assert_eq!(sum, t);
    }

    #[test]
    fn grace_days_and_as_of() {
        let b = [due(d(2006, 6, 30), "30000", &[(d(2006, 7, 10), "30000")])];
        // 10 days late: on time with 10 grace days, not with 9.
        let p = |grace| RatePeriod::new(d(2006, 1, 1), d(2006, 12, 31), d(2006, 12, 31), grace);
        let t10 = RepaymentTally::of_loan(&b, &p(10).unwrap()).unwrap();
        assert_eq!(t10.repaid_on_time, m("30000"));
        let t9 = RepaymentTally::of_loan(&b, &p(9).unwrap()).unwrap();
        assert_eq!(t9.repaid_on_time, Money::ZERO);
        // As of 2006-07-05 nothing is repaid yet, even with 10 grace days.
        let early = RatePeriod::new(d(2006, 1, 1), d(2006, 12, 31), d(2006, 7, 5), 10).unwrap();
        let t = RepaymentTally::of_loan(&b, &early).unwrap();
        assert_eq!(
            (t.repaid_by_as_of, t.repaid_on_time),
            (Money::ZERO, Money::ZERO)
        );
        assert_eq!((t.loans_matured, t.loans_matured_repaid), (1, 0));
        assert!(RatePeriod::new(d(2007, 1, 1), d(2006, 1, 1), d(2007, 1, 1), 0).is_err());
        assert_eq!(RepaymentTally::default().collection_rate(), None);
        assert_eq!(RepaymentTally::default().count_rate(), None);
    }

    #[test]
    fn from_a_position() {
        // 50,000.00 at 0 % in two monthly equal-principal parts of 25,000.00 from 2006-08-31
        // (due 09-30 and 10-31), the first paid on time through the position.
        let start = d(2006, 8, 31);
        let s = build_schedule(
            m("50000"),
            Rate::ZERO,
            2,
            ScheduleMethod::EqualPrincipal,
            start,
            InterestConvention::Actual360,
        )
        .unwrap();
        assert_eq!(s[0].due_date, d(2006, 9, 30));
        let r = [Repayment {
            id: 1u64,
            value_date: d(2006, 9, 30),
            amount: m("25000"),
        }];
        let p = allocate(start, &s, dec!(0), &r, d(2006, 12, 31)).unwrap();
        let dues = PrincipalDue::from_position(&p);
        assert_eq!(dues[0].payments, [(d(2006, 9, 30), m("25000"))]);
        assert!(dues[1].payments.is_empty());
        let period = RatePeriod::new(d(2006, 1, 1), d(2006, 12, 31), d(2006, 12, 31), 0).unwrap();
        let t = RepaymentTally::of_loan(&dues, &period).unwrap();
        // both parts fell due in 2006 here (09-30 and 10-31): 50,000.00, 25,000.00 repaid;
        // the last instalment fell due in 2006, not repaid in full.
        assert_eq!(t.fell_due, m("50000"));
        assert_eq!(t.repaid_by_as_of, m("25000"));
        assert_eq!(t.collection_rate(), Some(dec!(50.00)));
        assert_eq!((t.loans_matured, t.loans_matured_repaid), (1, 0));
    }

    #[test]
    fn percent_rounds_half_away() {
        assert_eq!(percent(dec!(75000), dec!(85000)), Some(dec!(88.24)));
        assert_eq!(percent(dec!(1), dec!(8)), Some(dec!(12.50)));
        assert_eq!(percent(dec!(1), dec!(0)), None);
        // 1 / 16 = 6.25 %, 1 / 32 = 3.125 % → 3.13 (not banker's 3.12)
        assert_eq!(percent(dec!(1), dec!(32)), Some(dec!(3.13)));
    }
}
