//! Resident identity card numbers (身份证号), GB 11643-1999.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};

use crate::text::{serde_as_string, string_schema};
use crate::DomainError;

const DEFAULT_FIELD: &str = "national_id";

/// Weights of the 17 digits in the ISO 7064 MOD 11-2 check: 2^(17 - i) mod 11.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// Check character for a remainder `sum mod 11`: (12 - remainder) mod 11, with 10 written `X`.
const CHECK_CHARS: [u8; 11] = *b"10X98765432";

/// An 18-character resident identity number: 6-digit address code, birth date `YYYYMMDD`,
/// 3-digit sequence (odd = male), and a check character (`0`–`9` or `X`).
///
/// Personal data: `Display` and serde give the full number (it must reach the database and the
/// clerk), but `Debug` prints only [`NationalId::masked`] so that `{:?}` in a log line or a
/// panic message does not leak it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NationalId(String);

impl NationalId {
    /// The regular expression of the accepted text form (also the OpenAPI `pattern`).
    pub const PATTERN: &'static str = "^[0-9]{17}[0-9Xx]$";

    /// Parses and checks an identity number: 18 characters, 17 digits and a check character
    /// (`x` is accepted and stored as `X`), correct MOD 11-2 check character and a real birth
    /// date from 1800 on. Whether the birth date lies in the future is a question about a day,
    /// answered by [`NationalId::age_on`].
    pub fn parse(text: &str) -> Result<NationalId, DomainError> {
        let bad = |message: &str| DomainError::invalid(DEFAULT_FIELD, message);
        let bytes = text.as_bytes();
        if bytes.len() != 18 || !text.is_ascii() {
            return Err(bad(
                "a national id has 18 characters: 17 digits and a check digit or X",
            ));
        }
        if !bytes[..17].iter().all(u8::is_ascii_digit) {
            return Err(bad(
                "the first 17 characters of a national id must be digits",
            ));
        }
        let check = bytes[17].to_ascii_uppercase();
        if !(check.is_ascii_digit() || check == b'X') {
            return Err(bad(
                "the last character of a national id must be a digit or X",
            ));
        }
        if bytes[0] == b'0' {
            return Err(bad(
                "a national id cannot start with 0 (no such address code)",
            ));
        }
        let expected = check_char(&bytes[..17]);
        if check != expected {
            return Err(bad(
                "the national id's check digit is wrong (GB 11643, MOD 11-2); check for a typo",
            ));
        }
        let mut normalized = text[..17].to_owned();
        normalized.push(char::from(check));
        let id = NationalId(normalized);
        if id.birth_date_opt().is_none_or(|d| d.year() < 1800) {
            return Err(bad(
                "the birth date in the national id (characters 7-14) is not a valid date",
            ));
        }
        Ok(id)
    }

    /// The full 18 characters, check character upper-case.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn birth_date_opt(&self) -> Option<NaiveDate> {
        let digits = |range: std::ops::Range<usize>| self.0[range].parse::<u32>().ok();
        let year = i32::try_from(digits(6..10)?).ok()?;
        NaiveDate::from_ymd_opt(year, digits(10..12)?, digits(12..14)?)
    }

    /// Birth date from characters 7–14.
    pub fn birth_date(&self) -> NaiveDate {
        // `parse` accepted only ids whose birth date is valid.
        self.birth_date_opt().unwrap_or(NaiveDate::MIN)
    }

    /// Age in whole years on `on` (周岁: the years completed; someone born on 29 February
    /// completes a year on 1 March in non-leap years). An error if the person is born after
    /// `on`, which means the id is wrong.
    pub fn age_on(&self, on: NaiveDate) -> Result<u32, DomainError> {
        let birth = self.birth_date();
        if birth > on {
            return Err(DomainError::invalid(
                DEFAULT_FIELD,
                format!("the birth date in the national id lies after {on}"),
            ));
        }
        let mut years = on.year() - birth.year();
        if (on.month(), on.day()) < (birth.month(), birth.day()) {
            years -= 1;
        }
        // birth <= on, so years >= 0.
        Ok(u32::try_from(years).unwrap_or(0))
    }

    /// The address code (first six digits) of where the id was issued; historical codes do
    /// not always exist in today's GB/T 2260, so this is text, not a `RegionCode`.
    pub fn region_prefix(&self) -> &str {
        &self.0[..6]
    }

    /// The form shown to people who may not see personal data: first 6, eight `*`, last 4
    /// (`360102********123X`).
    pub fn masked(&self) -> String {
        format!("{}********{}", &self.0[..6], &self.0[14..])
    }
}

/// The check character for 17 ASCII digits.
fn check_char(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize]
}

impl fmt::Display for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NationalId({})", self.masked())
    }
}

impl FromStr for NationalId {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NationalId::parse(s)
    }
}

serde_as_string!(
    NationalId,
    NationalId::parse,
    "an 18-character national id as a JSON string"
);

impl utoipa::PartialSchema for NationalId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(
            NationalId::PATTERN,
            "11010519491231002X",
            "Resident identity number (GB 11643): 17 digits and a MOD 11-2 check character.",
        )
    }
}

