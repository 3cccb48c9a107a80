//! Repayment schedules (还款计划): due dates and the principal and interest of each instalment.
//!
//! Every amount is rounded to the fen half away from zero, per instalment, and the last
//! instalment absorbs the rounding remainder so that the principals sum exactly to the loan.

use chrono::{Months, NaiveDate};
use rust_decimal::{Decimal, MathematicalOps};
use serde::{Deserialize, Serialize};

use crate::money::round_money;
use crate::text::text_enum;
use crate::{DomainError, Money, Rate, ScheduleMethod, Share};

/// Longest schedule we build, in months (50 years): far beyond any policy, small enough that
/// every intermediate product fits a `Decimal`.
pub const MAX_SCHEDULE_MONTHS: u32 = 600;

text_enum! {
    /// How interest for a period is counted.
    pub enum InterestConvention (field = "interest_convention") {
        /// Actual days in the period / 360 (Chinese banking convention for daily interest).
        #[serde(rename = "actual_360")]
        Actual360 = "actual_360",
        /// Annual rate / 12 per month, whatever the month's length (× 3 for a quarter).
        #[serde(rename = "monthly_30")]
        Monthly30 = "monthly_30",
    }
}

/// One due date of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Instalment {
    /// 1-based.
    pub number: u32,
    pub due_date: NaiveDate,
    pub principal: Money,
    pub interest: Money,
}

impl Instalment {
    /// Principal + interest.
    pub fn total(&self) -> Decimal {
        self.principal.amount() + self.interest.amount()
    }
}

/// Builds the schedule of a loan of `principal` at `annual_rate` for `term_months`, disbursed
/// on `start`. Instalment k falls due on `start` + k months (clamped to the end of a shorter
/// month, always counted from `start`, so 31 January gives 28/29 February and then 31 March).
///
/// * `bullet`: one instalment at maturity with the interest of the whole term.
/// * `interest_monthly` / `interest_quarterly`: interest every 1 / 3 months on the whole
///   principal, principal with the last instalment; the last quarter is shorter when the term
///   is not a multiple of 3.
/// * `equal_instalment` (等额本息): payment = P·r / (1 − (1 + r)^−n) with r = annual / 12,
///   rounded to the fen; interest each month = outstanding × r; principal = payment −
///   interest; the last instalment takes the outstanding principal. By definition an annuity
///   counts monthly (月利率 = 年利率 / 12), so `convention` does not apply to it. A rate of 0
///   splits the principal like `equal_principal`.
/// * `equal_principal` (等额本金): P / n rounded each month, the last takes the remainder;
///   interest on the outstanding principal under `convention`. If rounding up would leave the
///   last instalment negative (tiny loans over long terms: P < n(n−1)/200 yuan) the regular part
///   is truncated instead.
///
/// The annuity payment involves (1 + r)^n, computed with 28 significant digits; every other
/// amount is computed exactly and then rounded once.
pub fn build_schedule(
    principal: Money,
    annual_rate: Rate,
    term_months: u32,
    method: ScheduleMethod,
    start: NaiveDate,
    convention: InterestConvention,
) -> Result<Vec<Instalment>, DomainError> {
    if principal.is_zero() {
        return Err(DomainError::invalid("principal", "must be positive"));
    }
    if !(1..=MAX_SCHEDULE_MONTHS).contains(&term_months) {
        return Err(DomainError::invalid(
            "term_months",
            format!("must be between 1 and {MAX_SCHEDULE_MONTHS}"),
        ));
    }
    let due = |k: u32| {
        start.checked_add_months(Months::new(k)).ok_or_else(|| {
            DomainError::invalid(
                "start_date",
                "the schedule runs past the last supported date",
            )
        })
    };
    // Interest on `outstanding` from month `from` to month `to` (months counted from start).
    let interest = |outstanding: Money, from: u32, to: u32| -> Result<Money, DomainError> {
        let base = outstanding.amount() * annual_rate.value();
        let (factor, divisor) = match convention {
            InterestConvention::Actual360 => {
                let days = (due(to)? - due(from)?).num_days();
                (Decimal::from(days), 360)
            }
            InterestConvention::Monthly30 => (Decimal::from(to - from), 12),
        };
        money(div_round(base * factor, divisor))
    };

    let mut out = Vec::new();
    match method {
        ScheduleMethod::Bullet => {
            out.push(Instalment {
                number: 1,
                due_date: due(term_months)?,
                principal,
                interest: interest(principal, 0, term_months)?,
            });
        }
        ScheduleMethod::InterestMonthly | ScheduleMethod::InterestQuarterly => {
            let step = if method == ScheduleMethod::InterestMonthly {
                1
            } else {
                3
            };
            let mut from = 0;
            let mut number = 1;
            while from < term_months {
                let to = (from + step).min(term_months);
                out.push(Instalment {
                    number,
                    due_date: due(to)?,
                    principal: if to == term_months {
                        principal
                    } else {
                        Money::ZERO
                    },
                    interest: interest(principal, from, to)?,
                });
                from = to;
                number += 1;
            }
        }
        ScheduleMethod::EqualPrincipal => {
            out = equal_principal(principal, term_months, &due, |o, k| interest(o, k - 1, k))?;
        }
        ScheduleMethod::EqualInstalment if annual_rate.is_zero() => {
            out = equal_principal(principal, term_months, &due, |_, _| Ok(Money::ZERO))?;
        }
        ScheduleMethod::EqualInstalment => {
            let monthly = |outstanding: Money| {
                money(div_round(outstanding.amount() * annual_rate.value(), 12))
            };
            let payment = annuity_payment(principal, annual_rate, term_months)?;
            let mut outstanding = principal;
            for k in 1..=term_months {
                let interest = monthly(outstanding)?;
                let part = if k == term_months {
                    outstanding
                } else {
                    // payment > P·r ≥ interest, so this is never negative; it can exceed the
                    // outstanding principal only in degenerate cases (cents over decades),
                    // where we stop at zero.
                    money(payment - interest.amount())?.min(outstanding)
                };
                outstanding = outstanding.saturating_sub(part);
                out.push(Instalment {
                    number: k,
                    due_date: due(k)?,
                    principal: part,
                    interest,
                });
            }
        }
    }
    Ok(out)
}

