//! Command-line interface: one subcommand per stage, plus `run`, `config`, `sql` and `bench`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Checkpoint analytics for TopK language models (arXiv 2506.21468).
///
/// Trains a TopK LM and a dense baseline on local text, records the sparse activations of every
/// checkpoint to Parquet, analyses them with SQL (token and semantic entropy, neuron lineage),
/// and writes charts and an HTML report.
///
/// Quick start: `pipeline run all` (bundled data, tiny preset, a few minutes on 2 cores).
///
/// Then: `pipeline sql "SELECT * FROM layer_summary LIMIT 10"`, and open the report it prints.
#[derive(Debug, Parser)]
#[command(name = "pipeline", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file (default: ./pipeline.toml if it exists, else the built-in defaults).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override a config value, e.g. --set train.steps=200 --set run.preset=small.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Redo the stage even if its inputs and config are unchanged.
    #[arg(long, global = true)]
    pub force: bool,
    /// No progress bars or summaries; errors only.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Log JSON lines to stderr (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// Compute backend of training, recording and steering: flex (pure-Rust CPU, the default)
    /// or wgpu (a GPU; build with `--features wgpu`). Sets run.backend.
    #[arg(long, global = true, value_name = "NAME")]
    pub backend: Option<String>,
    /// Query engine of `analyze`, `sql` and `bench analyze`: datafusion (in this process, the
    /// default) or ballista (a cluster; see `pipeline cluster start`). Sets engine.kind.
    #[arg(long, global = true, value_parser = ["datafusion", "ballista"])]
    pub engine: Option<String>,
    /// Ballista scheduler, df://HOST:PORT (default df://127.0.0.1:50050). Sets engine.scheduler.
    #[arg(long, global = true, value_name = "URL")]
    pub scheduler: Option<String>,
    /// More logging (-v: info, -vv: debug).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run stages in order: `run all`, or `run <stage>`.
    Run {
        /// `all`, or one of prepare, train, sae, record, analyze, steer, report.
        #[arg(default_value = "all")]
        stage: String,
    },
    /// Tokenizer, token streams and the labelled evaluation tokens from the corpus.
    Prepare,
    /// Train the TopK LM and the dense baseline, with checkpoints; resumes if interrupted.
    Train,
    /// Train the post-hoc baseline: a TopK sparse autoencoder per dense-baseline checkpoint and
    /// TopK-layer position (`[sae]`; `--set sae.enabled=false` skips it).
    Sae,
    /// Record each checkpoint's sparse activations (and SAE latents) to Parquet.
    Record,
    /// Compute the derived tables (entropies, lineage, ...) with SQL.
    Analyze,
    /// Draw the charts and write the HTML report.
    Report,
    /// Generate text from a checkpoint.
    Generate(GenerateArgs),
    /// Generate with one neuron per layer clamped, boosted or scaled, side by side with the
    /// unsteered text.
    Steer(SteerArgs),
    /// Query the run's tables with SQL (no query: an interactive prompt).
    Sql(SqlArgs),
    /// Explore the run in the browser: search neurons, follow one across checkpoints, compare
    /// checkpoints, steer, query with SQL. Serves http://127.0.0.1:8765/ until Ctrl-C.
    Serve(crate::serve::ServeArgs),
    /// A Ballista cluster for `--engine ballista`.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Show or write the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Print speed figures measured on this machine.
    Bench {
        /// What to measure.
        #[arg(value_enum)]
        what: BenchTarget,
        /// Activation rows of the generated table (`bench analyze`).
        #[arg(long, default_value_t = 100_000_000)]
        rows: usize,
        /// Memory DataFusion may use before spilling, in MiB (`bench analyze`).
        #[arg(long, default_value_t = 4096)]
        memory_mib: usize,
        /// `bench analyze`: also compute every derived table with another engine over the same
        /// files, in the same sitting, and print the time ratios (DuckDB through
        /// `bench/duckdb_analyze.py`; needs `pip install duckdb`).
        #[arg(long, value_parser = ["duckdb"])]
        compare: Option<String>,
        /// `bench analyze`: the configured run's recorded tables instead of a generated lake
        /// (read only; the derived tables go to a temporary folder).
        #[arg(long)]
        on_run: bool,
        /// `bench analyze`: run each engine this many times, alternating, and report each
        /// table's median time: tables that take milliseconds swing by a third between runs.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
        repeat: u32,
        /// Size of the generated corpus, in MiB (`bench prepare`; it needs this much free disk
        /// in the temporary folder).
        #[arg(long, default_value_t = 5120)]
        corpus_mib: usize,
        #[command(flatten)]
        lake: LakeArgs,
    },
}

