//! Integer arithmetic in fen (0.01 yuan) for the money-after-disbursement rules: sums and
//! products are exact `i128`s, and a result is rounded half away from zero exactly once, on
//! the integer, so no 28-digit `Decimal` intermediate can move a value across a half-fen.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::{DomainError, Money};

/// The amount in fen.
pub(crate) fn fen(money: Money) -> i128 {
    let mut amount = money.amount();
    amount.rescale(2);
    amount.mantissa()
}

/// Fen back to money; an error if negative or beyond `NUMERIC(18,2)` (only absurd inputs get
/// there: the callers never subtract below zero).
pub(crate) fn money(fen: i128) -> Result<Money, DomainError> {
    Money::from_fen(fen).map_err(|_| too_large())
}

pub(crate) fn too_large() -> DomainError {
    DomainError::invalid(
        "amount",
        "the amounts are too large to compute with (beyond NUMERIC(18,2))",
    )
}

/// `n / d` rounded half away from zero; `d > 0`.
pub(crate) fn div_round(n: i128, d: i128) -> i128 {
    debug_assert!(d > 0);
    let (q, r) = (n / d, n % d);
    // |r| ≥ d − |r| is 2|r| ≥ d without overflowing.
    if r.abs() >= d - r.abs() {
        q + n.signum()
    } else {
        q
    }
}

/// `a × b`, or the "too large" error.
pub(crate) fn mul(a: i128, b: i128) -> Result<i128, DomainError> {
    a.checked_mul(b).ok_or_else(too_large)
}

/// `value × n / d` rounded half away from zero, exactly (on `value`'s mantissa); `d > 0`.
pub(crate) fn mul_div_round(value: Decimal, n: i128, d: i128) -> Result<i128, DomainError> {
    let value = value.normalize();
    let scale = 10i128.checked_pow(value.scale()).ok_or_else(too_large)?;
    Ok(div_round(mul(value.mantissa(), n)?, mul(scale, d)?))
}

/// Days from `from` to `to` (negative if `to` is earlier).
pub(crate) fn days(from: NaiveDate, to: NaiveDate) -> i128 {
    i128::from((to - from).num_days())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(div_round(5, 10), 1);
        assert_eq!(div_round(4, 10), 0);
        assert_eq!(div_round(-5, 10), -1);
        assert_eq!(div_round(15, 10), 2);
        assert_eq!(div_round(25, 10), 3); // not banker's 2
                                          // 0.08775 × 524,700.00 yuan·days / 360 = 127.895625 → 127.90 (in fen: 12,790)
        assert_eq!(
            mul_div_round(dec!(0.08775), 52_470_000, 360).unwrap(),
            12_790
        );
        // trailing zeros of the rate do not matter
        assert_eq!(
            mul_div_round(dec!(0.087750), 52_470_000, 360).unwrap(),
            12_790
        );
        assert!(mul_div_round(dec!(0.3), i128::MAX / 2, 1).is_err());
    }

    #[test]
    fn fen_round_trip() {
        let m = Money::parse("20000.5").unwrap();
        assert_eq!(fen(m), 2_000_050);
        assert_eq!(money(2_000_050).unwrap(), m);
        assert!(money(-1).is_err());
        assert!(money(i128::MAX).is_err());
    }
}
