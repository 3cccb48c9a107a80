//! Money: exact yuan amounts, as stored in `NUMERIC(18,2)`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::text::{serde_as_string, string_schema};
use crate::DomainError;

/// Field name used when the caller has not said which field a money value came from.
const DEFAULT_FIELD: &str = "amount";

/// Integer digits allowed: `NUMERIC(18,2)` leaves 16 before the point.
const MAX_INTEGER_DIGITS: usize = 16;

/// Rounds to 0.01 yuan, half away from zero (what PostgreSQL's `round` does, and the
/// "四舍五入" that banks print). Never use `round_dp` alone: it rounds half to even.
pub fn round_money(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// A non-negative amount of yuan with at most two decimal places and at most 16 integer
/// digits, so that it always fits `NUMERIC(18,2)`.
///
/// Always held with scale 2, so `Display` prints `20000.00` and equal amounts are
/// indistinguishable. Signed quantities (balances that may go negative, differences) are plain
/// `Decimal`s; a `Money` is an amount someone pays or owes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

impl Money {
    /// 0.00 yuan.
    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, 2));

    /// The regular expression of the accepted text form (also the OpenAPI `pattern`).
    pub const PATTERN: &'static str = r"^\d{1,16}(\.\d{1,2})?$";

    /// Parses `"20000"`, `"20000.5"` or `"20000.00"`. Refuses signs, exponents, spaces,
    /// separators, a third decimal place and more than 16 integer digits: a typo in an amount
    /// must fail, not be rounded.
    pub fn parse(text: &str) -> Result<Money, DomainError> {
        let bad = |message: &str| DomainError::invalid(DEFAULT_FIELD, message);
        if text.is_empty() {
            return Err(bad("money is empty; expected yuan like \"20000.00\""));
        }
        let (int_part, frac_part) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() || !all_digits(int_part) {
            return Err(bad(&format!(
                "\"{}\" is not an amount of yuan like \"20000.00\" (digits, optional point and at most 2 decimals; no sign, spaces or exponent)",
                text.escape_debug()
            )));
        }
        if int_part.len() > MAX_INTEGER_DIGITS {
            return Err(bad("money has more than 16 integer digits"));
        }
        if let Some(frac) = frac_part {
            if frac.is_empty() || !all_digits(frac) {
                return Err(bad(&format!(
                    "\"{}\" is not an amount of yuan like \"20000.00\"",
                    text.escape_debug()
                )));
            }
            if frac.len() > 2 {
                return Err(bad(
                    "money has more than 2 decimal places (fen is the smallest unit)",
                ));
            }
        }
        // Checked above: at most 16 + 2 digits, which `Decimal` holds exactly.
        let value = Decimal::from_str_exact(text)
            .map_err(|_| bad("money is not a valid decimal number"))?;
        Money::from_decimal(value)
    }

    /// Accepts a decimal that is non-negative, has at most 2 significant decimal places and
    /// fewer than 16 integer digits. Trailing zeros do not count (`1.500` is `1.50`).
    pub fn from_decimal(value: Decimal) -> Result<Money, DomainError> {
        let bad = |message: &str| DomainError::invalid(DEFAULT_FIELD, message);
        let value = value.normalize();
        if value.is_sign_negative() && !value.is_zero() {
            return Err(bad("money must not be negative"));
        }
        if value.scale() > 2 {
            return Err(bad(
                "money has more than 2 decimal places (fen is the smallest unit)",
            ));
        }
        if value.abs() >= limit() {
            return Err(bad("money must be less than 10^16 yuan"));
        }
        let mut value = value.abs(); // turns a -0 into 0
        value.rescale(2);
        Ok(Money(value))
    }

    /// From an amount in fen, with the checks of [`Money::from_decimal`] but without its
    /// normalising and rescaling: the position engine gives back every amount it computes
    /// this way, and those two were most of its cost on a loan with hundreds of repayments.
    pub fn from_fen(fen: i128) -> Result<Money, DomainError> {
        const LIMIT_FEN: i128 = 1_000_000_000_000_000_000; // 10^16 yuan, as `limit()`
        if fen < 0 {
            return Err(DomainError::invalid(
                DEFAULT_FIELD,
                "money must not be negative",
            ));
        }
        if fen >= LIMIT_FEN {
            return Err(DomainError::invalid(
                DEFAULT_FIELD,
                "money must be less than 10^16 yuan",
            ));
        }
        Ok(Money(Decimal::from_i128_with_scale(fen, 2)))
    }

    /// Rounds `value` to the fen (half away from zero) and then checks it like
    /// [`Money::from_decimal`]. For computed amounts such as interest.
    pub fn from_decimal_rounded(value: Decimal) -> Result<Money, DomainError> {
        Money::from_decimal(round_money(value))
    }

    /// The amount in yuan, scale 2.
    pub fn amount(&self) -> Decimal {
        self.0
    }

    /// True for 0.00.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// `self + other`, or `None` if the sum would not fit `NUMERIC(18,2)`.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        let sum = self.0.checked_add(other.0)?;
        (sum < limit()).then_some(Money(sum))
    }

    /// `self - other`, or `None` if that would be negative.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        (self.0 >= other.0).then(|| Money(self.0 - other.0))
    }

    /// `self - other` clamped at zero.
    pub fn saturating_sub(self, other: Money) -> Money {
        self.checked_sub(other).unwrap_or(Money::ZERO)
    }

    /// Sums amounts, `None` on overflow of `NUMERIC(18,2)`.
    pub fn checked_sum<I: IntoIterator<Item = Money>>(items: I) -> Option<Money> {
        items
            .into_iter()
            .try_fold(Money::ZERO, |acc, m| acc.checked_add(m))
    }
}

