//! One file per table: `Row` (what is read), `New*` (what is inserted).
pub mod audit_event;
pub mod bank;
pub mod bank_client;
pub mod borrower;
pub mod centre;
pub mod compensation;
pub mod credit_community;
pub mod fund;
pub mod loan;
pub mod policy;
pub mod region;
pub mod repayment;
pub mod repayment_batch;
pub mod stats;
pub mod user;
