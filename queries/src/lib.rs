//! The run's tables: Arrow schemas, atomic Parquet I/O, the SQL of every derived table, and
//! the DataFusion session that registers them.

pub mod analysis;
pub mod bootstrap;
#[cfg(feature = "ballista")]
pub mod cluster;
pub mod durable;
pub mod engine;
mod error;
pub mod layout;
pub mod matching;
pub mod parquet_io;
pub mod results;
pub mod session;
pub mod sql;
pub mod stability;
pub mod synthetic;
pub mod tables;

pub use error::{Error, Result};
