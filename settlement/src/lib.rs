//! The settlement service: the sharded gift ledger (rules in `ovation-ledger`) on SQLite
//! files or PostgreSQL databases, one per shard.

#![forbid(unsafe_code)]

pub mod http;
pub mod postgres_admin;
pub mod store;

pub use store::{SqlLedger, StoreError};