impl utoipa::ToSchema for NationalId {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The check character written out from the standard, independently of the code above:
    /// S = Σ a_i · W_i with W_i = 2^(17-i) mod 11 for i = 1..=17 (a_1 is the first digit);
    /// the check value is (12 - S mod 11) mod 11, and 10 is written X.
    fn expected_check(first17: &str) -> char {
        let s: u64 = first17
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let weight = (1u64 << (17 - i)) % 11; // i is 0-based, so 2^(17-i) for a_(i+1)
                u64::from(c.to_digit(10).unwrap()) * weight
            })
            .sum();
        match (12 - s % 11) % 11 {
            10 => 'X',
            v => char::from_digit(v as u32, 10).unwrap(),
        }
    }

    fn with_check(first17: &str) -> String {
        format!("{first17}{}", expected_check(first17))
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn weights_are_the_standard_ones() {
        let computed: Vec<u32> = (1..=17).map(|i| (1u32 << (18 - i)) % 11).collect();
        assert_eq!(computed, WEIGHTS);
    }

    #[test]
    fn standard_examples() {
        // The two examples printed in GB 11643-1999.
        // 11010519491231002: S = 1·7+1·9+0·10+1·5+0·8+5·4+1·2+9·1+4·6+9·3+1·7+2·9+3·10+1·5+0·8+0·4+2·2
        //                      = 7+9+0+5+0+20+2+9+24+27+7+18+30+5+0+0+4 = 167; 167 mod 11 = 2;
        //                      (12 - 2) mod 11 = 10 → X.
        assert_eq!(expected_check("11010519491231002"), 'X');
        let a = NationalId::parse("11010519491231002X").unwrap();
        assert_eq!(a.birth_date(), d(1949, 12, 31));
        assert_eq!(a.region_prefix(), "110105");
        let b = NationalId::parse("440524188001010014").unwrap();
        assert_eq!(b.birth_date(), d(1880, 1, 1));
    }

    #[test]
    fn lower_case_x_is_normalised() {
        let id = NationalId::parse("11010519491231002x").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id, NationalId::parse("11010519491231002X").unwrap());
    }

    #[test]
    fn jiangxi_ids_with_computed_check() {
        let text = with_check("36010219800229123"); // Nanchang, born 29 Feb 1980
        let id = NationalId::parse(&text).unwrap();
        assert_eq!(id.birth_date(), d(1980, 2, 29));
        assert_eq!(id.age_on(d(2006, 2, 28)).unwrap(), 25);
        assert_eq!(id.age_on(d(2006, 3, 1)).unwrap(), 26);
        assert_eq!(id.age_on(d(2008, 2, 29)).unwrap(), 28);
        assert_eq!(id.age_on(d(1980, 2, 29)).unwrap(), 0);
        let err = id.age_on(d(1980, 2, 28)).unwrap_err();
        assert_eq!(err.field(), Some("national_id"));
    }

    #[test]
    fn rejects_wrong_ids() {
        let good = with_check("36010219800115123");
        let last = good.chars().last().unwrap();
        let wrong_check = if last == '0' { '1' } else { '0' };
        let mut swapped = good.clone().into_bytes();
        swapped.swap(15, 16); // two different neighbouring digits swapped ("23" → "32")
        let cases = [
            String::new(),
            good[..17].to_owned(),
            format!("{good}0"),
            format!("{}{}", &good[..17], wrong_check),
            String::from_utf8(swapped).unwrap(),
            with_check("36010219801315123"),  // month 13
            with_check("36010219810229123"),  // 29 Feb in a non-leap year
            with_check("36010217991231123"),  // before 1800
            with_check("06010219800115123"),  // address code starting with 0
            "3601021980011512３X".to_owned(), // non-ASCII digit
            "36010219800115123Y".to_owned(),
            "3601021980011512AX".to_owned(),
            format!(" {}", &good[1..]),
        ];
        for bad in cases {
            let e = NationalId::parse(&bad).expect_err(&bad);
            assert_eq!(e.field(), Some("national_id"), "{bad}");
        }
    }

    #[test]
    fn debug_masks_display_does_not() {
        let id = NationalId::parse("11010519491231002X").unwrap();
        assert_eq!(id.masked(), "110105********002X");
        assert_eq!(id.masked().len(), 18);
        assert_eq!(format!("{id:?}"), "NationalId(110105********002X)");
        assert_eq!(id.to_string(), "11010519491231002X");
        assert!(!format!("{:?}", Some(&id)).contains("19491231"));
    }

    #[test]
    fn serde_and_schema() {
        let id: NationalId = serde_json::from_str("\"11010519491231002x\"").unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"11010519491231002X\""
        );
        assert!(serde_json::from_str::<NationalId>("\"110105194912310021\"").is_err());
        let json = serde_json::to_value(<NationalId as utoipa::PartialSchema>::schema()).unwrap();
        assert_eq!(json["pattern"], NationalId::PATTERN);
    }

    proptest! {
        #[test]
        fn any_valid_id_parses_and_any_single_digit_change_fails(
            addr in 110000u32..=659999,
            days in 0i64..=45_000,
            seq in 0u32..=999,
            pos in 0usize..17,
            delta in 1u32..=9,
        ) {
            let birth = d(1900, 1, 1) + chrono::Duration::days(days);
            let first17 = format!("{addr:06}{}{seq:03}", birth.format("%Y%m%d"));
            let text = with_check(&first17);
            let id = NationalId::parse(&text).unwrap();
            prop_assert_eq!(id.birth_date(), birth);
            prop_assert_eq!(id.as_str(), text.as_str());
            // MOD 11-2 detects every single-digit error.
            let mut bytes = text.into_bytes();
            bytes[pos] = b'0' + ((u32::from(bytes[pos] - b'0') + delta) % 10) as u8;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(NationalId::parse(&changed).is_err());
        }
    }
}