/// Equal principal parts with the remainder in the last; interest from `interest(outstanding,
/// month)`.
fn equal_principal(
    principal: Money,
    n: u32,
    due: &impl Fn(u32) -> Result<NaiveDate, DomainError>,
    interest: impl Fn(Money, u32) -> Result<Money, DomainError>,
) -> Result<Vec<Instalment>, DomainError> {
    let exact = principal.amount() / Decimal::from(n);
    let mut part = money(round_money(exact))?;
    if part.amount() * Decimal::from(n - 1) > principal.amount() {
        // Rounding up n − 1 times would overshoot the principal: truncate instead.
        part = money(exact.trunc_with_scale(2))?;
    }
    let mut outstanding = principal;
    let mut out = Vec::with_capacity(n as usize);
    for k in 1..=n {
        let this = if k == n { outstanding } else { part };
        out.push(Instalment {
            number: k,
            due_date: due(k)?,
            principal: this,
            interest: interest(outstanding, k)?,
        });
        outstanding = outstanding.saturating_sub(this);
    }
    Ok(out)
}

/// The 等额本息 payment P·r·q^n / (q^n − 1), q = 1 + r, r = annual / 12, rounded to the fen.
/// Written with q^n (not q^−n) so no tiny numbers lose digits; the factor r·q^n / (q^n − 1) is
/// computed before multiplying by P so nothing overflows.
fn annuity_payment(principal: Money, annual_rate: Rate, n: u32) -> Result<Decimal, DomainError> {
    let overflow = || DomainError::invalid("annual_rate", "the annuity cannot be computed");
    let r = annual_rate.value() / Decimal::from(12);
    let qn = (Decimal::ONE + r)
        .checked_powu(u64::from(n))
        .ok_or_else(overflow)?;
    let factor = r * qn / (qn - Decimal::ONE);
    let payment = principal
        .amount()
        .checked_mul(factor)
        .ok_or_else(overflow)?;
    Ok(round_money(payment))
}

