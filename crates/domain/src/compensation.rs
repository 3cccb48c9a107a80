//! Compensation (代偿), recovery (追偿) and write-off (核销): what the guarantee fund pays for a
//! defaulted loan, gets back, and finally loses.
//!
//! * A claim is allowed once the loan is overdue for the policy's `compensation_overdue_days`.
//! * The fund pays its covered share (`policy.fund_share`, e.g. 0.70) of the outstanding
//!   principal and the interest the caller passes (the loan's overdue interest); penalty
//!   interest is not covered. One rounding, half away from zero, on the sum.
//! * Money recovered after compensation goes back to the fund in the same share, never more
//!   than the fund paid.
//! * A write-off records the fund's loss: what it paid and did not get back.

use rust_decimal::Decimal;

use crate::fen;
use crate::{round_money, DomainError, Money, Policy, Share};

/// Whether a compensation claim may be filed for a loan `days_past_due` days past due (of its
/// oldest unpaid instalment): at least `policy.compensation_overdue_days`. Refused with the
/// rule `not_overdue_long_enough`.
pub fn compensation_claim_allowed(days_past_due: u32, policy: &Policy) -> Result<(), DomainError> {
    let needed = policy.compensation_overdue_days;
    if days_past_due < needed {
        return Err(DomainError::rule(
            "not_overdue_long_enough",
            None,
            format!(
                "the loan is {days_past_due} days past due; policy {} allows a compensation claim from {needed} days",
                policy.code
            ),
        ));
    }
    Ok(())
}

/// The fund's payment: `round((outstanding_principal + interest) × fund_share)`.
/// `interest` is the loan's unpaid interest that the guarantee covers (its overdue interest).
pub fn compensation_amount(
    outstanding_principal: Money,
    interest: Money,
    fund_share: Share,
) -> Result<Money, DomainError> {
    let base = outstanding_principal
        .checked_add(interest)
        .ok_or_else(fen::too_large)?;
    share_of(base, fund_share)
}

/// The fund's part of one recovery: `round(recovered × fund_share)`.
///
/// Rounding each recovery separately can drift by a fen per recovery from the share of the
/// total; a loan recovered in several parts should use [`recovery_to_fund_cumulative`].
pub fn recovery_to_fund(recovered: Money, fund_share: Share) -> Money {
    // share ≤ 1, so the result never exceeds `recovered`.
    share_of(recovered, fund_share).unwrap_or(recovered)
}

/// The fund's part of a recovery of `recovered` after `recovered_before` was recovered earlier
/// on the same loan: the fund's share of the running total minus its share of the previous
/// total, each capped at `compensation_paid`. So the parts always sum to
/// `min(round(total × fund_share), compensation_paid)`: no fen drifts, and the fund never gets
/// back more than it paid (the rest belongs to the bank and the other risk sharers).
pub fn recovery_to_fund_cumulative(
    compensation_paid: Money,
    recovered_before: Money,
    recovered: Money,
    fund_share: Share,
) -> Result<Money, DomainError> {
    let total = recovered_before
        .checked_add(recovered)
        .ok_or_else(fen::too_large)?;
    let after = share_of(total, fund_share)?.min(compensation_paid);
    let before = share_of(recovered_before, fund_share)?.min(compensation_paid);
    // `share_of` is monotone, so `after ≥ before`.
    Ok(after.saturating_sub(before))
}

/// The fund's loss on write-off: what it paid in compensation and did not get back.
/// `recovered_to_fund` more than `compensation_paid` is inconsistent data (field
/// `recovered_to_fund`).
pub fn write_off_loss(
    compensation_paid: Money,
    recovered_to_fund: Money,
) -> Result<Money, DomainError> {
    compensation_paid
        .checked_sub(recovered_to_fund)
        .ok_or_else(|| {
            DomainError::invalid(
                "recovered_to_fund",
                format!(
                    "{recovered_to_fund} recovered to the fund is more than the {compensation_paid} it paid"
                ),
            )
        })
}

