//! Recording: what `record` computes and writes for one checkpoint. The evaluation tokens cut
//! into windows, the recorder that runs a checkpoint (or its SAEs) over them and writes each
//! layer's top-k entries per token as a Parquet partition, and the `neurons` rows of what the
//! weights say about each neuron or SAE latent.

pub mod neurons;
pub mod recorder;
pub mod windows;

pub use neurons::{latent_table, logit_lens_tokens, neuron_table};
pub use recorder::{Features, ROWS_PER_FILE, RecordStats, Recorder, STAGING, activation_batch};
pub use windows::{Window, windows};
