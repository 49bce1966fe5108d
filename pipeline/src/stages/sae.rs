//! `sae`: the post-hoc baseline the paper argues against. For each checkpoint of the dense
//! baseline, a TopK SAE per TopK-layer position of the TopK model (same k), trained on the dense
//! model's residual stream; a second seed on the last checkpoint. Writes
//! `sae/<series>/step-NNNNNNN/layer-L.safetensors` and `sae/quality.parquet`.
//!
//! Resumable: an SAE file whose metadata names this checkpoint's hash and this config is kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use arrow::array::{Float32Array, Float64Array, RecordBatch, StringArray, UInt32Array};
use model::checkpoint::{Checkpoint, ModelCard, list_checkpoints, load_weights, read_card};
use model::sae::{Sae, SaeConfig, load_sae, save_sae, train_sae};
use model::{Device, Gpt, GptConfig};
use serde::Serialize;
use serde_json::json;

use super::train::TokenStream;
use super::{Ctx, Outcome};
use crate::manifest::hash_value;
use crate::saes::{Quality, Series, collect_hidden, evaluate, sae_layers, series};

/// One row of `sae/quality.parquet`.
#[derive(Debug, Clone, serde::Serialize)]
struct QualityRow {
    model: String,
    step: usize,
    layer: usize,
    seed: u64,
    quality: Quality,
    train_fvu: Option<f64>,
    tokens_per_second: Option<f64>,
}

/// Runs the stage.
pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let sae = &ctx.cfg.sae;
    if !sae.enabled {
        // SAEs of an earlier config must not stay readable beside a config without them.
        ctx.drop_stage(super::Stage::Sae)?;
        ctx.ui.say("      sae: skipped (sae.enabled = false)");
        return Ok(Outcome::Skipped);
    }
    let inputs = [
        ctx.layout.train_tokens(),
        ctx.layout.val_tokens(),
        ctx.layout.model_dir(&sae.model),
    ];
    let layers = sae_layers(&ctx.cfg.model);
    let section = (sae, &layers, ctx.cfg.model.topk_k);
    ctx.run_stage(
        super::Stage::Sae,
        &section,
        &inputs,
        || check(ctx),
        |(card, cps)| train_all(ctx, &layers, &section, &card, &cps),
    )
}

/// The base model's card and checkpoints, checked against the TopK model's shape.
fn check(ctx: &Ctx) -> Result<(ModelCard, Vec<Checkpoint>)> {
    let dir = ctx.layout.model_dir(&ctx.cfg.sae.model);
    let card = read_card(&dir)?;
    let cps = list_checkpoints(&dir)?;
    anyhow::ensure!(
        !cps.is_empty(),
        "{} has no checkpoints; run `pipeline train`",
        dir.display()
    );
    anyhow::ensure!(
        card.model.d_model == ctx.cfg.model.d_model,
        "{}: d_model {} differs from model.d_model = {} of the TopK model the SAEs are compared with",
        dir.display(),
        card.model.d_model,
        ctx.cfg.model.d_model
    );
    Ok((card, cps))
}

/// What training the SAEs of one run shares.
struct Trainer<'a, S: Serialize> {
    ctx: &'a Ctx,
    lm: &'a GptConfig,
    layers: &'a [usize],
    shape: SaeConfig,
    /// The stage's config section: with the checkpoint and seed, it makes an SAE's fingerprint.
    section: &'a S,
    train: TokenStream,
    device: Device,
}

/// The SAEs of one checkpoint, by layer, and the training figures of each.
struct CheckpointSaes {
    saes: Vec<(usize, Sae)>,
    /// (final training FVU, tokens/s when trained now) per layer.
    train_stats: BTreeMap<usize, (f64, Option<f64>)>,
    trained: usize,
    train_seconds: f64,
}

impl<S: Serialize> Trainer<'_, S> {
    /// Keeps the SAEs of `series` at `cp` whose fingerprint is current and trains the others.
    fn fit(&self, series: &Series, cp: &Checkpoint, model: &Gpt) -> Result<CheckpointSaes> {
        let (sae, step) = (&self.ctx.cfg.sae, cp.meta.step);
        let fingerprint = hash_value(&(self.section, &cp.meta.sha256, series.seed));
        let path = |layer: usize| self.ctx.layout.sae_file(&series.name, step, layer);
        let mut out = CheckpointSaes {
            saes: Vec::new(),
            train_stats: BTreeMap::new(),
            trained: 0,
            train_seconds: 0.0,
        };
        for &layer in self.layers {
            let current = load_sae(&path(layer), &self.device)
                .ok()
                .filter(|(_, meta)| meta.get("fingerprint") == Some(&fingerprint));
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
            let trained = train_sae(
                &self.shape,
                &sae.training(series.seed),
                &buf,
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
                    ("fingerprint", fingerprint.clone()),
                    ("train_fvu", train_fvu.to_string()),
                    ("model", sae.model.clone()),
                    ("checkpoint_sha256", cp.meta.sha256.clone()),
                    ("step", step.to_string()),
                    ("layer", layer.to_string()),
                    ("seed", series.seed.to_string()),
                ],
            )?;
            out.saes.push((layer, trained.sae));
            out.trained += 1;
        }
        out.saes.sort_by_key(|(l, _)| *l);
        Ok(out)
    }
}

