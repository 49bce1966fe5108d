//! `sae`: the post-hoc baseline the paper argues against. For each checkpoint of the dense
//! baseline, a TopK SAE per TopK-layer position of the TopK model (same k), trained on the dense
//! model's residual stream; a second seed on the last checkpoint. Writes
//! `sae/<series>/step-NNNNNNN/layer-L.safetensors` and `sae/quality.parquet`.
//!
//! Resumable: an SAE file whose metadata names this checkpoint's hash and this config is kept.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use arrow::array::{Float32Array, Float64Array, RecordBatch, StringArray, UInt32Array};
use model::checkpoint::{list_checkpoints, load_weights, read_card};
use model::sae::{Sae, SaeConfig, load_sae, save_sae, train_sae};
use serde_json::json;

use super::train::TokenStream;
use super::{Ctx, Outcome};
use crate::manifest::hash_value;
use crate::saes::{Quality, collect_hidden, evaluate, sae_layers, series};

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
    ctx.run_stage(super::Stage::Sae, &section, &inputs, || {
        let card = read_card(&inputs[2])?;
        let cps = list_checkpoints(&inputs[2])?;
        anyhow::ensure!(!cps.is_empty(), "{} has no checkpoints; run `pipeline train`", inputs[2].display());
        anyhow::ensure!(
            card.model.d_model == ctx.cfg.model.d_model,
            "{}: d_model {} differs from model.d_model = {} of the TopK model the SAEs are compared with",
            inputs[2].display(), card.model.d_model, ctx.cfg.model.d_model
        );
        Ok((card, cps))
    }, |(card, cps)| {
        if ctx.force {
            ctx.fresh_output_dir(super::Stage::Sae)?;
        }
        let device = model::device(&ctx.cfg.run.backend)?;
        let train = TokenStream::open(&inputs[0])?;
        let val = TokenStream::open(&inputs[1])?;
        let lm = &card.model;
        let shape = SaeConfig { d_in: lm.d_model, d_sae: sae.expansion * lm.d_model, k: ctx.cfg.model.topk_k };
        let all = series(sae, &cps);
        let total: usize = all.iter().map(|s| s.checkpoints.len() * layers.len()).sum();
        let bar = ctx.ui.bar(total as u64, "sae", "SAEs");
        let started = Instant::now();
        let (mut trained, mut kept, mut train_seconds) = (0usize, 0usize, 0.0f64);
        let mut rows = Vec::new();
        for s in &all {
            for cp in &s.checkpoints {
                let step = cp.meta.step;
                bar.set_message(format!("{} step {step}", s.name));
                let fingerprint = hash_value(&(&section, &cp.meta.sha256, s.seed));
                let current = |layer: usize| {
                    load_sae(&ctx.layout.sae_file(&s.name, step, layer), &device)
                        .ok()
                        .filter(|(_, meta)| meta.get("fingerprint") == Some(&fingerprint))
                };
                let model = load_weights(lm, &cp.dir, &device)?;
                let mut saes: Vec<(usize, Sae)> = Vec::new();
                // Training figures of kept SAEs come from their files, so the quality table
                // is the same whether an SAE was trained now or by an earlier run.
                let mut train_stats = std::collections::BTreeMap::new();
                for &layer in &layers {
                    if let Some((sae, meta)) = current(layer) {
                        let figure = |key: &str| meta.get(key).and_then(|v| v.parse::<f64>().ok());
                        // (the speed it was trained at is a timing, not a result: not kept)
                        if let Some(fvu) = figure("train_fvu") {
                            train_stats.insert(layer, (fvu, None));
                        }
                        saes.push((layer, sae));
                    }
                }
                let kept_here = saes.len();
                if saes.len() < layers.len() {
                    let missing: Vec<usize> = layers.iter().copied().filter(|l| !saes.iter().any(|(x, _)| x == l)).collect();
                    let hidden = collect_hidden(&model, lm, train.ids(), &missing, sae.train_tokens, sae.seed, &device)?;
                    for (layer, buf) in missing.iter().zip(hidden) {
                        let t0 = Instant::now();
                        let out = train_sae(&shape, &sae.training(s.seed), &buf, &device, &mut |_| {})
                            .with_context(|| format!("SAE for {} step {step} layer {layer}", sae.model))?;
                        train_seconds += t0.elapsed().as_secs_f64();
                        let tail = &out.fvu[out.fvu.len().saturating_sub(10)..];
                        let train_fvu = tail.iter().sum::<f32>() as f64 / tail.len() as f64;
                        train_stats.insert(*layer, (train_fvu, Some(out.tokens_per_second)));
                        save_sae(&out.sae, &ctx.layout.sae_file(&s.name, step, *layer), &[
                            ("fingerprint", fingerprint.clone()),
                            ("train_fvu", train_fvu.to_string()),
                            ("model", sae.model.clone()),
                            ("checkpoint_sha256", cp.meta.sha256.clone()),
                            ("step", step.to_string()),
                            ("layer", layer.to_string()),
                            ("seed", s.seed.to_string()),
                        ])?;
                        saes.push((*layer, out.sae));
                        trained += 1;
                        bar.inc(1);
                    }
                    saes.sort_by_key(|(l, _)| *l);
                }
                kept += kept_here;
                bar.inc(kept_here as u64);
                let quality = evaluate(&model, lm, &saes, val.ids(), sae.eval_tokens, &device)?;
                for ((layer, _), q) in saes.iter().zip(quality) {
                    let stats = train_stats.get(layer);
                    rows.push(QualityRow {
                        model: s.name.clone(),
                        step,
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
                for &layer in &layers {
                    let path = ctx.layout.sae_file(&s.name, cp.meta.step, layer);
                    expected.push(path.strip_prefix(&root).expect("SAEs live in sae/").to_owned());
                }
            }
        }
        queries::durable::retain_only(&root, &expected)?;
        let last = rows.iter().filter(|r| r.model == sae.series_name(false)).last();
        let tokens_per_second = if train_seconds > 0.0 {
            Some((trained * sae.steps * sae.batch_size) as f64 / train_seconds)
        } else {
            None
        };
        ctx.ui.say(&format!(
            "      sae: {trained} SAEs trained ({kept} kept), d_sae {}, k {}{}{}",
            shape.d_sae,
            shape.k,
            tokens_per_second.map_or(String::new(), |t| format!(", {t:.0} tokens/s")),
            last.map_or(String::new(), |r| format!(
                "; last layer {}: FVU {:.3}, loss recovered {:.1}%",
                r.layer, r.quality.fvu, 100.0 * r.quality.loss_recovered()
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
    })
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
