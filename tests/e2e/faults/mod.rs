//! Faults and attacks: the database going away, overload, crashes and shutdowns under load.

mod crash;
mod load;
mod outage;
mod overload;
mod shutdown;
// Also the world of import_repayments.rs.
pub(crate) mod world;
