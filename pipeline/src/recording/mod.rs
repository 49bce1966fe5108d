//! Recording: what `record` computes and writes for one checkpoint. The evaluation tokens cut
//! into windows, the recorder that runs a checkpoint (or its SAEs) over them and writes each
//! layer's top-k entries per token as a Parquet partition, and the `neurons` rows of what the
//! weights say about each neuron or SAE latent.

mod jobs;
pub mod neurons;
pub mod recorder;
pub mod windows;

pub use jobs::{Job, expected_partitions, jobs};
pub use neurons::{latent_table, logit_lens_tokens, neuron_table};
pub use recorder::{Features, ROWS_PER_FILE, RecordStats, Recorder, STAGING};
pub use windows::{Window, windows};
