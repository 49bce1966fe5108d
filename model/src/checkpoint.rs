//! Checkpoints on disk: a folder per step with the weights (safetensors, readable from
//! Python) and `meta.json`; `config.json` once per model; and `state/` with what resuming
//! needs (burnpack weights with parameter ids, and the optimizer state) for the latest step.
//!
//! ```text
//! <model>/config.json
//! <model>/checkpoints/step-000100/{model.safetensors, meta.json}
//! <model>/state/{model.bpk, optim.bpk, state.json}
//! ```
//! Every folder is written under a temporary name and renamed when complete.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::durable;
use crate::train::TrainingConfig;
use crate::{Error, Gpt, GptConfig, Result};

/// The shape and training settings of a model, saved once next to its checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// Model name (`topk`, `dense`, ...).
    pub name: String,
    pub model: GptConfig,
    /// `None` for models loaded from elsewhere.
    pub training: Option<TrainingConfig>,
}

/// What is known about one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub step: usize,
    pub tokens_seen: u64,
    /// Mean training loss (nats) over the steps since the previous checkpoint.
    pub train_loss: Option<f32>,
    /// Validation loss (nats).
    pub val_loss: Option<f32>,
    pub lr: f64,
    /// k of the TopK blocks at this step.
    pub topk_k: usize,
    /// Per block: share of neurons never among a token's top-k on the validation batches.
    pub dead_fraction: Vec<f32>,
    /// Wall-clock seconds of training up to this step.
    pub seconds: f64,
    /// SHA-256 of `model.safetensors`.
    pub sha256: String,
}

/// One checkpoint folder.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub meta: CheckpointMeta,
}

impl Checkpoint {
    /// Path of the weights.
    pub fn weights(&self) -> PathBuf {
        self.dir.join(WEIGHTS)
    }
}

const WEIGHTS: &str = "model.safetensors";
const META: &str = "meta.json";
const CARD: &str = "config.json";

/// Folder name of a step, zero-padded so folders sort by step.
pub fn step_dir_name(step: usize) -> String {
    format!("step-{step:07}")
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("checkpoint metadata serialises");
    let tmp = path.with_extension("json.tmp");
    durable::write_synced(&tmp, text.as_bytes())?;
    durable::rename_synced(&tmp, path)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })
}

/// Writes `config.json` for a model, or checks that an existing one matches (resume must not
/// mix shapes).
pub fn write_or_check_card(dir: &Path, card: &ModelCard) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let path = dir.join(CARD);
    if path.exists() {
        let old: ModelCard = read_json(&path)?;
        if old != *card {
            return Err(Error::checkpoint(
                &path,
                "was written with a different model or training config; use --force to retrain \
                 from scratch, or restore the config it was trained with",
            ));
        }
        return Ok(());
    }
    write_json(&path, card)
}

/// Reads a model's `config.json`.
pub fn read_card(dir: &Path) -> Result<ModelCard> {
    let card: ModelCard = read_json(&dir.join(CARD))?;
    card.model.validate()?;
    Ok(card)
}

/// Saves weights and metadata of one step atomically.
pub fn save_checkpoint(dir: &Path, model: &Gpt, mut meta: CheckpointMeta) -> Result<Checkpoint> {
    let root = dir.join("checkpoints");
    let final_dir = root.join(step_dir_name(meta.step));
    let tmp = root.join(format!(".{}.tmp", step_dir_name(meta.step)));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
    let weights = tmp.join(WEIGHTS);
    let bytes = safetensors_bytes(model).map_err(|e| Error::checkpoint(&weights, e))?;
    meta.sha256 = hex::encode(Sha256::digest(&bytes));
    let written = durable::write_synced(&weights, &bytes)
        .and_then(|()| write_json(&tmp.join(META), &meta))
        .and_then(|()| {
            let _ = std::fs::remove_dir_all(&final_dir);
            durable::rename_synced(&tmp, &final_dir)
        });
    if written.is_err() {
        // A full disk leaves no half-written folder behind.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written?;
    Ok(Checkpoint {
        dir: final_dir,
        meta,
    })
}

/// The model's parameters as a safetensors file: tensors named by their module path
/// (`blocks.0.attn.c_attn.weight`, …), f32, and no varying metadata, so equal weights give
/// equal bytes (and equal hashes) on every run.
pub fn safetensors_bytes(model: &Gpt) -> std::result::Result<Vec<u8>, String> {
    let tensors = model.collect(None, None, false);
    let mut named = Vec::with_capacity(tensors.len());
    for t in &tensors {
        let data = burn::store::bridge::to_data(t)
            .map_err(|e| format!("{}: {e}", t.name))?
            .convert::<f32>();
        let shape: Vec<usize> = data.shape().iter().copied().collect();
        named.push((t.name.clone(), shape, data.as_bytes().to_vec()));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let views = named
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let metadata = std::collections::HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}

/// Every complete checkpoint of a model, by step.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<Checkpoint>> {
    let root = dir.join("checkpoints");
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Ok(out);
    };
    for entry in entries {
        let path = entry.map_err(Error::io(&root))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with("step-") || !path.join(META).exists() {
            continue; // temporary or foreign folder
        }
        let meta: CheckpointMeta = read_json(&path.join(META))?;
        out.push(Checkpoint { dir: path, meta });
    }
    out.sort_by_key(|c| c.meta.step);
    Ok(out)
}

