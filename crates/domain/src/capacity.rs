//! Fund capacity (放大倍数): outstanding guaranteed principal may be at most the fund balance
//! times the leverage multiple.
//!
//! These are the arithmetic only. Two clerks approving at once must not both pass when only
//! one fits: the caller runs this check inside the transaction that holds the fund's row lock.

use rust_decimal::Decimal;

use crate::{DomainError, Money};

/// Capacity left: `balance × leverage − outstanding`. Negative when the fund has shrunk (after
/// compensation) below what it already guarantees; no new guarantee fits then. Exact (not
/// rounded): leverage may have decimals.
pub fn headroom(
    balance: Money,
    outstanding_guaranteed: Money,
    leverage_multiple: Decimal,
) -> Decimal {
    balance.amount() * leverage_multiple - outstanding_guaranteed.amount()
}

/// [`headroom`] for display and statistics: clamped at zero (a negative headroom reads as
/// "nothing more fits") and truncated to the fen (never shows more room than there is).
pub fn headroom_for_display(
    balance: Money,
    outstanding_guaranteed: Money,
    leverage_multiple: Decimal,
) -> Money {
    to_money_floor(headroom(balance, outstanding_guaranteed, leverage_multiple))
}

/// Actual leverage (outstanding ÷ balance), `None` for an empty fund.
pub fn actual_leverage(outstanding_guaranteed: Money, balance: Money) -> Option<Decimal> {
    outstanding_guaranteed
        .amount()
        .checked_div(balance.amount())
}

/// Checks that a new guarantee of `new_principal` fits:
/// `outstanding_guaranteed + new_principal ≤ balance × leverage_multiple`. On success returns
/// the headroom left afterwards, truncated to the fen. A refusal is the rule
/// `fund_capacity_exceeded` on field `principal`.
pub fn check_capacity(
    balance: Money,
    outstanding_guaranteed: Money,
    new_principal: Money,
    leverage_multiple: Decimal,
) -> Result<Money, DomainError> {
    if leverage_multiple <= Decimal::ZERO {
        return Err(DomainError::invalid(
            "leverage_multiple",
            "must be positive",
        ));
    }
    if new_principal.is_zero() {
        return Err(DomainError::invalid("principal", "must be positive"));
    }
    let capacity = balance.amount() * leverage_multiple;
    let after = capacity - outstanding_guaranteed.amount() - new_principal.amount();
    if after < Decimal::ZERO {
        return Err(DomainError::rule(
            "fund_capacity_exceeded",
            Some("principal"),
            format!(
                "the fund can guarantee {} in all (balance {balance} × {}); {outstanding_guaranteed} is outstanding, so {} does not fit (short by {})",
                crate::round_money(capacity),
                leverage_multiple.normalize(),
                new_principal,
                // Rounded up so the shortfall shown is never less than the real one.
                (-after).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::AwayFromZero),
            ),
        ));
    }
    Ok(to_money_floor(after))
}

/// Non-negative part of `value`, truncated to the fen, capped at the largest `Money`.
fn to_money_floor(value: Decimal) -> Money {
    let largest = Decimal::new(999_999_999_999_999_999, 2);
    let clamped = value.max(Decimal::ZERO).min(largest).trunc_with_scale(2);
    // In [0, largest] with 2 decimals: always a valid amount.
    Money::from_decimal(clamped).unwrap_or(Money::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }

    #[test]
    fn exact_boundary() {
        // Balance 1,000,000.00 × 5 = 5,000,000.00; 4,980,000.00 outstanding leaves 20,000.00.
        let (balance, outstanding) = (m("1000000"), m("4980000"));
        assert_eq!(
            check_capacity(balance, outstanding, m("20000"), dec!(5)),
            Ok(Money::ZERO)
        );
        assert_eq!(
            check_capacity(balance, outstanding, m("19999.99"), dec!(5)),
            Ok(m("0.01"))
        );
        let e = check_capacity(balance, outstanding, m("20000.01"), dec!(5)).unwrap_err();
        assert_eq!(e.code(), "fund_capacity_exceeded");
        assert_eq!(e.field(), Some("principal"));
        assert!(e.message().contains("short by 0.01"), "{e}");
    }

    #[test]
    fn fractional_leverage_truncates_headroom() {
        // 0.03 × 5.5 = 0.165 of capacity; nothing outstanding; 0.10 fits and leaves 0.065,
        // shown as 0.06 (never more room than there is).
        assert_eq!(
            check_capacity(m("0.03"), Money::ZERO, m("0.10"), dec!(5.5)),
            Ok(m("0.06"))
        );
        // 0.17 does not fit under 0.165.
        assert!(check_capacity(m("0.03"), Money::ZERO, m("0.17"), dec!(5.5)).is_err());
    }

    #[test]
    fn headroom_can_be_negative_but_display_clamps() {
        // The fund paid compensation: balance 900,000.00 × 5 = 4,500,000.00 < 4,600,000.00.
        assert_eq!(
            headroom(m("900000"), m("4600000"), dec!(5)),
            dec!(-100000.00)
        );
        assert_eq!(
            headroom_for_display(m("900000"), m("4600000"), dec!(5)),
            Money::ZERO
        );
        assert_eq!(
            headroom_for_display(m("900000"), m("4000000"), dec!(5)),
            m("500000")
        );
        assert!(check_capacity(m("900000"), m("4600000"), m("0.01"), dec!(5)).is_err());
        // Huge capacity is capped at the largest amount, not an error.
        assert_eq!(
            headroom_for_display(m("9999999999999999.99"), Money::ZERO, dec!(10)).to_string(),
            "9999999999999999.99"
        );
    }

    #[test]
    fn bad_inputs_and_actual_leverage() {
        assert_eq!(
            check_capacity(m("1"), Money::ZERO, m("1"), dec!(0))
                .unwrap_err()
                .field(),
            Some("leverage_multiple")
        );
        assert_eq!(
            check_capacity(m("1"), Money::ZERO, Money::ZERO, dec!(5))
                .unwrap_err()
                .field(),
            Some("principal")
        );
        assert_eq!(actual_leverage(m("4600000"), m("1000000")), Some(dec!(4.6)));
        assert_eq!(actual_leverage(m("1"), Money::ZERO), None);
    }
}
