//! PostgreSQL storage for danbao.
pub mod cluster;
pub mod migrate;
pub mod models;
pub mod pool;
pub mod repo;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

pub use diesel;
pub use diesel_async;
