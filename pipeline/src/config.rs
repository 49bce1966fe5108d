//! The effective configuration: embedded preset defaults, then `pipeline.toml`, then
//! `--set key=value`, checked before any work starts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use model::train::TrainingConfig;
use model::{GptConfig, Preset};
use queries::engine::{Engine, EngineKind};
use queries::sql::AnalysisParams;
use serde::{Deserialize, Serialize};

/// Features (neurons, SAE latents) one layer may have: the tables number them with u16.
pub const MAX_FEATURES: usize = 1 << 16;

/// Features per layer that `analyze` matches across checkpoints: its dense cosine and weight
/// matrices take [`matching_bytes`] (1.5 GiB at this n), and the Hungarian algorithm n³ steps.
pub const MAX_MATCHED: usize = 8192;

/// Memory of one matching of `n` features: the dot-product and cosine matrices (f64) and the
/// integer weights of the Hungarian algorithm (i64).
pub fn matching_bytes(n: usize) -> u64 {
    3 * 8 * (n as u64) * (n as u64)
}

/// Where the run lives and what runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Run name: outputs go to `<dir>/<name>/`.
    pub name: String,
    /// Parent folder of run directories.
    pub dir: PathBuf,
    /// Size preset: `tiny` (minutes on 2 CPU cores), `small`, or `paper` (GPU).
    pub preset: Preset,
    /// Compute backend: `flex` (pure-Rust CPU) or `wgpu` (GPU; `--features wgpu`).
    pub backend: model::Backend,
}

/// Input text, tokenizer and lexicon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// A file or folder of `.txt` (documents separated by blank lines; `.gz` allowed),
    /// `.jsonl` or `.parquet`.
    pub corpus: PathBuf,
    /// Field of a JSONL object, or column of a Parquet file, that holds the text.
    pub text_field: String,
    /// Word → concept lexicon (TSV: lemma, concept, senses; `.gz` allowed).
    pub lexicon: PathBuf,
    /// An existing `tokenizer.json` to use instead of training one ("" = train).
    pub tokenizer: PathBuf,
    /// Share of documents held out for validation and evaluation (by a seeded hash of the
    /// document id).
    pub val_fraction: f64,
    /// Evaluation tokens recorded and analysed (taken from the validation documents).
    pub eval_tokens: usize,
    /// Seed of the train/validation split.
    pub seed: u64,
}

/// Models trained elsewhere, analysed instead of training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSection {
    /// A folder with one sub-folder per model in `models`, each holding `config.json` and
    /// `checkpoints/step-NNNNNNN/model.safetensors` (the layout `train` writes). "" = train.
    pub source: PathBuf,
}

/// What `record` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSection {
    /// Entries recorded per token and layer (0 = the model's `topk_k`). Dense layers are
    /// recorded as their k largest entries, so the same queries compare TopK and dense.
    pub k: usize,
    /// Sequences per forward pass.
    pub batch_size: usize,
    /// Checkpoints recorded in parallel (each uses its own matmul threads).
    pub parallel_checkpoints: usize,
    /// Stored activation values: "f32" (exact) or "f16" (half the value column, ~3 digits).
    pub value_type: ValueType,
    /// Activation rows per part file of a partition (bounds the recorder's memory); the rows
    /// are the same whatever the split.
    pub rows_per_file: usize,
}

/// How `record` stores activation values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// Exact.
    F32,
    /// Rounded to half precision: a third of the disk at k = 16, about 3 significant digits.
    F16,
}

impl ValueType {
    /// The name stored in each partition's metadata.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::F32 => "f32",
            ValueType::F16 => "f16",
        }
    }
}

/// Which checkpoints the steering evaluation runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SteerCheckpoints {
    #[default]
    Last,
    All,
}

/// The steering evaluation (`steer` stage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteerSection {
    /// Concepts to steer towards (WordNet supersenses). Empty: the concepts with the most
    /// specialised neurons in the TopK model. Concepts no neuron specialises in are reported
    /// and skipped.
    pub concepts: Vec<String>,
    /// How many concepts to pick when `concepts` is empty.
    pub auto_concepts: usize,
    /// Strengths, as multiples of each neuron's largest observed activation (0: unsteered).
    pub strengths: Vec<f64>,
    /// Neutral prompts, one per line.
    pub prompts: PathBuf,
    /// Tokens generated per prompt.
    pub max_new_tokens: usize,
    /// Checkpoints evaluated: `last` (each model's last), or `all` (steerability over
    /// training: from which step a concept can be steered; time grows with the checkpoints).
    #[serde(default)]
    pub checkpoints: SteerCheckpoints,
    /// Sampling temperature (0: greedy).
    pub temperature: f32,
}