fn train_all<S: Serialize>(
    ctx: &Ctx,
    layers: &[usize],
    section: &S,
    card: &ModelCard,
    cps: &[Checkpoint],
) -> Result<serde_json::Value> {
    if ctx.force {
        ctx.fresh_output_dir(super::Stage::Sae)?;
    }
    let sae = &ctx.cfg.sae;
    let lm = &card.model;
    let trainer = Trainer {
        ctx,
        lm,
        layers,
        shape: SaeConfig {
            d_in: lm.d_model,
            d_sae: sae.expansion * lm.d_model,
            k: ctx.cfg.model.topk_k,
        },
        section,
        train: TokenStream::open(&ctx.layout.train_tokens())?,
        device: model::device(&ctx.cfg.run.backend)?,
    };
    let val = TokenStream::open(&ctx.layout.val_tokens())?;
    let all = series(sae, cps);
    let total: usize = all.iter().map(|s| s.checkpoints.len() * layers.len()).sum();
    let bar = ctx.ui.bar(total as u64, "sae", "SAEs");
    let started = Instant::now();
    let (mut trained, mut train_seconds) = (0usize, 0.0f64);
    let mut rows = Vec::new();
    for s in &all {
        for cp in &s.checkpoints {
            bar.set_message(format!("{} step {}", s.name, cp.meta.step));
            let model = load_weights(lm, &cp.dir, &trainer.device)?;
            let fitted = trainer.fit(s, cp, &model)?;
            trained += fitted.trained;
            train_seconds += fitted.train_seconds;
            bar.inc(layers.len() as u64);
            let quality = evaluate(
                &model,
                lm,
                &fitted.saes,
                val.ids(),
                sae.eval_tokens,
                &trainer.device,
            )?;
            for ((layer, _), q) in fitted.saes.iter().zip(quality) {
                let stats = fitted.train_stats.get(layer);
                rows.push(QualityRow {
                    model: s.name.clone(),
                    step: cp.meta.step,
                    layer: *layer,
                    seed: s.seed,
                    quality: q,
                    train_fvu: stats.map(|s| s.0),
                    tokens_per_second: stats.and_then(|s| s.1),
                });
            }
        }
    }
    bar.finish_and_clear();
    write_quality(&ctx.layout.sae_quality(), &rows, &ctx.run_id())?;
    // SAEs of checkpoints, layers or seeds this config no longer has.
    let root = ctx.layout.stage_dir("sae");
    let mut expected = vec![PathBuf::from("quality.parquet")];
    for s in &all {
        for cp in &s.checkpoints {
            for &layer in layers {
                let path = ctx.layout.sae_file(&s.name, cp.meta.step, layer);
                expected.push(
                    path.strip_prefix(&root)
                        .expect("SAEs live in sae/")
                        .to_owned(),
                );
            }
        }
    }
    queries::durable::retain_only(&root, &expected)?;
    let kept = total - trained;
    let last = rows.iter().rfind(|r| r.model == sae.series_name(false));
    let tokens_per_second = (train_seconds > 0.0)
        .then(|| (trained * sae.steps * sae.batch_size) as f64 / train_seconds);
    let shape = &trainer.shape;
    ctx.ui.say(&format!(
        "      sae: {trained} SAEs trained ({kept} kept), d_sae {}, k {}{}{}",
        shape.d_sae,
        shape.k,
        tokens_per_second.map_or(String::new(), |t| format!(", {t:.0} tokens/s")),
        last.map_or(String::new(), |r| format!(
            "; last layer {}: FVU {:.3}, loss recovered {:.1}%",
            r.layer,
            r.quality.fvu,
            100.0 * r.quality.loss_recovered()
        ))
    ));
    Ok(json!({
        "trained": trained,
        "kept": kept,
        "d_sae": shape.d_sae,
        "k": shape.k,
        "train_seconds": train_seconds,
        "seconds": started.elapsed().as_secs_f64(),
        "tokens_per_second": tokens_per_second,
    }))
}

fn write_quality(path: &std::path::Path, rows: &[QualityRow], run_id: &str) -> Result<()> {
    let f64s = |f: &dyn Fn(&QualityRow) -> f64| {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(f)))
    };
    let batch = RecordBatch::try_new(
        queries::schema::sae_quality_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.model.as_str()),
            )),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.step as u32),
            )),
            Arc::new(arrow::array::UInt16Array::from_iter_values(
                rows.iter().map(|r| r.layer as u16),
            )),
            Arc::new(arrow::array::UInt64Array::from_iter_values(
                rows.iter().map(|r| r.seed),
            )),
            f64s(&|r| r.quality.fvu),
            f64s(&|r| r.quality.l0),
            f64s(&|r| r.quality.dead_fraction),
            f64s(&|r| r.quality.ce_clean),
            f64s(&|r| r.quality.ce_sae),
            f64s(&|r| r.quality.ce_zero),
            f64s(&|r| r.quality.loss_recovered()),
            Arc::new(Float64Array::from(
                rows.iter().map(|r| r.train_fvu).collect::<Vec<_>>(),
            )),
            Arc::new(Float32Array::from(
                rows.iter()
                    .map(|r| r.tokens_per_second.map(|t| t as f32))
                    .collect::<Vec<_>>(),
            )),
        ],
    )?;
    queries::parquet_io::write_parquet(
        path,
        queries::schema::sae_quality_schema(),
        &[batch],
        &[("run_id", run_id.to_owned())],
    )?;
    Ok(())
}
