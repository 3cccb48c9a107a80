//! Bounds on input shared by the domain and the API: the dates and years any request may name,
//! and the text every free-text field must be. Each is listed in the README's "Limits on
//! input" and, where the value is stored, is also a database constraint.

use chrono::NaiveDate;

use crate::DomainError;

/// Earliest date any request may name: before the programme (2002) with room to spare.
pub const EARLIEST_DATE: NaiveDate = ymd(1990, 1, 1);
/// Latest date any request may name (a policy's `effective_from`, a query's `to`).
pub const LATEST_DATE: NaiveDate = ymd(2200, 12, 31);
/// First year a request may name (targets, reports).
pub const EARLIEST_YEAR: i32 = 1990;
/// Last year a request may name.
pub const LATEST_YEAR: i32 = 2200;

const fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(y, m, d) {
        Some(d) => d,
        None => panic!("invalid constant date"),
    }
}

/// The message of a date outside [`EARLIEST_DATE`]..=[`LATEST_DATE`].
pub fn date_range_message() -> String {
    format!("must be between {EARLIEST_DATE} and {LATEST_DATE}")
}

/// A date within [`EARLIEST_DATE`]..=[`LATEST_DATE`].
pub fn check_date(field: &str, d: NaiveDate) -> Result<NaiveDate, DomainError> {
    if (EARLIEST_DATE..=LATEST_DATE).contains(&d) {
        Ok(d)
    } else {
        Err(DomainError::invalid(field, date_range_message()))
    }
}

/// A business date (the day something happened): not before [`EARLIEST_DATE`], not after
/// `today` in the business time zone.
pub fn check_business_date(
    field: &str,
    d: NaiveDate,
    today: NaiveDate,
) -> Result<NaiveDate, DomainError> {
    if d > today {
        Err(DomainError::invalid(
            field,
            "must not be after today (business time zone)",
        ))
    } else if d < EARLIEST_DATE {
        Err(DomainError::invalid(
            field,
            format!("must not be before {EARLIEST_DATE}"),
        ))
    } else {
        Ok(d)
    }
}

/// A year within [`EARLIEST_YEAR`]..=[`LATEST_YEAR`].
pub fn check_year(field: &str, year: i32) -> Result<i32, DomainError> {
    if (EARLIEST_YEAR..=LATEST_YEAR).contains(&year) {
        Ok(year)
    } else {
        Err(DomainError::invalid(
            field,
            format!("must be between {EARLIEST_YEAR} and {LATEST_YEAR}"),
        ))
    }
}

/// Free text: 1 to `max` characters after trimming, none of them a control character.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), DomainError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        Err(DomainError::invalid(
            field,
            format!("must be 1 to {max} printable characters"),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_at_the_bounds_pass_and_one_day_beyond_fails() {
        assert!(check_date("d", EARLIEST_DATE).is_ok());
        assert!(check_date("d", LATEST_DATE).is_ok());
        assert!(check_date("d", EARLIEST_DATE.pred_opt().unwrap()).is_err());
        assert!(check_date("d", LATEST_DATE.succ_opt().unwrap()).is_err());
    }

    #[test]
    fn business_dates_stop_at_today_and_at_the_earliest_date() {
        let today = ymd(2026, 11, 27);
        assert!(check_business_date("d", today, today).is_ok());
        assert!(check_business_date("d", EARLIEST_DATE, today).is_ok());
        let e = check_business_date("value_date", today.succ_opt().unwrap(), today).unwrap_err();
        assert_eq!(e.field(), Some("value_date"));
        assert!(check_business_date("d", EARLIEST_DATE.pred_opt().unwrap(), today).is_err());
    }

    #[test]
    fn years_and_text() {
        assert!(check_year("y", 1990).is_ok() && check_year("y", 2200).is_ok());
        assert!(check_year("y", 1989).is_err() && check_year("y", 2201).is_err());
        assert!(check_text("t", "东湖区", 3).is_ok());
        assert!(check_text("t", "东湖区x", 3).is_err());
        assert!(check_text("t", "  ", 3).is_err());
        assert!(check_text("t", "a\u{7}b", 3).is_err());
    }
}