/// The post-hoc SAE baseline (`sae` stage): TopK SAEs trained on the dense baseline's
/// residual stream at the TopK model's TopK-layer positions, one per checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaeSection {
    /// Train and record SAEs; `false` skips the stage (no SAE rows in any table).
    pub enabled: bool,
    /// The model whose residual stream is encoded (the dense baseline).
    pub model: String,
    /// Latents per hidden unit (Gao et al. use 4–64×; d_sae = expansion × d_model).
    pub expansion: usize,
    /// Hidden states collected per checkpoint from the training split (SAE training data).
    pub train_tokens: usize,
    /// Validation tokens for the quality table (FVU, dead latents, loss recovered).
    pub eval_tokens: usize,
    /// Optimizer steps per SAE.
    pub steps: usize,
    /// Hidden states per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Dead latents fed to the AuxK loss (0: none).
    pub aux_k: usize,
    /// Weight of the AuxK loss (Gao et al.: 1/32).
    pub aux_coef: f32,
    /// A latent silent for this many training tokens is dead (AuxK revives it).
    pub dead_after_tokens: usize,
    /// Seed of every SAE's initialisation and batches.
    pub seed: u64,
    /// A second seed for the last checkpoint's SAEs, recorded as `<model>-sae-seed2`, to measure
    /// run-to-run stability on the same checkpoint (0: none).
    pub second_seed: u64,
    /// Also train a warm-started series, `<model>-sae-warm`: each checkpoint's SAE starts from
    /// the previous checkpoint's (the SAE-Track practice) instead of from its seed. Its
    /// stability across checkpoints is favoured by construction.
    #[serde(default)]
    pub warm_start: bool,
}

impl SaeSection {
    /// Defaults: a few seconds per SAE on 2 CPU cores at the tiny preset.
    pub fn defaults() -> Self {
        Self {
            enabled: true,
            model: "dense".into(),
            expansion: 4,
            train_tokens: 8192,
            eval_tokens: 2048,
            steps: 100,
            batch_size: 512,
            lr: 2e-3,
            warmup_steps: 10,
            aux_k: 64,
            aux_coef: 1.0 / 32.0,
            dead_after_tokens: 16384,
            seed: 7,
            second_seed: 8,
            warm_start: false,
        }
    }

    /// The optimisation settings with one seed.
    pub fn training(&self, seed: u64) -> model::sae::SaeTrainingConfig {
        model::sae::SaeTrainingConfig {
            steps: self.steps,
            batch_size: self.batch_size,
            lr: self.lr,
            warmup_steps: self.warmup_steps,
            aux_k: self.aux_k,
            aux_coef: self.aux_coef,
            dead_after_tokens: self.dead_after_tokens,
            seed,
        }
    }

    /// Name of the warm-started series.
    pub fn warm_series_name(&self) -> String {
        format!("{}-sae-warm", self.model)
    }

    /// Name under which an SAE series is recorded (the second seed's when `second`).
    pub fn series_name(&self, second: bool) -> String {
        if second {
            format!("{}-sae-seed2", self.model)
        } else {
            format!("{}-sae", self.model)
        }
    }
}

/// What `report` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    /// Most concept-specific neurons listed (and given a page) per model and layer.
    pub neurons_per_layer: usize,
}

/// Which engine runs the SQL of `analyze` and `pipeline sql`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// `datafusion` (in this process) or `ballista` (a cluster).
    pub kind: EngineKind,
    /// The Ballista scheduler, `df://host:port`.
    pub scheduler: String,
}

impl EngineSection {
    /// The engine, with the scheduler URL checked.
    pub fn engine(&self) -> Result<Engine> {
        let engine = Engine::new(self.kind, &self.scheduler);
        if engine.is_distributed() {
            queries::engine::scheduler_address(&self.scheduler).context("`engine.scheduler`")?;
        }
        Ok(engine)
    }
}

/// `pipeline cluster start`: a local Ballista cluster on loopback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    pub executors: usize,
    pub scheduler_port: u16,
    pub task_slots: usize,
}

/// Everything a run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Models trained on the same data with the same seed: `topk` and its `dense` baseline.
    pub models: Vec<String>,
    pub run: RunSection,
    pub data: DataSection,
    pub model: GptConfig,
    pub train: TrainingConfig,
    pub load: LoadSection,
    pub record: RecordSection,
    pub analyze: AnalysisParams,
    pub steer: SteerSection,
    pub sae: SaeSection,
    pub report: ReportSection,
    pub engine: EngineSection,
    pub cluster: ClusterSection,
}

/// The two models this project trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    TopK,
    Dense,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::TopK => "topk",
            ModelKind::Dense => "dense",
        }
    }
}