fn share_of(amount: Money, share: Share) -> Result<Money, DomainError> {
    let value: Decimal = round_money(amount.amount() * share.value());
    Money::from_decimal(value).map_err(|_| fen::too_large())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;
    use proptest::prelude::*;

    fn m(s: &str) -> Money {
        Money::parse(s).unwrap()
    }
    fn share(s: &str) -> Share {
        Share::parse(s).unwrap()
    }

    #[test]
    fn claim_needs_the_policy_days() {
        let policy = presets().remove(1); // 2006: 60 days
        assert_eq!(policy.compensation_overdue_days, 60);
        let e = compensation_claim_allowed(59, &policy).unwrap_err();
        assert_eq!(e.code(), "not_overdue_long_enough");
        assert!(e.message().contains("59 days"), "{e}");
        assert!(e.message().contains("from 60 days"), "{e}");
        assert_eq!(compensation_claim_allowed(60, &policy), Ok(()));
        assert_eq!(compensation_claim_allowed(400, &policy), Ok(()));
    }

    #[test]
    fn worked_example_compensation_recovery_write_off() {
        // 50,000.00 outstanding + 812.50 overdue interest = 50,812.50; fund share 0.70:
        // 50,812.50 × 0.70 = 35,568.75 (exact, no rounding).
        let paid = compensation_amount(m("50000"), m("812.50"), share("0.70")).unwrap();
        assert_eq!(paid, m("35568.75"));
        // Recovered 10,000.00 from the borrower later: 10,000.00 × 0.70 = 7,000.00 to the fund.
        assert_eq!(recovery_to_fund(m("10000"), share("0.70")), m("7000"));
        assert_eq!(
            recovery_to_fund_cumulative(paid, Money::ZERO, m("10000"), share("0.70")).unwrap(),
            m("7000")
        );
        // Written off: 35,568.75 − 7,000.00 = 28,568.75 lost by the fund.
        assert_eq!(write_off_loss(paid, m("7000")).unwrap(), m("28568.75"));
    }

    #[test]
    fn compensation_rounds_once_half_away() {
        // 50,812.51 × 0.70 = 35,568.757 → 35,568.76
        assert_eq!(
            compensation_amount(m("50000"), m("812.51"), share("0.70")).unwrap(),
            m("35568.76")
        );
        // 0.05 × 0.70 = 0.035 → 0.04 (banker's rounding would give 0.04 too; 0.25 × 0.1 =
        // 0.025 → 0.03 where banker's gives 0.02)
        assert_eq!(
            compensation_amount(m("0.05"), Money::ZERO, share("0.70")).unwrap(),
            m("0.04")
        );
        assert_eq!(
            compensation_amount(m("0.25"), Money::ZERO, share("0.1")).unwrap(),
            m("0.03")
        );
    }

    #[test]
    fn cumulative_recovery_does_not_drift_and_is_capped() {
        // Three recoveries of 0.01 at 0.70: one by one 0.007 → 0.01 each, 0.03 in all; the
        // share of the total is 0.03 × 0.70 = 0.021 → 0.02. Cumulative: round(0.007) = 0.01,
        // round(0.014) − 0.01 = 0.00, round(0.021) − 0.01 = 0.01: 0.02 in all.
        let s = share("0.70");
        let paid = m("100");
        let parts: Vec<Money> = (0..3)
            .map(|k| {
                let before = Money::from_decimal(Decimal::new(k, 2)).unwrap();
                recovery_to_fund_cumulative(paid, before, m("0.01"), s).unwrap()
            })
            .collect();
        assert_eq!(parts, [m("0.01"), m("0"), m("0.01")]);
        // Capped: the fund paid 700.00; 900.00 then 200.00 recovered: 630.00, then
        // min(770.00, 700.00) − 630.00 = 70.00, not 140.00.
        let paid = m("700");
        assert_eq!(
            recovery_to_fund_cumulative(paid, Money::ZERO, m("900"), s).unwrap(),
            m("630")
        );
        assert_eq!(
            recovery_to_fund_cumulative(paid, m("900"), m("200"), s).unwrap(),
            m("70")
        );
        assert_eq!(write_off_loss(paid, m("700")).unwrap(), Money::ZERO);
        let e = write_off_loss(paid, m("700.01")).unwrap_err();
        assert_eq!(e.field(), Some("recovered_to_fund"));
    }

    proptest! {
        #[test]
        fn cumulative_parts_sum_to_the_share_of_the_total(
            parts in prop::collection::vec(1i64..=10_000_000, 1..10),
            share_millionths in 0i64..=1_000_000,
            paid_fen in 0i64..=100_000_000,
        ) {
            let s = Share::from_decimal(Decimal::new(share_millionths, 6)).unwrap();
            let paid = Money::from_decimal(Decimal::new(paid_fen, 2)).unwrap();
            let mut before = Money::ZERO;
            let mut to_fund = Money::ZERO;
            for fen in parts {
                let now = Money::from_decimal(Decimal::new(fen, 2)).unwrap();
                let part = recovery_to_fund_cumulative(paid, before, now, s).unwrap();
                prop_assert!(part <= now);
                to_fund = to_fund.checked_add(part).unwrap();
                before = before.checked_add(now).unwrap();
            }
            prop_assert_eq!(to_fund, recovery_to_fund(before, s).min(paid));
            prop_assert!(write_off_loss(paid, to_fund).is_ok());
        }
    }
}
