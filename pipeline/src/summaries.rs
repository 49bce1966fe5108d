//! What each stage records in the manifest's `summary`, as types: the stages write them and
//! the report reads them back (never as untyped JSON).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Figures of a prepared corpus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrepareSummary {
    pub documents: usize,
    pub train_documents: usize,
    pub val_documents: usize,
    pub train_tokens: usize,
    pub val_tokens: usize,
    pub eval_tokens: usize,
    pub vocab_size: usize,
    pub end_of_text: u32,
    /// Share of evaluation word tokens (alphabetic words) whose word has a concept.
    pub concept_coverage: f64,
    /// Lemmas in the lexicon.
    pub lexicon_lemmas: usize,
    pub concepts: Vec<String>,
}

/// One model's training (or import) outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSummary {
    pub checkpoints: usize,
    /// Validation loss at the last checkpoint.
    pub val_loss: Option<f32>,
    pub val_ppl: Option<f32>,
    /// Training speed of this call; none when it trained nothing (the model was complete, or
    /// was imported).
    pub tokens_per_second: Option<f64>,
    pub params: usize,
    /// The checkpoints came from `load.source`, not from `train`.
    #[serde(default)]
    pub imported: bool,
    /// Imported checkpoints with identical weights ("step a = step b").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identical_steps: Vec<String>,
    /// SHA-256 of each imported checkpoint's weights, by step (trained models: in meta.json).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checkpoint_sha256: BTreeMap<usize, String>,
}

/// The `train` stage's summary: one entry per model.
pub type TrainSummary = BTreeMap<String, ModelSummary>;
