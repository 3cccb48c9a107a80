//! Bounds on request input that several routes share (the README's "Limits on input").
//!
//! Query parameters out of bounds are refused while the query string is read (400
//! `invalid_query` naming the parameter, as a parameter that does not parse); body fields out
//! of bounds are 422 `validation_failed` naming the field.
use crate::error::{ApiError, ApiResult};
use chrono::NaiveDate;
use danbao_domain::bounds;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// Longest free-text query filter (`entity_type`, `entity_id`), in characters.
pub const MAX_QUERY_TEXT: usize = 100;
/// Longest user name or bank client id accepted at login, in characters.
pub const MAX_LOGIN_NAME: usize = 64;
/// Longest password or client secret accepted anywhere, in bytes (as `check_password_strength`).
pub const MAX_SECRET_BYTES: usize = 256;

/// A business date (the day something happened): not before 1990-01-01, not after today.
pub fn business_date(field: &str, d: NaiveDate, today: NaiveDate) -> ApiResult<NaiveDate> {
    Ok(bounds::check_business_date(field, d, today)?)
}

/// `deserialize_with` of an optional query date: 1990-01-01 to 2200-12-31.
pub fn query_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    match Option::<NaiveDate>::deserialize(d)? {
        Some(v) if bounds::check_date("", v).is_err() => {
            Err(D::Error::custom(bounds::date_range_message()))
        }
        v => Ok(v),
    }
}

/// `deserialize_with` of an optional query year: 1990 to 2200.
pub fn query_year<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    match Option::<i32>::deserialize(d)? {
        Some(y) => bounds::check_year("", y)
            .map(Some)
            .map_err(|e| D::Error::custom(e.message())),
        None => Ok(None),
    }
}

/// `deserialize_with` of an optional free-text query filter: 1 to [`MAX_QUERY_TEXT`]
/// printable characters.
pub fn query_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) => bounds::check_text("", &s, MAX_QUERY_TEXT)
            .map(|()| Some(s))
            .map_err(|e| D::Error::custom(e.message())),
        None => Ok(None),
    }
}

/// `deserialize_with` of an optional `lang`: `en` or `zh`.
pub fn query_lang<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) if s == "en" || s == "zh" => Ok(Some(s)),
        Some(_) => Err(D::Error::custom("must be en or zh")),
        None => Ok(None),
    }
}

/// The credentials of a login: a name of 1 to 64 characters and a secret of at most 256
/// bytes, without control characters in the name. Longer ones cannot match an account, and
/// are refused before any hashing.
pub fn login_credentials(
    name_field: &str,
    name: &str,
    secret_field: &str,
    secret: &str,
) -> ApiResult<()> {
    if name.is_empty()
        || name.chars().count() > MAX_LOGIN_NAME
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::validation(
            name_field,
            format!("must be 1 to {MAX_LOGIN_NAME} printable characters"),
        ));
    }
    if secret.len() > MAX_SECRET_BYTES {
        return Err(ApiError::validation(
            secret_field,
            format!("must be at most {MAX_SECRET_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Q {
        #[serde(default, deserialize_with = "query_date")]
        as_of: Option<NaiveDate>,
        #[serde(default, deserialize_with = "query_year")]
        year: Option<i32>,
        #[serde(default, deserialize_with = "query_text")]
        entity_id: Option<String>,
    }

    fn q(s: &str) -> Result<Q, String> {
        serde_urlencoded::from_str::<Q>(s).map_err(|e| e.to_string())
    }

    #[test]
    fn query_bounds() {
        let ok = q("as_of=2200-12-31&year=1990&entity_id=abc").unwrap();
        assert_eq!(ok.year, Some(1990));
        assert_eq!(ok.entity_id.as_deref(), Some("abc"));
        assert!(q("").unwrap().as_of.is_none());
        assert!(q("as_of=1989-12-31").unwrap_err().contains("between"));
        assert!(q("year=2201").is_err());
        assert!(q(&format!("entity_id={}", "x".repeat(101))).is_err());
        assert!(q("entity_id=a%07b").is_err());
    }
}
