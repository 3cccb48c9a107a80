//! Pure rules of the danbao guarantee programme (小额担保贷款): money, ids, policy,
//! eligibility, schedules, capacity. No I/O, no database, no HTTP: everything here is a
//! function of its arguments, so it is unit-tested beside the code.

mod text;

pub mod borrower;
pub mod capacity;
pub mod eligibility;
pub mod error;
pub mod money;
pub mod national_id;
pub mod policy;
pub mod rate;
pub mod region;
pub mod schedule;

pub use borrower::{BorrowerCategory, BorrowerKind, ScheduleMethod};
pub use capacity::{actual_leverage, check_capacity, headroom, headroom_for_display};
pub use eligibility::{check_application, ApplicationFacts, CounterGuarantee};
pub use error::DomainError;
pub use money::{round_money, Money};
pub use national_id::NationalId;
pub use policy::{in_force_on, presets, Policy, SubsidyShares};
pub use rate::{Rate, Share};
pub use region::{RegionCode, RegionLevel};
pub use schedule::{build_schedule, subsidy_of, Instalment, InterestConvention};
