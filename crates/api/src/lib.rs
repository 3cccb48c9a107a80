//! The danbao HTTP service: routes, authentication, errors, start-up.
pub mod auth;
pub mod authz;
pub mod bootstrap;
pub mod context;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod extract;
pub mod facts;
pub mod idempotency;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
pub mod stats;
pub mod telemetry;
pub mod verify;