/// What a trained model's name says: its kind and seed number (1 for `topk` and `dense`, n for
/// `topk-seedN` / `dense-seedN` with n ≥ 2); `None` for any other name.
pub fn trained_model(name: &str) -> Option<(ModelKind, u64)> {
    let (kind, rest) = if let Some(rest) = name.strip_prefix("topk") {
        (ModelKind::TopK, rest)
    } else {
        (ModelKind::Dense, name.strip_prefix("dense")?)
    };
    if rest.is_empty() {
        return Some((kind, 1));
    }
    let digits = rest.strip_prefix("-seed")?;
    let n: u64 = digits.parse().ok()?;
    // One spelling per seed: `topk-seed2`, not `topk-seed02` or `topk-seed+2`.
    (n >= 2 && n.to_string() == digits).then_some((kind, n))
}

/// A data path as configured; a relative `data/...` path that does not exist from the working
/// directory is looked up in the source tree's bundled `data/` (so the defaults work from
/// anywhere). Other paths are returned as given, so errors name what the user wrote.
pub fn bundled(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    if path.is_relative() && path.starts_with("data") && !path.exists() {
        return Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    }
    path.to_owned()
}

impl PipelineConfig {
    /// Defaults of a preset.
    pub fn defaults(preset: Preset) -> Self {
        let vocab = match preset {
            Preset::Tiny => 2048,
            Preset::Small => 8192,
            Preset::Paper => 32768,
        };
        let train = match preset {
            Preset::Tiny => TrainingConfig::tiny(),
            Preset::Small => TrainingConfig::small(),
            Preset::Paper => TrainingConfig::paper(),
        };
        Self {
            run: RunSection {
                name: "default".into(),
                dir: "runs".into(),
                preset,
                backend: model::Backend::Flex,
            },
            data: DataSection {
                corpus: "data/corpus.txt.gz".into(),
                text_field: "text".into(),
                lexicon: "data/lexicon.tsv.gz".into(),
                tokenizer: "".into(),
                val_fraction: 0.05,
                eval_tokens: if preset == Preset::Tiny { 8192 } else { 65536 },
                seed: 1234,
            },
            model: GptConfig::preset(preset, vocab),
            train,
            models: vec!["topk".into(), "dense".into()],
            load: LoadSection { source: "".into() },
            record: RecordSection {
                k: 0,
                batch_size: 16,
                // Two cores on the reference machine: 1.6× faster than one at a time, and
                // byte-identical tables.
                parallel_checkpoints: 2,
                rows_per_file: 4 << 20,
                value_type: ValueType::F32,
            },
            analyze: AnalysisParams::default(),
            steer: SteerSection {
                concepts: vec![],
                auto_concepts: 3,
                strengths: vec![0.0, 1.0, 2.0, 4.0, 8.0],
                prompts: "data/prompts.txt".into(),
                max_new_tokens: 20,
                checkpoints: SteerCheckpoints::Last,
                temperature: 0.8,
            },
            sae: SaeSection::defaults(),
            report: ReportSection {
                neurons_per_layer: 12,
            },
            engine: EngineSection {
                kind: EngineKind::Datafusion,
                scheduler: "df://127.0.0.1:50050".into(),
            },
            cluster: ClusterSection {
                executors: 2,
                scheduler_port: 50050,
                task_slots: 2,
            },
        }
    }

