//! Pure rules of the danbao guarantee programme (小额担保贷款): money, ids, policy,
//! eligibility, schedules, capacity, and the money after disbursement: loan positions,
//! overdue, extension, compensation, interest subsidy and repayment rates. No I/O, no
//! database, no HTTP: everything here is a function of its arguments, so it is unit-tested
//! beside the code.

mod fen;
mod text;

pub mod borrower;
pub mod bounds;
pub mod capacity;
pub mod compensation;
pub mod eligibility;
pub mod error;
pub mod extension;
pub mod money;
pub mod national_id;
pub mod overdue;
pub mod policy;
pub mod position;
pub mod rate;
pub mod region;
pub mod repayment_file;
pub mod repayment_rate;
pub mod schedule;
pub mod subsidy;

pub use borrower::{BorrowerCategory, BorrowerKind, ScheduleMethod};
pub use capacity::{actual_leverage, check_capacity, headroom, headroom_for_display};
pub use compensation::{
    compensation_amount, compensation_claim_allowed, recovery_to_fund, recovery_to_fund_cumulative,
    write_off_loss,
};
pub use eligibility::{check_application, ApplicationFacts, CounterGuarantee};
pub use error::DomainError;
pub use extension::{extend, Extension};
pub use money::{round_money, Money};
pub use national_id::NationalId;
pub use overdue::{days_past_due, par_summary, BucketTotal, ParBucket, ParSummary};
pub use policy::{in_force_on, presets, Policy, SubsidyShares};
pub use position::{
    allocate, Allocation, AllocationPart, InstalmentPosition, Position, Repayment, Replay,
};
pub use rate::{Rate, Share};
pub use region::{RegionCode, RegionLevel};
pub use repayment_rate::{percent, PrincipalDue, RatePeriod, RepaymentTally};
pub use schedule::{build_schedule, subsidy_of, Instalment, InterestConvention};
pub use subsidy::{quarter_of, quarterly_subsidy, Quarter, QuarterSubsidy, SubsidyInstalment};
