//! Interest subsidy (财政贴息) owed per calendar quarter.
//!
//! Only micro-profit loans (微利项目) earn a subsidy, at the share the policy gives the
//! borrower's category (`policy.subsidy_share(category)`). An instalment's interest is
//! subsidised only if it was paid on time — fully paid (`paid_on`) by its due date + the
//! policy's grace days — and it is not in an extension period (展期: no subsidy). An instalment
//! counts in the quarter of its **due date**; its subsidy is [`subsidy_of`] its interest
//! (rounded per instalment, half away from zero, as the schedule shows it), and a quarter's
//! subsidy is the sum of its instalments', so the figures reconcile with the schedule view.
//!
//! Pass the interest actually charged (the position's `interest`, lowered by early
//! repayments), not the scheduled one.

use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;

use crate::fen;
use crate::position::Position;
use crate::{subsidy_of, DomainError, Money, Share};

/// What the subsidy needs to know of one instalment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SubsidyInstalment {
    pub due_date: NaiveDate,
    /// The interest charged for the instalment's period.
    pub interest: Money,
    /// The day nothing was owed on it any more.
    pub paid_on: Option<NaiveDate>,
    /// In an extension period: never subsidised.
    pub extended: bool,
}

impl SubsidyInstalment {
    /// The instalments of a position; those numbered `first_extended` and later (see
    /// `Extension::first_extended`) are marked extended.
    pub fn from_position<K>(
        position: &Position<K>,
        first_extended: Option<u32>,
    ) -> Vec<SubsidyInstalment> {
        position
            .instalments
            .iter()
            .map(|i| SubsidyInstalment {
                due_date: i.due_date,
                interest: i.interest,
                paid_on: i.paid_on,
                extended: first_extended.is_some_and(|first| i.number >= first),
            })
            .collect()
    }

    /// Paid by the due date + `grace_days` and not extended.
    pub fn eligible(&self, grace_days: u32) -> bool {
        let deadline = self
            .due_date
            .checked_add_signed(Duration::days(i64::from(grace_days)))
            .unwrap_or(NaiveDate::MAX);
        !self.extended && self.paid_on.is_some_and(|p| p <= deadline)
    }
}

/// A calendar quarter, `quarter` 1 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Quarter {
    pub year: i32,
    pub quarter: u8,
}

impl Quarter {
    /// The first day of the quarter.
    pub fn first_day(&self) -> NaiveDate {
        let month = u32::from(self.quarter.clamp(1, 4)) * 3 - 2;
        NaiveDate::from_ymd_opt(self.year, month, 1).unwrap_or(NaiveDate::MIN)
    }

    /// The last day of the quarter.
    pub fn last_day(&self) -> NaiveDate {
        let next = match self.quarter {
            4.. => NaiveDate::from_ymd_opt(self.year + 1, 1, 1),
            q => NaiveDate::from_ymd_opt(self.year, u32::from(q) * 3 + 1, 1),
        };
        next.and_then(|d| d.pred_opt()).unwrap_or(NaiveDate::MAX)
    }
}

/// The calendar quarter of `date`: `(year, 1..=4)`.
pub fn quarter_of(date: NaiveDate) -> (i32, u8) {
    // month 1..=12 → quarter 1..=4; fits a u8.
    (date.year(), ((date.month() - 1) / 3 + 1) as u8)
}

/// The subsidy owed for one quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuarterSubsidy {
    pub quarter: Quarter,
    /// Instalments that earned a subsidy.
    pub instalments: u32,
    /// Their interest.
    pub interest: Money,
    /// The subsidy: the sum of each instalment's share of its interest.
    pub subsidy: Money,
}

