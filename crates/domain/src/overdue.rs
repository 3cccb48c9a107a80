//! Overdue (逾期): days past due and portfolio at risk by days-past-due bucket.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::fen;
use crate::repayment_rate::percent;
use crate::text::text_enum;
use crate::{DomainError, Money};

/// Days an instalment due on `due_date` is past due as of `as_of`: `as_of − due_date`, or 0 if
/// not yet past due (paid on the due date is on time) or paid by `as_of` (`paid_on`: the day
/// nothing was owed on it any more; a `paid_on` after `as_of` means still unpaid then).
pub fn days_past_due(due_date: NaiveDate, paid_on: Option<NaiveDate>, as_of: NaiveDate) -> u32 {
    if paid_on.is_some_and(|p| p <= as_of) || as_of <= due_date {
        return 0;
    }
    u32::try_from((as_of - due_date).num_days()).unwrap_or(u32::MAX)
}

text_enum! {
    /// Days-past-due bucket of a loan (of its oldest unpaid instalment).
    pub enum ParBucket (field = "bucket") {
        /// Nothing past due.
        #[serde(rename = "current")]
        Current = "current",
        /// 1 to 30 days past due.
        #[serde(rename = "1-30")]
        Days1To30 = "1-30",
        /// 31 to 90 days past due.
        #[serde(rename = "31-90")]
        Days31To90 = "31-90",
        /// More than 90 days past due (91 and up).
        #[serde(rename = "90+")]
        Over90 = "90+",
    }
}

impl ParBucket {
    /// The bucket of a loan `days_past_due` days past due.
    pub fn of(days_past_due: u32) -> ParBucket {
        match days_past_due {
            0 => ParBucket::Current,
            1..=30 => ParBucket::Days1To30,
            31..=90 => ParBucket::Days31To90,
            _ => ParBucket::Over90,
        }
    }
}

/// Loans and their outstanding principal in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketTotal {
    pub bucket: ParBucket,
    pub loans: u64,
    pub outstanding_principal: Money,
}

/// Portfolio at risk. PAR30 / PAR90 are the **whole** outstanding principal of the loans more
/// than 30 / 90 days past due (the microfinance convention), not only their overdue part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParSummary {
    pub loans: u64,
    pub outstanding_principal: Money,
    /// One per bucket, in the order of [`ParBucket::ALL`], empty buckets included.
    pub buckets: Vec<BucketTotal>,
    pub par30: Money,
    pub par90: Money,
}

impl ParSummary {
    /// PAR30 as a percentage of the outstanding principal (2 decimals); `None` if nothing is
    /// outstanding.
    pub fn par30_percent(&self) -> Option<Decimal> {
        percent(self.par30.amount(), self.outstanding_principal.amount())
    }

    /// PAR90 as a percentage of the outstanding principal (2 decimals).
    pub fn par90_percent(&self) -> Option<Decimal> {
        percent(self.par90.amount(), self.outstanding_principal.amount())
    }
}

/// Sums loans given as `(outstanding principal, days past due)` into buckets and PAR. Pass
/// only loans with something outstanding (settled, compensated and written-off loans are not
/// at risk of the bank any more). Totals are sums, so a region's summary is the sum of its
/// children's.
pub fn par_summary<I>(loans: I) -> Result<ParSummary, DomainError>
where
    I: IntoIterator<Item = (Money, u32)>,
{
    let mut counts = [0u64; 4];
    let mut amounts = [0i128; 4];
    for (outstanding, days) in loans {
        let k = ParBucket::ALL
            .iter()
            .position(|b| *b == ParBucket::of(days))
            .unwrap_or(0);
        counts[k] += 1;
        amounts[k] += fen::fen(outstanding);
    }
    let buckets = ParBucket::ALL
        .iter()
        .zip(counts.iter().zip(amounts))
        .map(|(bucket, (loans, amount))| {
            Ok(BucketTotal {
                bucket: *bucket,
                loans: *loans,
                outstanding_principal: fen::money(amount)?,
            })
        })
        .collect::<Result<Vec<_>, DomainError>>()?;
    Ok(ParSummary {
        loans: counts.iter().sum(),
        outstanding_principal: fen::money(amounts.iter().sum())?,
        par30: fen::money(amounts[2] + amounts[3])?,
        par90: fen::money(amounts[3])?,
        buckets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn d(y: i32, mo: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, day).unwrap()
    }
    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn days_past_due_counts_from_the_due_date() {
        let due = d(2006, 6, 30);
        assert_eq!(days_past_due(due, None, d(2006, 6, 29)), 0);
        assert_eq!(days_past_due(due, None, due), 0); // due today is not past due
        assert_eq!(days_past_due(due, None, d(2006, 7, 1)), 1);
        assert_eq!(days_past_due(due, None, d(2006, 8, 15)), 46); // 31 + 15
        assert_eq!(days_past_due(due, Some(d(2006, 8, 15)), d(2006, 8, 15)), 0);
        // paid after as_of: still past due then
        assert_eq!(days_past_due(due, Some(d(2006, 8, 15)), d(2006, 8, 1)), 32);
    }

    #[test]
    fn buckets() {
        assert_eq!(ParBucket::of(0), ParBucket::Current);
        assert_eq!(ParBucket::of(1), ParBucket::Days1To30);
        assert_eq!(ParBucket::of(30), ParBucket::Days1To30);
        assert_eq!(ParBucket::of(31), ParBucket::Days31To90);
        assert_eq!(ParBucket::of(90), ParBucket::Days31To90);
        assert_eq!(ParBucket::of(91), ParBucket::Over90);
        assert_eq!(
            serde_json::to_string(&ParBucket::Over90).unwrap(),
            "\"90+\""
        );
        assert_eq!("1-30".parse::<ParBucket>().unwrap(), ParBucket::Days1To30);
        for b in ParBucket::ALL {
            assert_eq!(
                serde_json::to_string(b).unwrap(),
                format!("\"{}\"", b.as_str())
            );
        }
    }

    #[test]
    fn par_by_hand() {
        // Outstanding 100,000 in all: 50,000 current, 20,000 at 10 days, 20,000 at 45 days,
        // 10,000 at 120 days. PAR30 = 20,000 + 10,000 = 30,000 = 30.00 %; PAR90 = 10,000 =
        // 10.00 %.
        let s = par_summary([
            (m("50000"), 0),
            (m("20000"), 10),
            (m("20000"), 45),
            (m("10000"), 120),
        ])
        .unwrap();
        assert_eq!(s.loans, 4);
        assert_eq!(s.outstanding_principal, m("100000"));
        assert_eq!(s.par30, m("30000"));
        assert_eq!(s.par90, m("10000"));
        assert_eq!(s.par30_percent(), Some(dec!(30.00)));
        assert_eq!(s.par90_percent(), Some(dec!(10.00)));
        let counts: Vec<(ParBucket, u64)> = s.buckets.iter().map(|b| (b.bucket, b.loans)).collect();
        assert_eq!(
            counts,
            [
                (ParBucket::Current, 1),
                (ParBucket::Days1To30, 1),
                (ParBucket::Days31To90, 1),
                (ParBucket::Over90, 1)
            ]
        );
        let empty = par_summary(std::iter::empty()).unwrap();
        assert_eq!(empty.par30_percent(), None);
        assert_eq!(empty.buckets.len(), 4);
    }
}