/// `numerator / divisor` rounded to the fen half away from zero, exactly: done on the integer
/// mantissa so that no 28-digit intermediate rounding can move a value across a half-fen.
fn div_round(numerator: Decimal, divisor: i128) -> Decimal {
    // numerator = m / 10^s; we want round(m · 100 / (10^s · divisor)) / 100.
    let m = numerator.mantissa() * 100;
    let d = 10i128.pow(numerator.scale()) * divisor;
    let (q, r) = (m / d, m % d);
    let q = if 2 * r.abs() >= d { q + m.signum() } else { q };
    Decimal::from_i128_with_scale(q, 2)
}

fn money(value: Decimal) -> Result<Money, DomainError> {
    Money::from_decimal(value)
}

/// The state's share of an interest amount (财政贴息), rounded to the fen half away from zero.
pub fn subsidy_of(interest: Money, share: Share) -> Money {
    // share ≤ 1, so the result never exceeds `interest` and always is a valid amount.
    Money::from_decimal(round_money(interest.amount() * share.value())).unwrap_or(interest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }
    fn d(y: i32, mo: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, day).unwrap()
    }
    fn rate(s: &str) -> Rate {
        Rate::parse(s).unwrap()
    }
    fn sched(
        p: &str,
        r: &str,
        n: u32,
        method: ScheduleMethod,
        conv: InterestConvention,
    ) -> Vec<Instalment> {
        build_schedule(m(p), rate(r), n, method, d(2006, 1, 15), conv).unwrap()
    }
    fn first_last(s: &[Instalment]) -> [(Decimal, Decimal); 2] {
        let f = s.first().unwrap();
        let l = s.last().unwrap();
        [
            (f.principal.amount(), f.interest.amount()),
            (l.principal.amount(), l.interest.amount()),
        ]
    }
    fn principal_sum(s: &[Instalment]) -> Decimal {
        s.iter().map(|i| i.principal.amount()).sum()
    }
    fn interest_sum(s: &[Instalment]) -> Decimal {
        s.iter().map(|i| i.interest.amount()).sum()
    }

    use InterestConvention::{Actual360, Monthly30};
    use ScheduleMethod::*;

    #[test]
    fn div_round_is_exact_half_away() {
        assert_eq!(div_round(dec!(0.03), 12), dec!(0.00)); // 0.0025
        assert_eq!(div_round(dec!(0.06), 12), dec!(0.01)); // 0.005 → 0.01
        assert_eq!(div_round(dec!(-0.06), 12), dec!(-0.01));
        assert_eq!(div_round(dec!(1.8), 360), dec!(0.01)); // 0.005
        assert_eq!(div_round(dec!(1.79999999), 360), dec!(0.00));
        assert_eq!(div_round(dec!(292.5), 12), dec!(24.38)); // 24.375
    }

    #[test]
    fn bullet_20000_actual_360_from_2006_01_15() {
        // 2006-01-15 → 2007-01-15 is 365 days (2006 is not a leap year).
        // 20,000.00 × 0.0585 × 365 / 360 = 1,170 × 365 / 360 = 427,050 / 360 = 1,186.25
        let s = sched("20000", "0.0585", 12, Bullet, Actual360);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].due_date, d(2007, 1, 15));
        assert_eq!(s[0].principal, m("20000"));
        assert_eq!(s[0].interest, m("1186.25"));
        // Under monthly-30: 20,000.00 × 0.0585 × 12 / 12 = 1,170.00
        let s = sched("20000", "0.0585", 12, Bullet, Monthly30);
        assert_eq!(s[0].interest, m("1170.00"));
    }

    #[test]
    fn fifty_thousand_at_5_85_over_24_months() {
        // Monthly rate r = 0.0585 / 12 = 0.004875; full-principal interest for one month
        // = 50,000.00 × 0.004875 = 243.75.

        // Bullet, monthly-30: 50,000 × 0.0585 × 24 / 12 = 5,850.00, all on 2008-01-15.
        assert_eq!(
            first_last(&sched("50000", "0.0585", 24, Bullet, Monthly30)),
            [(dec!(50000.00), dec!(5850.00)); 2]
        );
        // Bullet, actual/360: 2006-01-15 → 2008-01-15 = 730 days;
        // 50,000 × 0.0585 × 730 / 360 = 2,925 × 730 / 360 = 5,931.25.
        assert_eq!(
            sched("50000", "0.0585", 24, Bullet, Actual360)[0].interest,
            m("5931.25")
        );

        // Interest monthly, monthly-30: 243.75 every month, principal in the 24th.
        let s = sched("50000", "0.0585", 24, InterestMonthly, Monthly30);
        assert_eq!(s.len(), 24);
        assert_eq!(
            first_last(&s),
            [(dec!(0), dec!(243.75)), (dec!(50000), dec!(243.75))]
        );
        assert_eq!(interest_sum(&s), dec!(5850.00));
        // Actual/360: first period 2006-01-15 → 02-15 = 31 days: 2,925 × 31 / 360 = 251.875
        // → 251.88; last 2007-12-15 → 2008-01-15 = 31 days, the same.
        let s = sched("50000", "0.0585", 24, InterestMonthly, Actual360);
        assert_eq!(
            first_last(&s),
            [(dec!(0), dec!(251.88)), (dec!(50000), dec!(251.88))]
        );
        // February 2006: 02-15 → 03-15 = 28 days: 2,925 × 28 / 360 = 227.50.
        assert_eq!(s[1].interest, m("227.50"));

        // Interest quarterly, monthly-30: 50,000 × 0.0585 × 3 / 12 = 731.25 × 8 quarters.
        let s = sched("50000", "0.0585", 24, InterestQuarterly, Monthly30);
        assert_eq!(s.len(), 8);
        assert_eq!(
            first_last(&s),
            [(dec!(0), dec!(731.25)), (dec!(50000), dec!(731.25))]
        );
        assert_eq!(s[7].due_date, d(2008, 1, 15));

        // Equal principal: 50,000 / 24 = 2,083.333… → 2,083.33 × 23, the last 50,000 −
        // 47,916.59 = 2,083.41. Interest 1st: 243.75; 24th: on 2,083.41 × 0.004875 =
        // 10.156623… → 10.16.
        let s = sched("50000", "0.0585", 24, EqualPrincipal, Monthly30);
        assert_eq!(
            first_last(&s),
            [(dec!(2083.33), dec!(243.75)), (dec!(2083.41), dec!(10.16))]
        );
        assert_eq!(principal_sum(&s), dec!(50000.00));

        // Equal instalment: q^24 = 1.004875^24 = 1.1237999284…; payment = 50,000 × 0.004875 ×
        // q^24 / (q^24 − 1) = 273.9262 / 0.1237999284 = 2,212.6526… → 2,212.65.
        // 1st: interest 243.75, principal 2,212.65 − 243.75 = 1,968.90.
        // 24th: 2,201.99 is left; interest 2,201.99 × 0.004875 = 10.7347 → 10.73; total
        // 2,212.72, seven fen above the others: the accumulated rounding of the payment.
        let s = sched("50000", "0.0585", 24, EqualInstalment, Monthly30);
        assert_eq!(
            first_last(&s),
            [(dec!(1968.90), dec!(243.75)), (dec!(2201.99), dec!(10.73))]
        );
        for i in &s[..23] {
            assert_eq!(i.total(), dec!(2212.65));
        }
        assert_eq!(principal_sum(&s), dec!(50000.00));
    }

    #[test]
    fn equal_instalment_checked_by_hand() {
        // 12,000.00 at 6 % over 3 months: r = 0.005.
        // q^3 = 1.005^3 = 1.015075125; payment = 12,000 × 0.005 × 1.015075125 / 0.015075125
        // = 60.9045075 / 0.015075125 = 4,040.0664… → 4,040.07.
        // 1: interest 12,000.00 × 0.005 = 60.00; principal 3,980.07; left 8,019.93.
        // 2: interest 8,019.93 × 0.005 = 40.09965 → 40.10; principal 3,999.97; left 4,019.96.
        // 3: interest 4,019.96 × 0.005 = 20.0998 → 20.10; principal 4,019.96 (all that is
        //    left); total 4,040.06, one fen less than the others: the remainder.
        let s = build_schedule(
            m("12000"),
            rate("0.06"),
            3,
            EqualInstalment,
            d(2020, 1, 31),
            Monthly30,
        )
        .unwrap();
        let got: Vec<(NaiveDate, Decimal, Decimal)> = s
            .iter()
            .map(|i| (i.due_date, i.principal.amount(), i.interest.amount()))
            .collect();
        assert_eq!(
            got,
            [
                (d(2020, 2, 29), dec!(3980.07), dec!(60.00)),
                (d(2020, 3, 31), dec!(3999.97), dec!(40.10)),
                (d(2020, 4, 30), dec!(4019.96), dec!(20.10)),
            ]
        );
    }

    #[test]
    fn zero_rate_annuity_is_an_equal_split() {
        let s = sched("100", "0", 3, EqualInstalment, Actual360);
        let parts: Vec<Decimal> = s.iter().map(|i| i.principal.amount()).collect();
        assert_eq!(parts, [dec!(33.33), dec!(33.33), dec!(33.34)]);
        assert!(s.iter().all(|i| i.interest.is_zero()));
    }

    #[test]
    fn equal_principal_actual_360_uses_the_days_of_each_month() {
        // 3,000.00 at 7.2 % over 3 months from 2006-01-15: parts 1,000.00.
        // Jan 15 → Feb 15, 31 days: 3,000 × 0.072 × 31 / 360 = 18.60
        // Feb 15 → Mar 15, 28 days: 2,000 × 0.072 × 28 / 360 = 11.20
        // Mar 15 → Apr 15, 31 days: 1,000 × 0.072 × 31 / 360 = 6.20
        let s = sched("3000", "0.072", 3, EqualPrincipal, Actual360);
        let interest: Vec<Decimal> = s.iter().map(|i| i.interest.amount()).collect();
        assert_eq!(interest, [dec!(18.60), dec!(11.20), dec!(6.20)]);
    }

    #[test]
    fn quarterly_with_a_short_last_period() {
        // 10 months: quarters end at months 3, 6, 9 and a 1-month stub at 10.
        // 12,000 × 0.06 / 12 = 60 a month: 180, 180, 180, 60.
        let s = sched("12000", "0.06", 10, InterestQuarterly, Monthly30);
        let got: Vec<(NaiveDate, Decimal)> = s
            .iter()
            .map(|i| (i.due_date, i.interest.amount()))
            .collect();
        assert_eq!(
            got,
            [
                (d(2006, 4, 15), dec!(180.00)),
                (d(2006, 7, 15), dec!(180.00)),
                (d(2006, 10, 15), dec!(180.00)),
                (d(2006, 11, 15), dec!(60.00)),
            ]
        );
        assert_eq!(s[3].principal, m("12000"));
    }

    #[test]
    fn month_end_dates_are_clamped_from_the_start() {
        let s = build_schedule(
            m("3000"),
            rate("0.06"),
            3,
            EqualPrincipal,
            d(2006, 1, 31),
            Monthly30,
        )
        .unwrap();
        let dates: Vec<NaiveDate> = s.iter().map(|i| i.due_date).collect();
        assert_eq!(dates, [d(2006, 2, 28), d(2006, 3, 31), d(2006, 4, 30)]);
    }

    #[test]
    fn tiny_equal_principal_does_not_go_negative() {
        // 1.00 over 36 months: 1/36 = 0.0277… would round to 0.03, and 35 × 0.03 = 1.05 > 1.00;
        // truncated to 0.02 instead, the last takes 1.00 − 0.70 = 0.30.
        let s = sched("1", "0.05", 36, EqualPrincipal, Monthly30);
        assert_eq!(s[0].principal, m("0.02"));
        assert_eq!(s[35].principal, m("0.30"));
        assert_eq!(principal_sum(&s), dec!(1.00));
    }

    #[test]
    fn bad_inputs() {
        let e = build_schedule(
            Money::ZERO,
            rate("0.05"),
            12,
            Bullet,
            d(2006, 1, 1),
            Monthly30,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("principal"));
        let e =
            build_schedule(m("1"), rate("0.05"), 0, Bullet, d(2006, 1, 1), Monthly30).unwrap_err();
        assert_eq!(e.field(), Some("term_months"));
        let e = build_schedule(m("1"), rate("0.05"), 601, Bullet, d(2006, 1, 1), Monthly30)
            .unwrap_err();
        assert_eq!(e.field(), Some("term_months"));
        let e = build_schedule(m("1"), rate("0.05"), 12, Bullet, NaiveDate::MAX, Monthly30)
            .unwrap_err();
        assert_eq!(e.field(), Some("start_date"));
    }

    #[test]
    fn subsidy_rounds_half_away() {
        // 243.75 × 0.5 = 121.875 → 121.88
        assert_eq!(
            subsidy_of(m("243.75"), Share::parse("0.5").unwrap()),
            m("121.88")
        );
        assert_eq!(subsidy_of(m("243.75"), Share::ONE), m("243.75"));
        assert_eq!(subsidy_of(m("243.75"), Share::ZERO), Money::ZERO);
    }

    #[test]
    fn convention_text_and_serde() {
        assert_eq!(serde_json::to_string(&Actual360).unwrap(), "\"actual_360\"");
        assert_eq!(
            "monthly_30".parse::<InterestConvention>().unwrap(),
            Monthly30
        );
        for c in InterestConvention::ALL {
            assert_eq!(
                serde_json::to_string(c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        let i = sched("100", "0.05", 1, Bullet, Monthly30)[0];
        let json = serde_json::to_value(i).unwrap();
        assert_eq!(json["principal"], "100.00");
        assert_eq!(json["due_date"], "2006-02-15");
    }

    fn any_method() -> impl Strategy<Value = ScheduleMethod> {
        prop::sample::select(ScheduleMethod::ALL.to_vec())
    }

    fn any_convention() -> impl Strategy<Value = InterestConvention> {
        prop::sample::select(InterestConvention::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn schedule_invariants(
            fen in 100_000i64..=100_000_000_000, // 1,000.00 to 1,000,000,000.00
            rate_millionths in 0i64..=240_000,    // 0 to 24 %
            term in 1u32..=120,
            method in any_method(),
            convention in any_convention(),
            start_days in 0i64..=20_000,
        ) {
            let principal = Money::from_decimal(Decimal::new(fen, 2)).unwrap();
            let annual = Rate::from_decimal(Decimal::new(rate_millionths, 6)).unwrap();
            let start = d(2000, 1, 1) + chrono::Duration::days(start_days);
            let s = build_schedule(principal, annual, term, method, start, convention).unwrap();

            prop_assert_eq!(principal_sum(&s), principal.amount());
            prop_assert!(s.iter().all(|i| i.interest.amount() >= Decimal::ZERO));
            prop_assert!(s[0].due_date > start);
            prop_assert!(s.windows(2).all(|w| w[0].due_date < w[1].due_date));
            prop_assert_eq!(s.last().unwrap().due_date, start.checked_add_months(Months::new(term)).unwrap());
            prop_assert!(s.iter().enumerate().all(|(k, i)| i.number as usize == k + 1));
            if method == EqualInstalment && !annual.is_zero() && s.len() > 1 {
                let payment = s[0].total();
                prop_assert!(s[..s.len() - 1].iter().all(|i| i.total() == payment));
                // The last differs from the others by rounding only (cents, not yuan).
                let diff = (s.last().unwrap().total() - payment).abs();
                prop_assert!(diff < dec!(5), "last differs by {}", diff);
            }
            if annual.is_zero() {
                prop_assert!(s.iter().all(|i| i.interest.is_zero()));
            }
        }
    }
}