    /// Loads `file` (if given or if `pipeline.toml` exists) over the preset defaults, then the
    /// `--set` overrides, and validates the result.
    pub fn load(file: Option<&Path>, sets: &[String]) -> Result<Self> {
        let (user, source) = match file {
            Some(path) => (read_toml(path)?, path.display().to_string()),
            None if Path::new("pipeline.toml").exists() => (
                read_toml(Path::new("pipeline.toml"))?,
                "pipeline.toml".to_string(),
            ),
            None => (toml::Table::new(), "defaults".to_string()),
        };
        let mut overrides = user;
        for set in sets {
            let (key, value) = set.split_once('=').with_context(|| {
                format!("--set {set}: expected key=value, e.g. --set train.steps=200")
            })?;
            insert_path(&mut overrides, key.trim(), parse_value(value.trim()))?;
        }
        // The preset picks the defaults the rest is laid over.
        let preset = match overrides.get("run").and_then(|r| r.get("preset")) {
            Some(v) => v.clone().try_into::<Preset>().map_err(|_| {
                anyhow::anyhow!("`run.preset` = {v}: use \"tiny\", \"small\" or \"paper\"")
            })?,
            None => Preset::Tiny,
        };
        let mut merged = toml::Table::try_from(Self::defaults(preset)).expect("defaults serialise");
        let from = match (source.as_str(), sets.is_empty()) {
            ("defaults", false) => "--set".to_owned(),
            (file, false) => format!("{file} or --set"),
            (file, true) => file.to_owned(),
        };
        merge(&mut merged, overrides, "", &from)?;
        let config: Self = toml::Value::Table(merged).try_into().map_err(|e| {
            // toml says "unknown variant `f8`, expected …\nin `record.value_type`": key first.
            let text = e.to_string();
            match text.trim().rsplit_once("\nin `") {
                Some((what, key)) => {
                    anyhow::anyhow!(
                        "`{}`: {} (from {from})",
                        key.trim_end_matches('`'),
                        what.trim()
                    )
                }
                None => anyhow::anyhow!("{from}: {}", text.trim()),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects impossible values before any work starts.
    pub fn validate(&self) -> Result<()> {
        self.model.validate().context("in [model]")?;
        self.train.validate().context("in [train]")?;
        self.analyze.validate().map_err(anyhow::Error::msg)?;
        self.engine.engine()?;
        if self.cluster.executors == 0 || self.cluster.task_slots == 0 {
            bail!("`cluster.executors` and `cluster.task_slots` must be at least 1");
        }
        if !(0.0 < self.data.val_fraction && self.data.val_fraction < 1.0) {
            bail!(
                "`data.val_fraction` = {}: must be between 0 and 1 (exclusive)",
                self.data.val_fraction
            );
        }
        if self.data.eval_tokens == 0 {
            bail!("`data.eval_tokens` = 0: must be at least 1");
        }
        if self.model.d_model > MAX_MATCHED {
            bail!(
                "`model.d_model` = {}: `analyze` matches neurons one to one through a dense n × n cosine matrix (about {:.1} GiB at this n, time growing as n³), so at most {MAX_MATCHED}",
                self.model.d_model,
                matching_bytes(self.model.d_model) as f64 / (1u64 << 30) as f64
            );
        }
        if self.record.k > self.model.d_model {
            bail!(
                "`record.k` = {}: must be at most model.d_model = {}",
                self.record.k,
                self.model.d_model
            );
        }
        if self.record.batch_size == 0
            || self.record.parallel_checkpoints == 0
            || self.record.rows_per_file == 0
        {
            bail!(
                "`record.batch_size`, `record.parallel_checkpoints` and `record.rows_per_file` must be at least 1"
            );
        }
        if self.models.is_empty() {
            bail!("`models` is empty: list at least one of \"topk\", \"dense\"");
        }
        for m in &self.models {
            // A model name is a folder, a Hive partition value and part of a page's URL.
            let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
            if m.is_empty() || m == "." || m == ".." || !m.chars().all(safe) {
                bail!(
                    "`models` contains \"{m}\": a model name may use letters, digits, `-`, `_` and `.` (and is not `.` or `..`)"
                );
            }
            if self.load.source.as_os_str().is_empty() && trained_model(m).is_none() {
                bail!(
                    "`models` contains \"{m}\": each must be \"topk\" or \"dense\", or another seed of one, \"topk-seed2\", \"dense-seed3\", … (other names need `load.source`)"
                );
            }
        }
        let name = &self.run.name;
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains(['/', '\\'])
            || name.chars().any(char::is_control)
        {
            bail!(
                "`run.name` = {name:?}: must be a folder name (not empty, `.` or `..`, without `/`, `\\` or control characters)"
            );
        }
        self.run.backend.device().context("`run.backend`")?;
        if self.sae.enabled {
            if !self.models.contains(&self.sae.model) {
                bail!(
                    "`sae.model` = \"{}\" is not in `models` ({}); name the dense baseline, or set `sae.enabled = false`",
                    self.sae.model,
                    self.models.join(", ")
                );
            }
            if self.sae.expansion == 0 || self.sae.train_tokens == 0 || self.sae.eval_tokens == 0 {
                bail!(
                    "`sae.expansion`, `sae.train_tokens` and `sae.eval_tokens` must be at least 1"
                );
            }
            if self.sae.second_seed == self.sae.seed {
                bail!("`sae.second_seed` equals `sae.seed`; use another seed, or 0 for none");
            }
            let d_sae = self
                .sae
                .expansion
                .checked_mul(self.model.d_model)
                .filter(|&n| n <= MAX_FEATURES)
                .with_context(|| {
                    format!(
                        "`sae.expansion` = {}: {} × model.d_model ({}) latents per layer exceed the {MAX_FEATURES} that the tables can number (16-bit ids)",
                        self.sae.expansion,
                        self.sae.expansion,
                        self.model.d_model
                    )
                })?;
            if d_sae > MAX_MATCHED {
                bail!(
                    "`sae.expansion` = {}: {d_sae} latents per layer; `analyze` matches features one to one through a dense n × n cosine matrix (about {:.1} GiB at this n, time growing as n³), so at most {MAX_MATCHED}: lower `sae.expansion`",
                    self.sae.expansion,
                    matching_bytes(d_sae) as f64 / (1u64 << 30) as f64
                );
            }
            model::sae::SaeConfig {
                d_in: self.model.d_model,
                d_sae,
                k: self.model.topk_k,
            }
            .validate()
            .context("in [sae]")?;
            self.sae
                .training(self.sae.seed)
                .validate()
                .context("in [sae]")?;
        }
        Ok(())
    }

    /// The run directory.
    pub fn run_dir(&self) -> PathBuf {
        self.run.dir.join(&self.run.name)
    }

    /// Model config of one named model (`dense` and its seeds turn every block dense).
    pub fn model_config(&self, name: &str, vocab_size: usize) -> GptConfig {
        let cfg = GptConfig {
            vocab_size,
            ..self.model.clone()
        };
        match trained_model(name) {
            Some((ModelKind::Dense, _)) => cfg.dense(),
            _ => cfg,
        }
    }

    /// The training settings of one named model: `train` with the seed of its number
    /// (`topk-seed2` trains with `train.seed + 1`: another initialisation and data order).
    pub fn train_config(&self, name: &str) -> model::train::TrainingConfig {
        let offset = trained_model(name).map_or(0, |(_, n)| n - 1);
        model::train::TrainingConfig {
            seed: self.train.seed + offset,
            ..self.train.clone()
        }
    }

    /// Pairs (TopK model, dense baseline) whose layers' median entropies `analyze` compares
    /// with bootstrap intervals (`entropy_differences`): every TopK model of `models` against
    /// the dense baseline of the same seed (`topk-seed2` against `dense-seed2`: same data
    /// order), or against `dense` when that seed has none.
    pub fn baseline_pairs(&self) -> Vec<(String, String)> {
        self.models
            .iter()
            .filter_map(|m| match trained_model(m)? {
                (ModelKind::TopK, n) => {
                    let same_seed = match n {
                        1 => "dense".to_owned(),
                        n => format!("dense-seed{n}"),
                    };
                    let baseline = [same_seed, "dense".to_owned()]
                        .into_iter()
                        .find(|b| self.models.contains(b))?;
                    Some((m.clone(), baseline))
                }
                _ => None,
            })
            .collect()
    }

    /// Pairs (model, another seed of it) both in `models`, whose neurons `analyze` matches
    /// at every step they share (`comparison = 'seeds'` in `matching` and `stability`).
    pub fn seed_pairs(&self) -> Vec<(String, String)> {
        self.models
            .iter()
            .filter_map(|m| {
                let (kind, n) = trained_model(m)?;
                let base = kind.name().to_owned();
                (n > 1 && self.models.contains(&base)).then(|| (base, m.clone()))
            })
            .collect()
    }

    /// Entries recorded per token and layer.
    pub fn record_k(&self) -> usize {
        if self.record.k == 0 {
            self.model.topk_k
        } else {
            self.record.k
        }
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

fn read_toml(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    text.parse::<toml::Table>()
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim()))
}

/// A `--set` value: a TOML literal (`200`, `0.5`, `true`, `"x"`, `[1, 2]`) or a bare string.
fn parse_value(text: &str) -> toml::Value {
    format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

fn insert_path(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts
        .pop()
        .filter(|s| !s.is_empty())
        .with_context(|| format!("--set: empty key in `{key}`"))?;
    let mut t = table;
    for part in parts {
        t = t
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| format!("--set {key}: `{part}` is not a section"))?;
    }
    t.insert(last.to_owned(), value);
    Ok(())
}

/// Lays `over` onto `base`, rejecting keys the defaults do not have.
fn merge(base: &mut toml::Table, over: toml::Table, prefix: &str, source: &str) -> Result<()> {
    for (key, value) in over {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o, &path, source)?,
            (Some(toml::Value::Table(_)), v) => {
                bail!("{source}: `{path}` = {v} must be a section ([{path}]), not a value")
            }
            (Some(slot), v) => *slot = v,
            (None, _) => {
                let known: Vec<&String> = base.keys().collect();
                let known: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
                bail!(
                    "{source}: unknown key `{path}`; known keys{}: {}",
                    if prefix.is_empty() {
                        String::new()
                    } else {
                        format!(" in [{prefix}]")
                    },
                    known.join(", ")
                )
            }
        }
    }
    Ok(())
}

/// One-line documentation of each key, for `pipeline config init`.
const KEY_DOCS: &[(&str, &str)] = &[
    ("run.name", "run name: outputs go to <dir>/<name>/"),
    ("run.dir", "parent folder of run directories"),
    (
        "run.preset",
        "tiny (minutes on 2 CPU cores), small, or paper (24 layers, GPU)",
    ),
    (
        "run.backend",
        "flex (pure-Rust CPU) or wgpu (GPU; build with --features wgpu)",
    ),
    (
        "data.corpus",
        "file or folder of .txt (blank-line separated documents), .jsonl or .parquet; .gz allowed",
    ),
    (
        "data.text_field",
        "JSONL field / Parquet column holding the text",
    ),
    (
        "data.lexicon",
        "lemma<TAB>concept TSV (bundled: WordNet 3.0 supersenses)",
    ),
    (
        "data.tokenizer",
        "existing tokenizer.json to use (\"\" = train a byte-level BPE)",
    ),
    (
        "data.val_fraction",
        "share of documents held out (seeded hash of the document id)",
    ),
    (
        "data.eval_tokens",
        "evaluation tokens recorded and analysed",
    ),
    ("data.seed", "seed of the train/validation split"),
    (
        "models",
        "models trained on the same data and seed: topk and its dense baseline",
    ),
    (
        "load.source",
        "folder of checkpoint series trained elsewhere, one sub-folder per model (\"\": train here)",
    ),
    (
        "steer.concepts",
        "concepts to steer towards (empty: those with the most specialised TopK neurons)",
    ),
    (
        "steer.auto_concepts",
        "how many concepts to pick when steer.concepts is empty",
    ),
    (
        "steer.strengths",
        "multiples of each neuron's largest observed activation (0: unsteered)",
    ),
    ("steer.prompts", "neutral prompts to continue, one per line"),
    ("steer.max_new_tokens", "tokens generated per prompt"),
    (
        "steer.checkpoints",
        "last (each model's last checkpoint) or all (steerability over training; time × checkpoints)",
    ),
    ("steer.temperature", "sampling temperature (0: greedy)"),
    (
        "model.vocab_size",
        "tokenizer size (the BPE is trained to this many tokens)",
    ),
    ("model.block_size", "context length in tokens"),
    (
        "model.d_model",
        "residual stream width; TopK neurons are its coordinates",
    ),
    ("model.n_heads", "attention heads (must divide d_model)"),
    ("model.n_layers", "transformer blocks"),
    ("model.d_ff", "MLP hidden width"),
    (
        "model.topk_k",
        "entries kept per token by each TopK block (paper: topk-k)",
    ),
    (
        "model.n_nontopk",
        "final blocks left dense (paper: n-nontopk)",
    ),
    (
        "model.topk_by",
        "\"value\" (largest signed values) or \"abs\" (largest magnitudes)",
    ),
    ("model.topk_relu", "apply ReLU to kept entries"),
    (
        "model.topk_select",
        "where TopK selects: \"auto\", \"host\" or \"device\"",
    ),
    (
        "model.positional",
        "\"learned\", \"rope\" (burn's interleaved pairs) or \"rotary\" (Hugging Face's halves)",
    ),
    (
        "model.norm",
        "\"layer\" (layer norm) or \"rms\" (RMS norm; Llama)",
    ),
    ("model.norm_eps", "the norms' epsilon"),
    (
        "model.mlp",
        "\"gelu\" (exact), \"gelu_tanh\" (GPT-2) or \"swiglu\" (Llama)",
    ),
    ("model.bias", "biases on the attention and MLP projections"),
    (
        "model.n_kv_heads",
        "key/value heads for grouped-query attention (0: one per query head)",
    ),
    (
        "model.rotary_fraction",
        "share of each head's dimensions that \"rotary\" rotates (Pythia: 0.25)",
    ),
    ("model.rope_theta", "base of the rotary frequencies"),
    (
        "model.parallel_residual",
        "x + attn(ln_1(x)) + mlp(ln_2(x)) (GPT-NeoX) instead of sequential",
    ),
    (
        "model.lm_head_bias",
        "a bias on the untied unembedding (this project's models; not Hugging Face's)",
    ),
    (
        "model.tie_embeddings",
        "share token embedding and unembedding",
    ),
    ("train.steps", "optimizer steps"),
    ("train.batch_size", "sequences per micro-batch"),
    ("train.grad_accum", "micro-batches per optimizer step"),
    (
        "train.parallel_shards",
        "shards of each micro-batch trained at once, one per core (results depend on it)",
    ),
    ("train.lr", "peak learning rate"),
    ("train.min_lr_ratio", "cosine floor as a fraction of lr"),
    ("train.warmup_steps", "linear warm-up steps"),
    ("train.weight_decay", "AdamW weight decay"),
    ("train.beta1", "AdamW beta1"),
    ("train.beta2", "AdamW beta2"),
    ("train.grad_clip", "global gradient-norm clip (0 = off)"),
    (
        "train.checkpoint_every",
        "checkpoint period after the log-spaced early checkpoints 0, 1, 2, 4, ...",
    ),
    (
        "train.eval_batches",
        "validation micro-batches per checkpoint",
    ),
    ("train.seed", "seed of initialisation and data order"),
    (
        "train.topk_k_start",
        "anneal k from this value (0 = off, d_model or more = start dense)",
    ),
    ("train.topk_anneal_steps", "steps of the k annealing"),
    (
        "train.precision",
        "\"f32\", \"bf16\" or \"f16\": float type of forward and backward (weights stay f32)",
    ),
    (
        "record.k",
        "entries recorded per token and layer (0 = model.topk_k); dense layers keep their top-k",
    ),
    ("record.batch_size", "sequences per forward pass"),
    (
        "record.parallel_checkpoints",
        "checkpoints recorded at once",
    ),
    (
        "record.rows_per_file",
        "activation rows per part file of a partition (bounds memory; same rows whatever the split)",
    ),
    (
        "record.value_type",
        "\"f32\" (exact) or \"f16\" (a third of the disk at k = 16, about 3 significant digits)",
    ),
    (
        "analyze.weight",
        "\"value\" (weight activations by |value|) or \"count\"",
    ),
    (
        "analyze.none_as_concept",
        "count tokens without a concept as a \"none\" concept",
    ),
    (
        "analyze.min_count",
        "neurons with fewer observations are flagged low_count",
    ),
    ("analyze.top_n", "top activating contexts kept per neuron"),
    (
        "analyze.context_before",
        "tokens of context before an activating token",
    ),
    ("analyze.context_after", "tokens of context after it"),
    (
        "analyze.stable_cosine",
        "cosine between checkpoints at or above which a neuron is stable",
    ),
    (
        "analyze.formation_entropy",
        "normalised semantic entropy below which a neuron has formed",
    ),
    (
        "sae.warm_start",
        "also train <model>-sae-warm: each checkpoint's SAE starts from the previous one's (stable by construction)",
    ),
    (
        "analyze.bootstrap_resamples",
        "bootstrap resamples of the evaluation documents for entropy_intervals and entropy_differences (0: none)",
    ),
    ("analyze.bootstrap_seed", "seed of the bootstrap's draws"),
    (
        "sae.enabled",
        "train post-hoc TopK SAEs on the dense baseline (false: skip the sae stage)",
    ),
    ("sae.model", "model whose residual stream the SAEs encode"),
    (
        "sae.expansion",
        "latents per hidden unit (d_sae = expansion x d_model)",
    ),
    (
        "sae.train_tokens",
        "hidden states collected per checkpoint to train on",
    ),
    (
        "sae.eval_tokens",
        "validation tokens for FVU, dead latents and loss recovered",
    ),
    ("sae.steps", "optimizer steps per SAE"),
    ("sae.batch_size", "hidden states per step"),
    ("sae.lr", "Adam learning rate"),
    ("sae.warmup_steps", "steps of linear learning-rate warm-up"),
    ("sae.aux_k", "dead latents in the AuxK loss (0 = none)"),
    ("sae.aux_coef", "weight of the AuxK loss"),
    (
        "sae.dead_after_tokens",
        "a latent silent this many training tokens is dead",
    ),
    ("sae.seed", "seed of every SAE"),
    (
        "sae.second_seed",
        "second seed for the last checkpoint (run-to-run stability; 0 = none)",
    ),
    (
        "report.neurons_per_layer",
        "concept-specific neurons listed per model and layer",
    ),
    (
        "engine.kind",
        "who runs the SQL of analyze and `pipeline sql`: \"datafusion\" (this process) or \"ballista\" (a cluster; tables must sit on a path every node reads)",
    ),
    (
        "engine.scheduler",
        "Ballista scheduler, df://host:port (`pipeline cluster start` starts one here)",
    ),
    (
        "cluster.executors",
        "executors `pipeline cluster start` runs in its process",
    ),
    (
        "cluster.scheduler_port",
        "port of its scheduler on 127.0.0.1 (executors take free ports)",
    ),
    (
        "cluster.task_slots",
        "tasks each local executor runs at once",
    ),
];

/// The config as TOML with a comment above every key.
pub fn commented_toml(cfg: &PipelineConfig) -> String {
    let mut out = String::from(
        "# pipeline.toml: every key with its default. Delete what you do not change.\n",
    );
    let mut section = String::new();
    for line in cfg.to_toml().lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.to_owned();
            out.push('\n');
        } else if let Some((key, _)) = trimmed.split_once(" = ") {
            let full = if section.is_empty() {
                key.to_owned()
            } else {
                format!("{section}.{key}")
            };
            if let Some((_, doc)) = KEY_DOCS.iter().find(|(k, _)| *k == full) {
                out.push_str(&format!("# {doc}\n"));
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod seed_tests {
    use super::*;

    #[test]
    fn seed_names_say_kind_and_seed_and_pair_with_their_base() {
        assert_eq!(trained_model("topk"), Some((ModelKind::TopK, 1)));
        assert_eq!(trained_model("dense-seed3"), Some((ModelKind::Dense, 3)));
        for bad in [
            "topk-seed1",
            "topk-seed02",
            "topk-seed+2",
            "topk-2",
            "topkx",
            "sae",
        ] {
            assert_eq!(trained_model(bad), None, "{bad}");
        }
        let mut cfg = PipelineConfig::defaults(Preset::Tiny);
        cfg.models = ["topk", "topk-seed2", "dense-seed2"]
            .map(String::from)
            .to_vec();
        cfg.sae.enabled = false;
        cfg.validate().unwrap();
        // dense-seed2 has no `dense` to be compared with.
        assert_eq!(cfg.seed_pairs(), vec![("topk".into(), "topk-seed2".into())]);
        // Each TopK seed against the dense baseline of its seed; `topk` has none here.
        assert_eq!(
            cfg.baseline_pairs(),
            vec![("topk-seed2".into(), "dense-seed2".into())]
        );
        let mut all = cfg.clone();
        all.models = ["topk", "topk-seed2", "topk-seed3", "dense", "dense-seed2"]
            .map(String::from)
            .to_vec();
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            all.baseline_pairs(),
            vec![
                pair("topk", "dense"),
                pair("topk-seed2", "dense-seed2"),
                pair("topk-seed3", "dense")
            ]
        );
        assert_eq!(cfg.train_config("topk-seed2").seed, cfg.train.seed + 1);
        assert_eq!(cfg.train_config("topk").seed, cfg.train.seed);
        assert_eq!(
            cfg.model_config("dense-seed2", 300).n_nontopk,
            cfg.model.n_layers
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_key_has_its_documentation_line_in_config_init() {
        let cfg = PipelineConfig::defaults(Preset::Tiny);
        let mut section = String::new();
        let mut undocumented = Vec::new();
        for line in cfg.to_toml().lines() {
            let trimmed = line.trim();
            if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                section = name.to_owned();
            } else if let Some((key, _)) = trimmed.split_once(" = ") {
                let full = match section.as_str() {
                    "" => key.to_owned(),
                    s => format!("{s}.{key}"),
                };
                if !KEY_DOCS.iter().any(|(k, _)| *k == full) {
                    undocumented.push(full);
                }
            }
        }
        assert!(
            undocumented.is_empty(),
            "no documentation line: {undocumented:?}"
        );
        // And every documented key exists.
        let text = commented_toml(&cfg);
        assert_eq!(
            text.lines().filter(|l| l.starts_with("# ")).count(),
            KEY_DOCS.len() + 1,
            "{text}"
        );
    }

    #[test]
    fn defaults_load_and_validate() {
        let cfg = PipelineConfig::load(None, &[]).unwrap();
        assert_eq!(cfg, PipelineConfig::defaults(Preset::Tiny));
    }

    #[test]
    fn set_overrides_values_and_preset() {
        let cfg = PipelineConfig::load(
            None,
            &sets(&["train.steps=7", "run.preset=small", "run.name=x"]),
        )
        .unwrap();
        assert_eq!(cfg.train.steps, 7);
        assert_eq!(cfg.model.d_model, GptConfig::small(1).d_model);
        assert_eq!(cfg.run.name, "x");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (vec!["model.topk_k=999"], "topk_k"),
            (vec!["model.n_layers=0"], "n_layers"),
            (vec!["model.n_nontopk=9"], "n_nontopk"),
            (vec!["train.stepz=3"], "train.stepz"),
            (vec!["train.steps=\"many\""], "steps"),
            (vec!["train.parallel_shards=3"], "parallel_shards"),
            (vec!["train.parallel_shards=0"], "parallel_shards"),
            (vec!["run.preset=huge"], "run.preset"),
            (vec!["data.val_fraction=1.5"], "data.val_fraction"),
            (vec!["models=[\"topk\", \"sae\"]"], "models"),
        ];
        for (set, key) in cases {
            let err = format!("{:#}", PipelineConfig::load(None, &sets(&set)).unwrap_err());
            assert!(err.contains(key), "{set:?}: {err}");
        }
    }

    #[test]
    fn file_values_are_laid_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[train]\nsteps = 11\n[model]\ntopk_k = 8\n").unwrap();
        let cfg = PipelineConfig::load(Some(&path), &sets(&["train.steps=12"])).unwrap();
        assert_eq!(
            (cfg.train.steps, cfg.model.topk_k, cfg.model.d_model),
            (12, 8, 128)
        );
    }
}