/// 10^16, the first amount that no longer fits `NUMERIC(18,2)`.
fn limit() -> Decimal {
    Decimal::from(10_000_000_000_000_000_i64)
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Scale is always 2, so this is "20000.00".
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({})", self.0)
    }
}

impl FromStr for Money {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse(s)
    }
}

impl TryFrom<Decimal> for Money {
    type Error = DomainError;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Money::from_decimal(value)
    }
}

impl From<Money> for Decimal {
    fn from(m: Money) -> Decimal {
        m.0
    }
}

serde_as_string!(
    Money,
    Money::parse,
    "an amount of yuan as a JSON string such as \"20000.00\" (money is a string, not a number)"
);

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(
            Money::PATTERN,
            "20000.00",
            "Amount in yuan (CNY) as a decimal string, at most 2 decimal places, non-negative.",
        )
    }
}

impl utoipa::ToSchema for Money {}

#[cfg(test)]
mod tests {
    #[test]
    fn from_fen_is_from_decimal_of_the_same_amount() {
        for fen in [
            0_i128,
            1,
            7,
            10,
            100,
            123_456,
            1_000_000_000_000_000_000 - 1,
        ] {
            let slow = Money::from_decimal(Decimal::from_i128_with_scale(fen, 2)).unwrap();
            let fast = Money::from_fen(fen).unwrap();
            assert_eq!(fast, slow);
            assert_eq!(fast.amount().scale(), 2);
            assert_eq!(fast.to_string(), slow.to_string());
        }
        assert!(Money::from_fen(-1).is_err());
        assert!(Money::from_fen(1_000_000_000_000_000_000).is_err());
        assert!(
            Money::from_decimal(Decimal::from_i128_with_scale(1_000_000_000_000_000_000, 2))
                .is_err()
        );
    }

    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn parses_accepted_forms() {
        assert_eq!(m("20000").amount(), dec!(20000.00));
        assert_eq!(m("20000.5").amount(), dec!(20000.50));
        assert_eq!(m("20000.00").to_string(), "20000.00");
        assert_eq!(m("20000.5").to_string(), "20000.50");
        assert_eq!(m("0").to_string(), "0.00");
        assert_eq!(m("9999999999999999.99").to_string(), "9999999999999999.99");
        assert_eq!(m("007.1").to_string(), "7.10");
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            "",
            " 1",
            "1 ",
            "1.234",
            "-1",
            "+1",
            "1e3",
            "1E3",
            "1,000",
            ".5",
            "5.",
            "1.2.3",
            "abc",
            "10000000000000000",
            "１００", // full-width digits
            "NaN",
        ] {
            let err = Money::parse(bad).expect_err(bad);
            assert_eq!(err.field(), Some("amount"), "{bad}");
        }
    }

    #[test]
    fn from_decimal_checks() {
        assert_eq!(
            Money::from_decimal(dec!(1.500)).unwrap().to_string(),
            "1.50"
        );
        assert_eq!(Money::from_decimal(dec!(-0)).unwrap(), Money::ZERO);
        assert!(Money::from_decimal(dec!(-0.01)).is_err());
        assert!(Money::from_decimal(dec!(0.001)).is_err());
        assert!(Money::from_decimal(dec!(10000000000000000)).is_err());
        assert_eq!(
            Money::from_decimal_rounded(dec!(0.005))
                .unwrap()
                .to_string(),
            "0.01"
        );
    }

    #[test]
    fn round_money_is_half_away_from_zero() {
        // Banker's rounding would give 0.12 and 2.00; we want 0.13 and 2.01.
        assert_eq!(round_money(dec!(0.125)), dec!(0.13));
        assert_eq!(round_money(dec!(2.005)), dec!(2.01));
        assert_eq!(round_money(dec!(-2.005)), dec!(-2.01));
        assert_eq!(round_money(dec!(2.0049)), dec!(2.00));
    }

    #[test]
    fn arithmetic() {
        assert_eq!(m("1.10").checked_add(m("2.05")), Some(m("3.15")));
        assert_eq!(m("3").checked_sub(m("1.01")), Some(m("1.99")));
        assert_eq!(m("3").checked_sub(m("3")), Some(Money::ZERO));
        assert_eq!(m("1").checked_sub(m("1.01")), None);
        assert_eq!(m("1").saturating_sub(m("2")), Money::ZERO);
        assert_eq!(m("9999999999999999.99").checked_add(m("0.01")), None);
        assert_eq!(
            Money::checked_sum([m("1"), m("2.5"), m("0.01")]),
            Some(m("3.51"))
        );
        assert!(Money::ZERO.is_zero());
        assert_eq!(Money::ZERO.to_string(), "0.00");
        assert!(m("2") > m("1.99"));
    }

    #[test]
    fn serde_is_a_string_with_two_decimals() {
        assert_eq!(serde_json::to_string(&m("20000")).unwrap(), "\"20000.00\"");
        let back: Money = serde_json::from_str("\"20000.5\"").unwrap();
        assert_eq!(back, m("20000.50"));
        let err = serde_json::from_str::<Money>("20000")
            .unwrap_err()
            .to_string();
        assert!(err.contains("money is a string"), "{err}");
        let err = serde_json::from_str::<Money>("20000.5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("money is a string"), "{err}");
        let err = serde_json::from_str::<Money>("\"1.234\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 decimal places"), "{err}");
    }

    #[test]
    fn openapi_schema() {
        let json = serde_json::to_value(<Money as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(json["type"], "string");
        assert_eq!(json["pattern"], r"^\d{1,16}(\.\d{1,2})?$");
        assert_eq!(json["examples"][0], "20000.00");
        assert_eq!(<Money as utoipa::ToSchema>::name(), "Money");
    }

    #[test]
    fn debug_is_short() {
        assert_eq!(format!("{:?}", m("5")), "Money(5.00)");
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(fen in 0u64..=999_999_999_999_999_999u64) {
            let money = Money::from_decimal(Decimal::new(fen as i64, 2)).unwrap();
            let text = money.to_string();
            prop_assert!(text.split_once('.').unwrap().1.len() == 2);
            prop_assert_eq!(Money::parse(&text).unwrap(), money);
        }

        #[test]
        fn parse_agrees_with_pattern(s in "[0-9.+e -]{0,20}") {
            // A hand-written matcher of ^\d{1,16}(\.\d{1,2})?$ to compare with.
            let matches = {
                let (i, f) = s.split_once('.').map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
                let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
                (1..=16).contains(&i.len()) && digits(i)
                    && f.is_none_or(|f| (1..=2).contains(&f.len()) && digits(f))
            };
            prop_assert_eq!(Money::parse(&s).is_ok(), matches);
        }
    }
}
