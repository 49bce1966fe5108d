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
use burn::prelude::*;
use model::checkpoint::{Checkpoint, list_checkpoints, load_weights, read_card};
use model::sae::{Sae, SaeConfig, load_sae, save_sae, train_sae};
use model::train::Batches;
use model::{ForwardInput, Gpt, GptConfig, Substitution, cross_entropy};
use serde_json::json;

use super::train::TokenStream;
use super::{Ctx, Outcome};
use crate::manifest::hash_value;
use crate::recording::neurons::floats;

/// Sequences per forward pass when collecting hidden states.
const BATCH_SEQUENCES: usize = 16;

/// Layers the SAEs read: the TopK model's TopK-layer positions, so every SAE latent has a
/// TopK-LM neuron layer to be compared with.
pub fn sae_layers(ctx: &Ctx) -> Vec<usize> {
    (0..ctx.cfg.model.n_layers)
        .filter(|&l| ctx.cfg.model.is_topk_layer(l))
        .collect()
}

/// Where one SAE lives.
pub fn sae_path(ctx: &Ctx, series: &str, step: usize, layer: usize) -> PathBuf {
    ctx.layout.sae_file(series, step, layer)
}

/// One SAE series: the checkpoints it covers and its seed.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub seed: u64,
    pub checkpoints: Vec<Checkpoint>,
}

