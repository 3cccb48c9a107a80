//! One file per table: `Row` (what is read), `New*` (what is inserted).
pub mod audit_event;
pub mod bank;
pub mod bank_client;
pub mod centre;
pub mod policy;
pub mod region;
pub mod user;
