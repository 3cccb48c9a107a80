//! Rates and shares: exact fractions of one, as stored in `NUMERIC(9,6)`.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::text::{serde_as_string, string_schema};
use crate::DomainError;

/// Decimal places allowed: `NUMERIC(9,6)`.
const MAX_SCALE: u32 = 6;

/// Parses a fraction between 0 and 1 written as `0`, `0.x…` (≤ 6 decimals), `1` or `1.0…`.
/// The integer part must be exactly `0` or `1`, so `5.85` (a percentage typed by mistake) and
/// `00.5` fail rather than being guessed at.
fn parse_fraction(text: &str, field: &str, what: &str) -> Result<Decimal, DomainError> {
    let bad = |message: String| DomainError::invalid(field, message);
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || frac_part.is_some_and(|f| !all_digits(f)) {
        return Err(bad(format!(
            "\"{}\" is not a {what}: write a decimal fraction of 1 such as \"0.0585\" for 5.85 %",
            text.escape_debug()
        )));
    }
    if let Some(frac) = frac_part {
        if frac.len() > MAX_SCALE as usize {
            return Err(bad(format!("a {what} has at most 6 decimal places")));
        }
    }
    let one_exactly = int_part == "1" && frac_part.is_none_or(|f| f.bytes().all(|b| b == b'0'));
    if int_part != "0" && !one_exactly {
        return Err(bad(format!(
            "a {what} is a fraction between 0 and 1, not a percentage: 5.85 % is \"0.0585\""
        )));
    }
    let value = Decimal::from_str_exact(text)
        .map_err(|_| bad(format!("\"{}\" is not a {what}", text.escape_debug())))?;
    check_fraction(value, field, what)
}

/// Checks 0 ≤ value ≤ 1 with at most 6 significant decimals, and normalizes it.
fn check_fraction(value: Decimal, field: &str, what: &str) -> Result<Decimal, DomainError> {
    let value = value.normalize();
    if value.is_sign_negative() && !value.is_zero() {
        return Err(DomainError::invalid(
            field,
            format!("a {what} must not be negative"),
        ));
    }
    if value > Decimal::ONE {
        return Err(DomainError::invalid(
            field,
            format!("a {what} must not exceed 1 (it is a fraction, 0.0585 = 5.85 %)"),
        ));
    }
    if value.scale() > MAX_SCALE {
        return Err(DomainError::invalid(
            field,
            format!("a {what} has at most 6 decimal places"),
        ));
    }
    Ok(value.abs()) // abs: -0 becomes 0
}

