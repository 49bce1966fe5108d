//! Training: config, schedules, batches and the loop.

mod batches;
mod config;
mod parallel;
mod precision;
mod schedule;
mod speed;
mod trainer;

pub use batches::Batches;
pub use config::TrainingConfig;
pub use parallel::{ShardGradients, shard_gradients};
pub use precision::{Precision, compute_copy};
pub use schedule::{checkpoint_steps, lr_at, topk_k_at};
pub use speed::{SpeedRun, TrainSpeed, compare, synthetic_tokens, tokens_per_second};
pub use trainer::{Progress, TrainOutcome, evaluate, init_on_cpu, train};
