//! In-process HTTP tests: the real server on port 0 over a real, private PostgreSQL database.
mod admin;
mod auth;
mod bad_input;
mod batches;
mod borrowers;
mod communities;
mod compensation;
mod dashboard;
mod demo;
mod funds;
mod helpers;
mod limits;
mod loans;
mod openapi;
mod repayments;
mod scope;
mod stats;
