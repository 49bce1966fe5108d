//! The stages, in data-flow order (prepare → train → sae → record → analyze → steer →
//! report), one file each: glue that reads the stage's inputs, fingerprints them, calls the
//! library and summarises. What they share: [`Stage`], the run context [`Ctx`] with its
//! bookkeeping, and the run's lock.

pub mod analyze;
mod context;
mod load;
mod lock;
pub mod prepare;
pub mod record;
pub mod report;
pub mod sae;
mod stage;
pub mod steer;
pub mod train;

pub use context::Ctx;
pub use lock::RunLock;
pub use stage::{Outcome, Stage};
