use crate::schema::policies;
use chrono::{DateTime, NaiveDate, Utc};
use danbao_domain::{DomainError, Money, Policy, Rate, Share, SubsidyShares};
use diesel::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = policies, check_for_backend(diesel::pg::Pg))]
pub struct PolicyRow {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub region_code: Option<String>,
    pub effective_from: NaiveDate,
    pub individual_limit: Decimal,
    pub partnership_limit_multiple: Decimal,
    pub small_enterprise_limit: Option<Decimal>,
    pub max_term_months: i32,
    pub enterprise_max_term_months: i32,
    pub extension_max_months: i32,
    pub benchmark_rate: Decimal,
    pub max_rate_spread: Decimal,
    pub penalty_rate_multiplier: Decimal,
    pub leverage_multiple: Decimal,
    pub leverage_bonus_multiple: Option<Decimal>,
    pub leverage_bonus_min_repayment_rate: Option<Decimal>,
    pub waiver_limit: Decimal,
    pub compensation_overdue_days: i32,
    pub compensation_pay_within_days: i32,
    pub fund_share: Decimal,
    pub bank_share: Decimal,
    pub other_share: Decimal,
    pub subsidy_share_laid_off: Decimal,
    pub subsidy_share_registered_unemployed: Decimal,
    pub subsidy_share_graduate: Decimal,
    pub subsidy_share_demobilised_soldier: Decimal,
    pub subsidy_share_returning_migrant: Decimal,
    pub subsidy_share_disabled: Decimal,
    pub subsidy_share_small_enterprise: Decimal,
    pub grace_days: i32,
    pub bank_stop_overdue_ratio: Decimal,
    pub reward_share: Decimal,
    pub reward_min_repayment_rate: Decimal,
    pub min_age: i32,
    pub max_age: i32,
    pub certificate_required: bool,
    #[diesel(skip_insertion)]
    pub created_at: DateTime<Utc>,
}

fn count(v: u32) -> i32 {
    // Policy::validate bounds every count far below i32::MAX.
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn uncount(field: &str, v: i32) -> Result<u32, DomainError> {
    u32::try_from(v).map_err(|_| DomainError::invalid(field, "stored value is negative"))
}

impl PolicyRow {
    pub fn from_domain(id: Uuid, region_code: Option<String>, p: &Policy) -> Self {
        let s = &p.subsidy_shares;
        PolicyRow {
            id,
            code: p.code.clone(),
            name: p.name.clone(),
            region_code,
            effective_from: p.effective_from,
            individual_limit: p.individual_limit.amount(),
            partnership_limit_multiple: p.partnership_limit_multiple,
            small_enterprise_limit: p.small_enterprise_limit.map(|m| m.amount()),
            max_term_months: count(p.max_term_months),
            enterprise_max_term_months: count(p.enterprise_max_term_months),
            extension_max_months: count(p.extension_max_months),
            benchmark_rate: p.benchmark_rate.value(),
            max_rate_spread: p.max_rate_spread.value(),
            penalty_rate_multiplier: p.penalty_rate_multiplier,
            leverage_multiple: p.leverage_multiple,
            leverage_bonus_multiple: p.leverage_bonus_multiple,
            leverage_bonus_min_repayment_rate: p
                .leverage_bonus_min_repayment_rate
                .map(|r| r.value()),
            waiver_limit: p.waiver_limit.amount(),
            compensation_overdue_days: count(p.compensation_overdue_days),
            compensation_pay_within_days: count(p.compensation_pay_within_days),
            fund_share: p.fund_share.value(),
            bank_share: p.bank_share.value(),
            other_share: p.other_share.value(),
            subsidy_share_laid_off: s.laid_off.value(),
            subsidy_share_registered_unemployed: s.registered_unemployed.value(),
            subsidy_share_graduate: s.graduate.value(),
            subsidy_share_demobilised_soldier: s.demobilised_soldier.value(),
            subsidy_share_returning_migrant: s.returning_migrant.value(),
            subsidy_share_disabled: s.disabled.value(),
            subsidy_share_small_enterprise: s.small_enterprise.value(),
            grace_days: count(p.grace_days),
            bank_stop_overdue_ratio: p.bank_stop_overdue_ratio.value(),
            reward_share: p.reward_share.value(),
            reward_min_repayment_rate: p.reward_min_repayment_rate.value(),
            min_age: count(p.min_age),
            max_age: count(p.max_age),
            certificate_required: p.certificate_required,
            created_at: Utc::now(),
        }
    }

    pub fn to_domain(&self) -> Result<Policy, DomainError> {
        Ok(Policy {
            code: self.code.clone(),
            name: self.name.clone(),
            effective_from: self.effective_from,
            individual_limit: Money::from_decimal(self.individual_limit)?,
            partnership_limit_multiple: self.partnership_limit_multiple,
            small_enterprise_limit: self
                .small_enterprise_limit
                .map(Money::from_decimal)
                .transpose()?,
            max_term_months: uncount("max_term_months", self.max_term_months)?,
            enterprise_max_term_months: uncount(
                "enterprise_max_term_months",
                self.enterprise_max_term_months,
            )?,
            extension_max_months: uncount("extension_max_months", self.extension_max_months)?,
            benchmark_rate: Rate::from_decimal(self.benchmark_rate)?,
            max_rate_spread: Rate::from_decimal(self.max_rate_spread)?,
            penalty_rate_multiplier: self.penalty_rate_multiplier,
            leverage_multiple: self.leverage_multiple,
            leverage_bonus_multiple: self.leverage_bonus_multiple,
            leverage_bonus_min_repayment_rate: self
                .leverage_bonus_min_repayment_rate
                .map(Share::from_decimal)
                .transpose()?,
            waiver_limit: Money::from_decimal(self.waiver_limit)?,
            compensation_overdue_days: uncount(
                "compensation_overdue_days",
                self.compensation_overdue_days,
            )?,
            compensation_pay_within_days: uncount(
                "compensation_pay_within_days",
                self.compensation_pay_within_days,
            )?,
            fund_share: Share::from_decimal(self.fund_share)?,
            bank_share: Share::from_decimal(self.bank_share)?,
            other_share: Share::from_decimal(self.other_share)?,
            subsidy_shares: SubsidyShares {
                laid_off: Share::from_decimal(self.subsidy_share_laid_off)?,
                registered_unemployed: Share::from_decimal(
                    self.subsidy_share_registered_unemployed,
                )?,
                graduate: Share::from_decimal(self.subsidy_share_graduate)?,
                demobilised_soldier: Share::from_decimal(self.subsidy_share_demobilised_soldier)?,
                returning_migrant: Share::from_decimal(self.subsidy_share_returning_migrant)?,
                disabled: Share::from_decimal(self.subsidy_share_disabled)?,
                small_enterprise: Share::from_decimal(self.subsidy_share_small_enterprise)?,
            },
            grace_days: uncount("grace_days", self.grace_days)?,
            bank_stop_overdue_ratio: Share::from_decimal(self.bank_stop_overdue_ratio)?,
            reward_share: Share::from_decimal(self.reward_share)?,
            reward_min_repayment_rate: Share::from_decimal(self.reward_min_repayment_rate)?,
            min_age: uncount("min_age", self.min_age)?,
            max_age: uncount("max_age", self.max_age)?,
            certificate_required: self.certificate_required,
        })
    }
}