/// The series the config asks for: every checkpoint with `sae.seed`, and the last one again
/// with `sae.second_seed`.
pub fn series(ctx: &Ctx, checkpoints: &[Checkpoint]) -> Vec<Series> {
    let sae = &ctx.cfg.sae;
    let mut out = vec![Series {
        name: sae.series_name(false),
        seed: sae.seed,
        checkpoints: checkpoints.to_vec(),
    }];
    if sae.second_seed != 0 {
        out.push(Series {
            name: sae.series_name(true),
            seed: sae.second_seed,
            checkpoints: checkpoints.last().cloned().into_iter().collect(),
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

/// The SAEs of one series and checkpoint from disk.
pub fn load_saes(ctx: &Ctx, series: &str, step: usize, device: &Device) -> Result<SaeSet> {
    let mut saes = Vec::new();
    let mut fingerprints = Vec::new();
    for layer in sae_layers(ctx) {
        let path = sae_path(ctx, series, step, layer);
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

/// Quality of one SAE on the validation tokens.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Quality {
    /// Fraction of variance unexplained: Σ‖x − x̂‖² / Σ‖x − x̄‖².
    pub fvu: f64,
    /// Mean non-zero latents per token.
    pub l0: f64,
    /// Share of latents that never fire on the validation tokens.
    pub dead_fraction: f64,
    /// LM loss (nats) as it is, with the SAE's reconstruction in place of the block output,
    /// and with the block output zeroed.
    pub ce_clean: f64,
    pub ce_sae: f64,
    pub ce_zero: f64,
}

impl Quality {
    /// Share of the loss gap between zero-ablation and the clean model that the reconstruction
    /// recovers: (ce_zero − ce_sae) / (ce_zero − ce_clean).
    pub fn loss_recovered(&self) -> f64 {
        (self.ce_zero - self.ce_sae) / (self.ce_zero - self.ce_clean)
    }
}

/// Block outputs at `layers` of `n_tokens` tokens of seeded random windows, one row-major
/// `[n, d_model]` buffer per layer.
pub fn collect_hidden(
    model: &Gpt,
    cfg: &GptConfig,
    tokens: &[u32],
    layers: &[usize],
    n_tokens: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let batches = Batches {
        tokens,
        block_size: cfg.block_size,
        batch_size: BATCH_SEQUENCES,
    };
    anyhow::ensure!(
        batches.fits(),
        "the training split is shorter than one window"
    );
    let per_batch = BATCH_SEQUENCES * cfg.block_size;
    let mut out = vec![
        Vec::with_capacity(n_tokens.div_ceil(per_batch) * per_batch * cfg.d_model);
        layers.len()
    ];
    for i in 0..n_tokens.div_ceil(per_batch) {
        let (x, _) = batches.random(seed, i, 0, device);
        let hidden = model.block_outputs(x);
        for (buf, &layer) in out.iter_mut().zip(layers) {
            buf.extend(floats(hidden[layer].clone())?);
        }
    }
    Ok(out)
}

/// Measures each SAE on `eval_tokens` validation tokens (consecutive windows).
pub fn evaluate(
    model: &Gpt,
    cfg: &GptConfig,
    saes: &[(usize, Sae)],
    val: &[u32],
    eval_tokens: usize,
    device: &Device,
) -> Result<Vec<Quality>> {
    let batches = Batches {
        tokens: val,
        block_size: cfg.block_size,
        batch_size: BATCH_SEQUENCES,
    };
    anyhow::ensure!(
        batches.fits(),
        "the validation split is shorter than one window"
    );
    let n_batches = eval_tokens.div_ceil(BATCH_SEQUENCES * cfg.block_size);
    let d = cfg.d_model;
    struct Acc {
        sse: f64,
        sum: Vec<f64>,
        sum_sq: f64,
        n: f64,
        nonzero: f64,
        fired: Vec<bool>,
        ce_sae: f64,
        ce_zero: f64,
    }
    let mut acc: Vec<Acc> = saes
        .iter()
        .map(|(_, s)| Acc {
            sse: 0.0,
            sum: vec![0.0; d],
            sum_sq: 0.0,
            n: 0.0,
            nonzero: 0.0,
            fired: vec![false; s.config().d_sae],
            ce_sae: 0.0,
            ce_zero: 0.0,
        })
        .collect();
    let mut ce_clean = 0.0;
    let zeros = |h: Tensor<3>| h.zeros_like();
    let ce = |x: Tensor<2, Int>, y: Tensor<2, Int>, substitution: Option<Substitution>| -> f64 {
        let logits = model
            .forward_with(
                x,
                ForwardInput {
                    substitution,
                    ..Default::default()
                },
            )
            .logits;
        cross_entropy(logits, y).into_scalar::<f32>() as f64
    };
    for i in 0..n_batches {
        let (x, y) = batches.sequential(i, device);
        let out = model.forward_with(
            x.clone(),
            ForwardInput {
                capture_hidden: true,
                ..Default::default()
            },
        );
        ce_clean += cross_entropy(out.logits, y.clone()).into_scalar::<f32>() as f64;
        for ((layer, sae), a) in saes.iter().zip(&mut acc) {
            let h = out.hidden[*layer].clone();
            let [b, t, _] = h.dims();
            let flat = h.reshape([b * t, d]);
            let latents = sae.encode(flat.clone());
            let recon = sae.reconstruct_scaled(&latents).div_scalar(sae.input_scale);
            a.sse += (flat.clone() - recon)
                .powi_scalar(2)
                .sum()
                .into_scalar::<f32>() as f64;
            let xs = floats(flat)?;
            for row in xs.chunks(d) {
                for (s, v) in a.sum.iter_mut().zip(row) {
                    *s += *v as f64;
                }
                a.sum_sq += row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
            }
            a.n += (b * t) as f64;
            let values = floats(latents.values)?;
            a.nonzero += values.iter().filter(|v| **v != 0.0).count() as f64;
            let idx = latents
                .indices
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            for (j, v) in idx.iter().zip(&values) {
                if *v != 0.0 {
                    a.fired[*j as usize] = true;
                }
            }
            let reconstruct = |h: Tensor<3>| sae.reconstruct_hidden(h);
            a.ce_sae += ce(
                x.clone(),
                y.clone(),
                Some(Substitution {
                    layer: *layer,
                    replace: &reconstruct,
                }),
            );
            a.ce_zero += ce(
                x.clone(),
                y.clone(),
                Some(Substitution {
                    layer: *layer,
                    replace: &zeros,
                }),
            );
        }
    }
    let nb = n_batches as f64;
    Ok(acc
        .into_iter()
        .map(|a| {
            let mean_sq: f64 = a.sum.iter().map(|s| (s / a.n).powi(2)).sum();
            Quality {
                fvu: a.sse / (a.sum_sq - a.n * mean_sq).max(f64::MIN_POSITIVE),
                l0: a.nonzero / a.n,
                dead_fraction: a.fired.iter().filter(|f| !**f).count() as f64
                    / a.fired.len() as f64,
                ce_clean: ce_clean / nb,
                ce_sae: a.ce_sae / nb,
                ce_zero: a.ce_zero / nb,
            }
        })
        .collect())
}

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
    let layers = sae_layers(ctx);
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
        let all = series(ctx, &cps);
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
                    load_sae(&sae_path(ctx, &s.name, step, layer), &device)
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
                        save_sae(&out.sae, &sae_path(ctx, &s.name, step, *layer), &[
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
                    let path = sae_path(ctx, &s.name, cp.meta.step, layer);
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
