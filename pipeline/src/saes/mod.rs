//! The post-hoc SAE baseline as the stages use it: which series of SAEs the config asks for and
//! at which layers, loading a checkpoint's SAEs, fitting them (`fit`: trained, or kept when
//! current) on the hidden states they read, and their quality (`quality`: FVU, L0, dead
//! latents, loss recovered).

mod fit;
mod quality;

pub use fit::{CheckpointSaes, SaeFitter};
pub use quality::{Quality, collect_hidden, evaluate};

use anyhow::{Context, Result};
use model::checkpoint::Checkpoint;
use model::sae::{Sae, load_sae};
use model::{Device, GptConfig};
use queries::layout::RunLayout;

use crate::config::SaeSection;
use crate::manifest::hash_value;

/// Layers the SAEs read: the TopK model's TopK-layer positions, so every SAE latent has a
/// TopK-LM neuron layer to be compared with.
pub fn sae_layers(topk_model: &GptConfig) -> Vec<usize> {
    (0..topk_model.n_layers)
        .filter(|&l| topk_model.is_topk_layer(l))
        .collect()
}

/// One SAE series: the checkpoints it covers and its seed.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub seed: u64,
    pub checkpoints: Vec<Checkpoint>,
    /// Each checkpoint's SAE starts from the previous checkpoint's (the first from its seed).
    pub warm: bool,
}

/// The series the config asks for: every checkpoint with `sae.seed`, the last one again with
/// `sae.second_seed`, and with `sae.warm_start` every checkpoint warm-started.
pub fn series(sae: &SaeSection, checkpoints: &[Checkpoint]) -> Vec<Series> {
    let mut out = vec![Series {
        name: sae.series_name(false),
        seed: sae.seed,
        checkpoints: checkpoints.to_vec(),
        warm: false,
    }];
    if sae.second_seed != 0 {
        out.push(Series {
            name: sae.series_name(true),
            seed: sae.second_seed,
            checkpoints: checkpoints.last().cloned().into_iter().collect(),
            warm: false,
        });
    }
    if sae.warm_start {
        out.push(Series {
            name: sae.warm_series_name(),
            seed: sae.seed,
            checkpoints: checkpoints.to_vec(),
            warm: true,
        });
    }
    out
}

/// The SAEs of one series and checkpoint, by layer.
#[derive(Debug, Clone)]
pub struct SaeSet {
    pub saes: Vec<(usize, Sae)>,
    /// Hash of the SAE files' own fingerprints: a partition recorded from other SAEs is stale.
    pub fingerprint: String,
}

/// The SAEs of one series and checkpoint (at `layers`) from disk.
pub fn load_saes(
    layout: &RunLayout,
    layers: &[usize],
    series: &str,
    step: usize,
    device: &Device,
) -> Result<SaeSet> {
    let mut saes = Vec::new();
    let mut fingerprints = Vec::new();
    for &layer in layers {
        let path = layout.sae_file(series, step, layer);
        let (sae, meta) = load_sae(&path, device)
            .with_context(|| format!("run `pipeline sae` to (re)train {}", path.display()))?;
        fingerprints.push((layer, meta.get("fingerprint").cloned().unwrap_or_default()));
        saes.push((layer, sae));
    }
    Ok(SaeSet {
        saes,
        fingerprint: hash_value(&fingerprints),
    })
}