/// The subsidy per quarter (by due date) of one loan's instalments, for quarters with at least
/// one eligible instalment, in order. Nothing for a loan that is not `micro_profit`. Sums over
/// loans, banks and regions by adding the quarters' amounts.
pub fn quarterly_subsidy(
    instalments: &[SubsidyInstalment],
    micro_profit: bool,
    share: Share,
    grace_days: u32,
) -> Result<Vec<QuarterSubsidy>, DomainError> {
    if !micro_profit || share.is_zero() {
        return Ok(Vec::new());
    }
    let mut by_quarter: std::collections::BTreeMap<Quarter, (u32, i128, i128)> =
        std::collections::BTreeMap::new();
    for i in instalments
        .iter()
        .filter(|i| i.eligible(grace_days) && !i.interest.is_zero())
    {
        let (year, quarter) = quarter_of(i.due_date);
        let entry = by_quarter.entry(Quarter { year, quarter }).or_default();
        entry.0 += 1;
        entry.1 += fen::fen(i.interest);
        entry.2 += fen::fen(subsidy_of(i.interest, share));
    }
    by_quarter
        .into_iter()
        .map(|(quarter, (count, interest, subsidy))| {
            Ok(QuarterSubsidy {
                quarter,
                instalments: count,
                interest: fen::money(interest)?,
                subsidy: fen::money(subsidy)?,
            })
        })
        .collect()
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

    #[test]
    fn quarters() {
        assert_eq!(quarter_of(d(2006, 1, 1)), (2006, 1));
        assert_eq!(quarter_of(d(2006, 3, 31)), (2006, 1));
        assert_eq!(quarter_of(d(2006, 4, 1)), (2006, 2));
        assert_eq!(quarter_of(d(2006, 9, 30)), (2006, 3));
        assert_eq!(quarter_of(d(2006, 12, 31)), (2006, 4));
        let q = Quarter {
            year: 2008,
            quarter: 1,
        };
        assert_eq!(
            (q.first_day(), q.last_day()),
            (d(2008, 1, 1), d(2008, 3, 31))
        );
        let q = Quarter {
            year: 2006,
            quarter: 4,
        };
        assert_eq!(
            (q.first_day(), q.last_day()),
            (d(2006, 10, 1), d(2006, 12, 31))
        );
        let q = Quarter {
            year: 2006,
            quarter: 2,
        };
        assert_eq!(q.last_day(), d(2006, 6, 30));
    }

    fn inst(due: NaiveDate, interest: &str, paid_on: Option<NaiveDate>) -> SubsidyInstalment {
        SubsidyInstalment {
            due_date: due,
            interest: m(interest),
            paid_on,
            extended: false,
        }
    }

    #[test]
    fn by_hand() {
        // 243.75 of interest a month (50,000.00 at 5.85 %, monthly-30), share 0.5:
        // 243.75 × 0.5 = 121.875 → 121.88 per instalment.
        let half = Share::parse("0.5").unwrap();
        let mut extended = inst(d(2006, 6, 15), "243.75", Some(d(2006, 6, 15)));
        extended.extended = true;
        let list = [
            inst(d(2006, 2, 15), "243.75", Some(d(2006, 2, 15))), // Q1, on time
            inst(d(2006, 3, 15), "243.75", Some(d(2006, 3, 1))),  // Q1, early
            inst(d(2006, 4, 15), "243.75", Some(d(2006, 4, 18))), // Q2, 3 days late
            inst(d(2006, 5, 15), "243.75", None),                 // Q2, unpaid
            extended,                                             // Q2, extension period
            inst(d(2006, 7, 15), "243.75", Some(d(2006, 7, 15))), // Q3, on time
        ];
        let q = quarterly_subsidy(&list, true, half, 0).unwrap();
        let got: Vec<(i32, u8, u32, Money, Money)> = q
            .iter()
            .map(|q| {
                (
                    q.quarter.year,
                    q.quarter.quarter,
                    q.instalments,
                    q.interest,
                    q.subsidy,
                )
            })
            .collect();
        // Q1: 2 × 121.88 = 243.76 on 487.50 of interest; Q3: 121.88. Q2: nothing eligible.
        assert_eq!(
            got,
            [
                (2006, 1, 2, m("487.50"), m("243.76")),
                (2006, 3, 1, m("243.75"), m("121.88")),
            ]
        );
        // With 3 grace days the late April instalment counts: Q2 121.88.
        let q = quarterly_subsidy(&list, true, half, 3).unwrap();
        assert_eq!(q[1].quarter.quarter, 2);
        assert_eq!(q[1].subsidy, m("121.88"));
        // Not micro-profit, or a zero share: nothing.
        assert!(quarterly_subsidy(&list, false, half, 0).unwrap().is_empty());
        assert!(quarterly_subsidy(&list, true, Share::ZERO, 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn from_a_position_with_an_extended_instalment() {
        // 12,000.00 at 6 %, interest monthly (60.00), 2 months from 2006-01-15; the first
        // paid on time, the second (60.00 + 12,000.00) 5 days late.
        let start = d(2006, 1, 15);
        let s = build_schedule(
            m("12000"),
            Rate::parse("0.06").unwrap(),
            2,
            ScheduleMethod::InterestMonthly,
            start,
            InterestConvention::Monthly30,
        )
        .unwrap();
        // 5 days late: penalty 12,000 × 0.09 × 5 / 360 = 15.00
        let r = [
            Repayment {
                id: 1u64,
                value_date: d(2006, 2, 15),
                amount: m("60"),
            },
            Repayment {
                id: 2,
                value_date: d(2006, 3, 20),
                amount: m("12075"),
            },
        ];
        let p = allocate(start, &s, dec!(0.09), &r, d(2006, 3, 31)).unwrap();
        assert!(p.settled);
        let list = SubsidyInstalment::from_position(&p, None);
        let q = quarterly_subsidy(&list, true, Share::ONE, 0).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].subsidy, m("60.00")); // only February's
                                              // Marking instalment 1 as extended removes it too.
        let list = SubsidyInstalment::from_position(&p, Some(1));
        assert!(list.iter().all(|i| i.extended));
        assert!(quarterly_subsidy(&list, true, Share::ONE, 10)
            .unwrap()
            .is_empty());
    }
}
