//! Every path under a run directory (`runs/<name>/`), named once: the stages write them, the
//! session registers the tables among them, the report and the tests read them.

use std::path::{Path, PathBuf};

/// The files and folders of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLayout {
    root: PathBuf,
}

impl RunLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The run directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Config, versions, seeds, input hashes and status of every stage.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.json")
    }

    /// Held by the process running a stage.
    pub fn lock(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// The interactive SQL prompt's history.
    pub fn sql_history(&self) -> PathBuf {
        self.root.join(".sql_history")
    }

    /// The folder a stage writes (named as the stage).
    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.root.join(stage)
    }

    // prepare/

    pub fn tokenizer(&self) -> PathBuf {
        self.root.join("prepare/tokenizer.json")
    }

    /// Training token stream (little-endian u32).
    pub fn train_tokens(&self) -> PathBuf {
        self.root.join("prepare/train.bin")
    }

    /// Validation token stream (little-endian u32).
    pub fn val_tokens(&self) -> PathBuf {
        self.root.join("prepare/val.bin")
    }

    pub fn prepare_summary(&self) -> PathBuf {
        self.root.join("prepare/summary.json")
    }

    /// The `tokens` table: evaluation tokens with their words and concepts.
    pub fn tokens(&self) -> PathBuf {
        self.root.join("prepare/tokens.parquet")
    }

    // train/

    /// `config.json`, `checkpoints/step-NNNNNNN/` and `state/` of one model.
    pub fn model_dir(&self, model: &str) -> PathBuf {
        self.root.join("train").join(model)
    }

    /// The `metrics` table.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("train/metrics.parquet")
    }

    // sae/

    /// One SAE: `sae/<series>/step-NNNNNNN/layer-L.safetensors` (the step folder named as the
    /// checkpoints' are).
    pub fn sae_file(&self, series: &str, step: usize, layer: usize) -> PathBuf {
        self.root
            .join("sae")
            .join(series)
            .join(format!("step-{step:07}"))
            .join(format!("layer-{layer}.safetensors"))
    }

    /// The `sae_quality` table.
    pub fn sae_quality(&self) -> PathBuf {
        self.root.join("sae/quality.parquet")
    }

    // record/

    /// `activations/` and `neurons/`, Hive-partitioned by model, step and layer.
    pub fn record_dir(&self) -> PathBuf {
        self.root.join("record")
    }

    pub fn activations_dir(&self) -> PathBuf {
        self.root.join("record/activations")
    }

    pub fn neurons_dir(&self) -> PathBuf {
        self.root.join("record/neurons")
    }

    // analyze/

    /// A derived table: `analyze/<name>.parquet`.
    pub fn derived(&self, name: &str) -> PathBuf {
        self.root.join("analyze").join(format!("{name}.parquet"))
    }

    // steer/

    /// The `steering` table.
    pub fn steering(&self) -> PathBuf {
        self.root.join("steer/steering.parquet")
    }

    // report/

    pub fn report_index(&self) -> PathBuf {
        self.root.join("report/index.html")
    }

    pub fn figures_dir(&self) -> PathBuf {
        self.root.join("report/figures")
    }

    /// The tables a session registers: (name, file or folder, Hive-partitioned by
    /// model/step/layer). Stored values may be f16: the `activations` view over
    /// `activations_stored` casts them to FLOAT.
    pub fn tables(&self) -> Vec<(&'static str, PathBuf, bool)> {
        vec![
            ("tokens", self.tokens(), false),
            ("metrics", self.metrics(), false),
            ("sae_quality", self.sae_quality(), false),
            ("activations_stored", self.activations_dir(), true),
            ("neurons", self.neurons_dir(), true),
            ("steering", self.steering(), false),
        ]
    }
}
