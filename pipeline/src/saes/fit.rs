//! Fitting a checkpoint's SAEs: each layer's SAE is kept when its file's fingerprint (config
//! section, checkpoint hash, seed) is current, and trained on the checkpoint's hidden states
//! otherwise.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use model::checkpoint::Checkpoint;
use model::sae::{Sae, SaeConfig, load_sae, save_sae, train_sae_from};
use model::{Device, Gpt, GptConfig};
use queries::layout::RunLayout;
use serde::Serialize;

use super::{Series, collect_hidden};
use crate::config::SaeSection;
use crate::manifest::hash_value;
use crate::token_stream::TokenStream;

/// What fitting the SAEs of one run shares.
pub struct SaeFitter<'a, S: Serialize> {
    pub sae: &'a SaeSection,
    pub layout: &'a RunLayout,
    pub lm: &'a GptConfig,
    pub layers: &'a [usize],
    pub shape: SaeConfig,
    /// The stage's config section: with the checkpoint and seed, it makes an SAE's fingerprint.
    pub section: &'a S,
    /// Training tokens the hidden states are collected from.
    pub train: TokenStream,
    pub device: Device,
}

/// The SAEs of one checkpoint, by layer, and the training figures of each.
pub struct CheckpointSaes {
    pub saes: Vec<(usize, Sae)>,
    /// Each layer's fingerprint (a warm-started SAE's includes its predecessor's).
    pub fingerprints: BTreeMap<usize, String>,
    /// (final training FVU, tokens/s when trained now) per layer.
    pub train_stats: BTreeMap<usize, (f64, Option<f64>)>,
    pub trained: usize,
    pub train_seconds: f64,
}

impl<S: Serialize> SaeFitter<'_, S> {
    /// Keeps the SAEs of `series` at `cp` whose fingerprint is current and trains the others;
    /// a warm series starts each from `previous`, its SAEs at the checkpoint before.
    pub fn fit(
        &self,
        series: &Series,
        cp: &Checkpoint,
        model: &Gpt,
        previous: Option<&CheckpointSaes>,
    ) -> Result<CheckpointSaes> {
        let (sae, step) = (self.sae, cp.meta.step);
        let start = |layer: usize| -> Option<(&Sae, &String)> {
            let prev = previous.filter(|_| series.warm)?;
            let sae = prev
                .saes
                .iter()
                .find(|(l, _)| *l == layer)
                .map(|(_, s)| s)?;
            Some((sae, prev.fingerprints.get(&layer)?))
        };
        // A warm SAE depends on its predecessor too: retrained when that one changes.
        let fingerprint = |layer: usize| match start(layer) {
            Some((_, prev)) => hash_value(&(self.section, &cp.meta.sha256, series.seed, prev)),
            None => hash_value(&(self.section, &cp.meta.sha256, series.seed)),
        };
        let path = |layer: usize| self.layout.sae_file(&series.name, step, layer);
        let mut out = CheckpointSaes {
            saes: Vec::new(),
            fingerprints: self.layers.iter().map(|&l| (l, fingerprint(l))).collect(),
            train_stats: BTreeMap::new(),
            trained: 0,
            train_seconds: 0.0,
        };
        for &layer in self.layers {
            let current = load_sae(&path(layer), &self.device)
                .ok()
                .filter(|(_, meta)| meta.get("fingerprint") == Some(&out.fingerprints[&layer]));
            if let Some((kept, meta)) = current {
                // Training figures of kept SAEs come from their files, so the quality table is
                // the same whether an SAE was trained now or by an earlier run (the speed it
                // was trained at is a timing, not a result: not kept).
                if let Some(fvu) = meta.get("train_fvu").and_then(|v| v.parse::<f64>().ok()) {
                    out.train_stats.insert(layer, (fvu, None));
                }
                out.saes.push((layer, kept));
            }
        }
        let missing: Vec<usize> = self
            .layers
            .iter()
            .copied()
            .filter(|l| !out.saes.iter().any(|(x, _)| x == l))
            .collect();
        if missing.is_empty() {
            return Ok(out);
        }
        let hidden = collect_hidden(
            model,
            self.lm,
            self.train.ids(),
            &missing,
            sae.train_tokens,
            sae.seed,
            &self.device,
        )?;
        for (&layer, buf) in missing.iter().zip(hidden) {
            let started = Instant::now();
            let trained = train_sae_from(
                &self.shape,
                &sae.training(series.seed),
                &buf,
                start(layer).map(|(s, _)| s),
                &self.device,
                &mut |_| {},
            )
            .with_context(|| format!("SAE for {} step {step} layer {layer}", sae.model))?;
            out.train_seconds += started.elapsed().as_secs_f64();
            let tail = &trained.fvu[trained.fvu.len().saturating_sub(10)..];
            let train_fvu = tail.iter().sum::<f32>() as f64 / tail.len() as f64;
            out.train_stats
                .insert(layer, (train_fvu, Some(trained.tokens_per_second)));
            save_sae(
                &trained.sae,
                &path(layer),
                &[
                    ("fingerprint", out.fingerprints[&layer].clone()),
                    ("train_fvu", train_fvu.to_string()),
                    ("model", sae.model.clone()),
                    ("checkpoint_sha256", cp.meta.sha256.clone()),
                    ("step", step.to_string()),
                    ("layer", layer.to_string()),
                    ("seed", series.seed.to_string()),
                    ("warm_start", start(layer).is_some().to_string()),
                ],
            )?;
            out.saes.push((layer, trained.sae));
            out.trained += 1;
        }
        out.saes.sort_by_key(|(l, _)| *l);
        Ok(out)
    }
}
