//! The one error type of the domain crate.
//!
//! Two kinds only, because callers treat them differently: an [`DomainError::Invalid`] value
//! never made it into a domain type (a 400 with the field to fix), a [`DomainError::Rule`] is
//! a well-formed request that the programme's rules refuse (a 422 with a stable `code` that
//! clients may branch on).

/// An error from parsing a domain value or from applying a business rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A value does not parse or validate. `field` is the snake_case name of the input field.
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// A business rule refused the request. `code` is stable snake_case, e.g.
    /// `amount_over_limit`; clients may match on it, so never rename one.
    #[error("{code}: {message}")]
    Rule {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
}

impl DomainError {
    /// A value of `field` that does not parse or validate.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A refused business rule, optionally naming the field that broke it.
    pub fn rule(code: &'static str, field: Option<&str>, message: impl Into<String>) -> Self {
        Self::Rule {
            code,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    /// The same error attributed to another field: parsers use a default field name
    /// (`amount`, `rate`, ...) and the caller knows the real one (`principal`).
    #[must_use]
    pub fn with_field(self, field: impl Into<String>) -> Self {
        match self {
            Self::Invalid { message, .. } => Self::Invalid {
                field: field.into(),
                message,
            },
            Self::Rule { code, message, .. } => Self::Rule {
                code,
                field: Some(field.into()),
                message,
            },
        }
    }

    /// The field this error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            Self::Rule { field, .. } => field.as_deref(),
        }
    }

    /// `invalid` for a parse error, the rule code otherwise.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid",
            Self::Rule { code, .. } => code,
        }
    }

    /// The human-readable message without the field or code.
    pub fn message(&self) -> &str {
        match self {
            Self::Invalid { message, .. } | Self::Rule { message, .. } => message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_and_accessors() {
        let e = DomainError::invalid("principal", "not a number");
        assert_eq!(e.field(), Some("principal"));
        assert_eq!(e.code(), "invalid");
        assert_eq!(e.to_string(), "invalid principal: not a number");

        let r = DomainError::rule("amount_over_limit", Some("principal"), "too much");
        assert_eq!(r.code(), "amount_over_limit");
        assert_eq!(r.field(), Some("principal"));
        assert_eq!(r.message(), "too much");
        assert_eq!(r.to_string(), "amount_over_limit: too much");

        let no_field = DomainError::rule("not_eligible", None, "no");
        assert_eq!(no_field.field(), None);
    }

    #[test]
    fn with_field_renames() {
        let e = DomainError::invalid("amount", "x").with_field("principal");
        assert_eq!(e, DomainError::invalid("principal", "x"));
        let r = DomainError::rule("c", None, "m").with_field("term_months");
        assert_eq!(r.field(), Some("term_months"));
    }
}