/// Loads a checkpoint's weights into a model of `config`'s shape, naming the file and the
/// tensors when they do not fit.
pub fn load_weights(config: &GptConfig, checkpoint: &Path, device: &Device) -> Result<Gpt> {
    let path = if checkpoint.is_dir() {
        checkpoint.join(WEIGHTS)
    } else {
        checkpoint.to_owned()
    };
    if !path.exists() {
        return Err(Error::checkpoint(&path, "file not found"));
    }
    let mut model = config.init(device);
    let mut store = SafetensorsStore::from_file(&path)
        .validate(true)
        .allow_partial(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| Error::checkpoint(&path, format!("cannot be read ({e}); is it truncated?")))?;
    if !result.missing.is_empty() {
        let names: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        return Err(Error::checkpoint(
            &path,
            format!("missing tensors: {}", names.join(", ")),
        ));
    }
    if !result.errors.is_empty() {
        let errs: Vec<String> = result.errors.iter().map(|e| format!("{e:?}")).collect();
        return Err(Error::checkpoint(
            &path,
            format!("tensors do not fit the config: {}", errs.join("; ")),
        ));
    }
    Ok(model)
}

/// The resume point of an interrupted run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    pub step: usize,
    pub tokens_seen: u64,
    pub seconds: f64,
}

/// Saves what resuming needs, replacing the previous state atomically.
pub fn save_state(
    dir: &Path,
    model: &Gpt,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<()> {
    let final_dir = dir.join("state");
    let tmp = dir.join(".state.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
    let fail =
        |path: PathBuf| move |e: burn::store::RecordError| Error::checkpoint(path, e.to_string());
    let written = model
        .clone()
        .save_file(tmp.join("model.bpk"))
        .map_err(fail(tmp.join("model.bpk")))
        .and_then(|()| {
            optim
                .save(tmp.join("optim.bpk"))
                .map_err(fail(tmp.join("optim.bpk")))
        })
        .and_then(|()| write_json(&tmp.join("state.json"), state))
        .and_then(|()| durable::sync_folder(&tmp));
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written?;
    // Two renames: a kill between them leaves only `.state.old`, which `load_state` takes.
    let old = dir.join(STATE_OLD);
    let _ = std::fs::remove_dir_all(&old);
    if final_dir.exists() {
        durable::rename_synced(&final_dir, &old)?;
    }
    durable::rename_synced(&tmp, &final_dir)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Where the previous resume point waits while the new one is renamed into place.
const STATE_OLD: &str = ".state.old";

/// Loads the resume point, if any, into `model` and `optim`.
pub fn load_state(
    dir: &Path,
    model: Gpt,
    optim: ModuleOptimizer,
) -> Result<(Gpt, ModuleOptimizer, Option<TrainState>)> {
    let state_dir = dir.join("state");
    let state_json = state_dir.join("state.json");
    let old = dir.join(STATE_OLD);
    if !state_dir.exists() && old.join("state.json").exists() {
        // Killed between the two renames of `save_state`: the previous state is complete.
        durable::rename_synced(&old, &state_dir)?;
    }
    if !state_json.exists() {
        return Ok((model, optim, None));
    }
    let state: TrainState = read_json(&state_json)?;
    let weights = state_dir.join("model.bpk");
    let model = model
        .try_load_file(&weights)
        .map_err(|e| Error::checkpoint(&weights, e.to_string()))?;
    let optim_path = state_dir.join("optim.bpk");
    let optim = optim
        .load(&optim_path)
        .map_err(|e| Error::checkpoint(&optim_path, e.to_string()))?;
    Ok((model, optim, Some(state)))
}