macro_rules! fraction_type {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal, what = $what:literal,
        example = $example:literal, description = $description:literal
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(Decimal);

        impl $name {
            /// 0.
            pub const ZERO: $name = $name(Decimal::ZERO);
            /// 1 (100 %).
            pub const ONE: $name = $name(Decimal::ONE);
            /// The regular expression of the accepted text form (also the OpenAPI `pattern`).
            pub const PATTERN: &'static str = r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$";

            /// Parses `"0.0585"`, `"0.7"`, `"0"`, `"1.00"`. Percentages (`"5.85"`), signs,
            /// exponents, spaces and more than 6 decimals are refused.
            pub fn parse(text: &str) -> Result<$name, DomainError> {
                parse_fraction(text, $field, $what).map($name)
            }

            /// Accepts 0 ≤ value ≤ 1 with at most 6 significant decimal places.
            pub fn from_decimal(value: Decimal) -> Result<$name, DomainError> {
                check_fraction(value, $field, $what).map($name)
            }

            /// The fraction, normalized (no trailing zeros).
            pub fn value(&self) -> Decimal {
                self.0
            }

            /// True for 0.
            pub fn is_zero(&self) -> bool {
                self.0.is_zero()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl TryFrom<Decimal> for $name {
            type Error = DomainError;
            fn try_from(value: Decimal) -> Result<Self, Self::Error> {
                $name::from_decimal(value)
            }
        }

        impl From<$name> for Decimal {
            fn from(v: $name) -> Decimal {
                v.0
            }
        }

        serde_as_string!(
            $name,
            $name::parse,
            concat!(
                "a ", $what, " as a JSON string such as \"", $example,
                "\" (a decimal fraction of 1; a string, not a number)"
            )
        );

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                string_schema($name::PATTERN, $example, $description)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

fraction_type!(
    /// An annual interest rate as a decimal fraction: `0.0585` is 5.85 % a year.
    /// 0 ≤ r ≤ 1, at most 6 decimal places (`NUMERIC(9,6)`).
    Rate,
    field = "rate",
    what = "rate",
    example = "0.0585",
    description = "Annual rate as a decimal fraction (0.0585 = 5.85 %), 0 to 1, at most 6 decimals."
);

fraction_type!(
    /// A share of something as a decimal fraction: `0.70` is 70 %. 0 ≤ s ≤ 1, at most 6
    /// decimal places (`NUMERIC(9,6)`).
    Share,
    field = "share",
    what = "share",
    example = "0.70",
    description = "Share as a decimal fraction (0.70 = 70 %), 0 to 1, at most 6 decimals."
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    #[test]
    fn rate_parses() {
        assert_eq!(Rate::parse("0.0585").unwrap().value(), dec!(0.0585));
        assert_eq!(Rate::parse("0.058500").unwrap().to_string(), "0.0585");
        assert_eq!(Rate::parse("0").unwrap(), Rate::ZERO);
        assert_eq!(Rate::parse("1").unwrap(), Rate::ONE);
        assert_eq!(Rate::parse("1.000000").unwrap(), Rate::ONE);
        assert_eq!(Rate::parse("0.123456").unwrap().value(), dec!(0.123456));
    }

    #[test]
    fn rate_rejects() {
        for bad in [
            "",
            "5.85",
            "1.01",
            "2",
            "-0.05",
            "0.1234567",
            ".05",
            "0.",
            "00.5",
            "0,05",
            " 0.05",
            "5e-2",
            "+0.05",
            "0x1",
        ] {
            let e = Rate::parse(bad).expect_err(bad);
            assert_eq!(e.field(), Some("rate"), "{bad}");
        }
        let e = Rate::parse("5.85").unwrap_err();
        assert!(e.message().contains("not a percentage"), "{e}");
    }

    #[test]
    fn share_parses_and_displays() {
        let s = Share::parse("0.70").unwrap();
        assert_eq!(s.value(), dec!(0.7));
        assert_eq!(s.to_string(), "0.7");
        assert_eq!(format!("{s:?}"), "Share(0.7)");
        assert_eq!(Share::parse("1.5").unwrap_err().field(), Some("share"));
    }

    #[test]
    fn from_decimal_checks() {
        assert_eq!(
            Rate::from_decimal(dec!(0.05850000)).unwrap().value(),
            dec!(0.0585)
        );
        assert!(Rate::from_decimal(dec!(1.0000001)).is_err());
        assert!(Rate::from_decimal(dec!(-0.01)).is_err());
        assert!(Share::from_decimal(dec!(0.0000001)).is_err());
        assert_eq!(Share::from_decimal(dec!(-0)).unwrap(), Share::ZERO);
    }

    #[test]
    fn serde_is_string_only() {
        assert_eq!(
            serde_json::to_string(&Rate::parse("0.0585").unwrap()).unwrap(),
            "\"0.0585\""
        );
        let r: Rate = serde_json::from_str("\"0.0585\"").unwrap();
        assert_eq!(r.value(), dec!(0.0585));
        let err = serde_json::from_str::<Rate>("0.0585")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a number"), "{err}");
        assert!(serde_json::from_str::<Share>("\"0.7\"").is_ok());
        assert!(serde_json::from_str::<Share>("0.7").is_err());
    }

    #[test]
    fn openapi_schema() {
        let json = serde_json::to_value(<Rate as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(json["type"], "string");
        assert_eq!(json["pattern"], Rate::PATTERN);
        assert_eq!(json["examples"][0], "0.0585");
        assert_eq!(<Share as utoipa::ToSchema>::name(), "Share");
    }

    proptest! {
        #[test]
        fn round_trip(millionths in 0u32..=1_000_000u32) {
            let r = Rate::from_decimal(Decimal::new(i64::from(millionths), 6)).unwrap();
            prop_assert_eq!(Rate::parse(&r.to_string()).unwrap(), r);
            let s = Share::from_decimal(Decimal::new(i64::from(millionths), 6)).unwrap();
            prop_assert_eq!(Share::parse(&s.to_string()).unwrap(), s);
        }
    }
}
