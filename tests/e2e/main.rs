//! End-to-end tests: each starts the built `danbao` binary as a child process, on a free port
//! and with a database of its own, and drives it over HTTP. Nothing is shared between tests
//! but the binary, so they run in parallel (`cargo nextest run -p danbao-api --test e2e`).

mod bad_input;
mod bank_week;
mod clerk_day;
mod database_url;
mod embedded;
mod faults;
mod harness;
mod import_repayments;
mod memory;
mod no_postgres;
mod read_replica;
