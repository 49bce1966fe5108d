//! The pipeline's domain as a library: configuration, text (corpus, lexicon, tokenizer), the
//! stages in data-flow order (prepare → train → sae → record → analyze → steer → report) and
//! their bookkeeping (manifest, lock, run layout), `pipeline sql`, generation and steering, and
//! the benchmarks. The `pipeline` binary (`main.rs`) parses the command line and calls these.

pub mod bench;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod corpus;
pub mod imports;
pub mod lexicon;
pub mod manifest;
pub mod preparation;
pub mod recording;
pub mod report;
pub mod saes;
pub mod serve;
pub mod sql;
pub mod stages;
pub mod steer;
pub mod steering;
pub mod summaries;
pub mod token_stream;
pub mod tokenize;
pub mod ui;
