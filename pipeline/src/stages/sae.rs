//! `sae`: the post-hoc baseline the paper argues against. For each checkpoint of the dense
//! baseline, a TopK SAE per TopK-layer position of the TopK model (same k), trained on the dense
//! model's residual stream; a second seed on the last checkpoint. Writes
//! `sae/<series>/step-NNNNNNN/layer-L.safetensors` and `sae/quality.parquet`.
//!
//! Resumable: an SAE file whose metadata names this checkpoint's hash and this config is kept.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use model::checkpoint::{Checkpoint, ModelCard, list_checkpoints, load_weights, read_card};
use model::sae::SaeConfig;
use queries::tables::sae_quality::{self, SaeQualityRow};
use serde::Serialize;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::saes::{SaeFitter, evaluate, sae_layers, series};
use crate::token_stream::TokenStream;

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
    // What an SAE file depends on: not whether a warm series is wanted beside it.
    let cold = crate::config::SaeSection {
        warm_start: false,
        ..sae.clone()
    };
    let file_section = (&cold, &layers, ctx.cfg.model.topk_k);
    ctx.run_stage(
        super::Stage::Sae,
        &section,
        &inputs,
        || check(ctx),
        |(card, cps)| train_all(ctx, &layers, &file_section, &card, &cps),
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
    let trainer = SaeFitter {
        sae,
        layout: &ctx.layout,
        lm,
        layers,
        shape: SaeConfig {
            d_in: lm.d_model,
            d_sae: sae.expansion * lm.d_model,
            k: ctx.cfg.model.topk_k,
        },
        section,
        train: TokenStream::open(&ctx.layout.train_tokens())?,
        device: ctx.cfg.run.backend.device()?,
    };
    let val = TokenStream::open(&ctx.layout.val_tokens())?;
    let all = series(sae, cps);
    let total: usize = all.iter().map(|s| s.checkpoints.len() * layers.len()).sum();
    let bar = ctx.ui.bar(total as u64, "sae", "SAEs");
    let started = Instant::now();
    let (mut trained, mut train_seconds) = (0usize, 0.0f64);
    let mut rows = Vec::new();
    for s in &all {
        let mut previous = None;
        for cp in &s.checkpoints {
            bar.set_message(format!("{} step {}", s.name, cp.meta.step));
            let model = load_weights(lm, &cp.dir, &trainer.device)?;
            let fitted = trainer.fit(s, cp, &model, previous.as_ref())?;
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
                rows.push(SaeQualityRow {
                    model: s.name.clone(),
                    step: cp.meta.step as u32,
                    layer: *layer as u16,
                    seed: s.seed,
                    fvu: q.fvu,
                    l0: q.l0,
                    dead_fraction: q.dead_fraction,
                    ce_clean: q.ce_clean,
                    ce_sae: q.ce_sae,
                    ce_zero: q.ce_zero,
                    loss_recovered: q.loss_recovered(),
                    train_fvu: stats.map(|s| s.0),
                    tokens_per_second: stats.and_then(|s| s.1).map(|t| t as f32),
                });
            }
            previous = Some(fitted);
        }
    }
    bar.finish_and_clear();
    queries::parquet_io::write_parquet(
        &ctx.layout.sae_quality(),
        sae_quality::schema(),
        &[sae_quality::encode(&rows)?],
        &[("run_id", ctx.run_id())],
    )?;
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
            r.fvu,
            100.0 * r.loss_recovered
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