/// Shape of the activation lake `bench analyze` generates (the tokens follow from `--rows`).
#[derive(Debug, Clone, Args)]
pub struct LakeArgs {
    /// Neurons per layer (Pythia-70m: 512).
    #[arg(long, default_value_t = 256)]
    pub neurons: usize,
    /// Layers per checkpoint.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Checkpoints per model.
    #[arg(long, default_value_t = 8)]
    pub checkpoints: usize,
    /// Models (1 or 2).
    #[arg(long, default_value_t = 2)]
    pub models: usize,
}

/// `pipeline generate` options.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Text to continue.
    #[arg(long, default_value = "Once upon a time,")]
    pub prompt: String,
    /// Model to generate from.
    #[arg(long, default_value = "topk")]
    pub model: String,
    /// Checkpoint step (default: the last).
    #[arg(long)]
    pub step: Option<usize>,
    /// Tokens to generate.
    #[arg(long, default_value_t = 40)]
    pub max_new_tokens: usize,
    /// Sampling temperature (0: greedy).
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Sampling seed (default: train.seed).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// `pipeline steer` options.
#[derive(Debug, Args)]
pub struct SteerArgs {
    #[command(flatten)]
    pub generate: GenerateArgs,
    /// Layer whose output is edited.
    #[arg(long)]
    pub layer: Option<usize>,
    /// Neuron (residual-stream coordinate) to edit.
    #[arg(long)]
    pub neuron: Option<usize>,
    /// Instead of --layer/--neuron: in each TopK layer, the most specific neuron of this
    /// concept (e.g. noun.food); the value is then relative to its largest activation.
    #[arg(long, conflicts_with_all = ["layer", "neuron"])]
    pub concept: Option<String>,
    /// Strength.
    #[arg(long, default_value_t = 4.0)]
    pub value: f64,
    /// Read --value as a multiple of the neuron's largest observed activation.
    #[arg(long)]
    pub relative: bool,
    /// set: a ← value; add: a ← a + value; scale: a ← a · value.
    #[arg(long, value_enum, default_value_t = SteerMode::Set)]
    pub mode: SteerMode,
    /// Edit the prompt's positions only, not the generated ones.
    #[arg(long)]
    pub prompt_only: bool,
    /// Run the steering evaluation instead (the `steer` stage: `[steer]` concepts × strengths
    /// × prompts, for every model; writes steer/steering.parquet).
    #[arg(long)]
    pub eval: bool,
}

/// `pipeline sql` options.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query; omit it for an interactive prompt.
    pub query: Option<String>,
    /// Read the query from a file.
    #[arg(long, short = 'f', value_name = "FILE", conflicts_with = "query")]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Write the result to a file instead of stdout (required for parquet); outside the run
    /// directory, which only the stages write.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Allow `COPY (query) TO 'file'` to a path outside the run directory. Without it, and
    /// always for INSERT, CREATE, DROP and other statements that change tables, the query is
    /// refused: `pipeline sql` only reads.
    #[arg(long)]
    pub allow_copy: bool,
}

/// How `pipeline steer` edits the chosen neuron's activation `a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SteerMode {
    /// a ← value
    Set,
    /// a ← a + value
    Add,
    /// a ← a · value
    Scale,
}

impl From<SteerMode> for model::InterventionMode {
    fn from(mode: SteerMode) -> Self {
        match mode {
            SteerMode::Set => model::InterventionMode::Set,
            SteerMode::Add => model::InterventionMode::Add,
            SteerMode::Scale => model::InterventionMode::Scale,
        }
    }
}

/// How `pipeline sql` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

/// `pipeline config` actions.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration (defaults, file and --set overrides).
    Show,
    /// Write a commented pipeline.toml with every key and its default.
    Init {
        /// Where to write it.
        #[arg(default_value = "pipeline.toml")]
        path: PathBuf,
    },
}

/// `pipeline cluster` actions.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Start a scheduler and executors in this process, on loopback, until Ctrl-C. Then, from
    /// another terminal: `pipeline analyze --engine ballista`.
    Start {
        /// Executors (default: cluster.executors).
        #[arg(long)]
        executors: Option<usize>,
        /// Scheduler port on 127.0.0.1 (default: cluster.scheduler_port).
        #[arg(long)]
        port: Option<u16>,
    },
}

/// `pipeline bench` targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTarget {
    /// Training tokens/s, TopK against dense, and the share of peak FLOP/s.
    Train,
    /// Recording tokens/s, write overhead and bytes on disk per token.
    Record,
    /// Rows/s of each derived table on a generated activation table (with `--engine ballista`:
    /// also on local clusters of 1 and 2 executors, side by side).
    Analyze,
    /// SAE training tokens/s on hidden states of the last dense checkpoint.
    Sae,
    /// Time and memory of matching n features across two checkpoints (the `matching` table),
    /// for n from 512 up to the largest the config allows.
    Matching,
    /// Streaming `prepare` over a generated corpus larger than memory (`--corpus-mib`): MB/s of
    /// each pass, cores used, and peak memory.
    Prepare,
    /// Response times of `pipeline serve` over the configured run: neuron pages, searches,
    /// steering requests.
    Serve,
}
