//! `train`: the TopK LM and its dense baseline, same data and seed; checkpoints across
//! training; resumes after an interruption. Writes `train/<model>/…` and `train/metrics.parquet`.
//! With `load.source` set, the stage imports checkpoints instead (`load.rs`).

use std::path::Path;

use anyhow::{Context, Result};
use model::checkpoint::{Checkpoint, list_checkpoints};
use queries::tables::metrics::{self, MetricsRow};

use super::{Ctx, Outcome};
use crate::summaries::{ModelSummary, PrepareSummary, TrainSummary};
use crate::token_stream::TokenStream;

/// The prepare stage's summary.
pub fn read_summary(ctx: &Ctx) -> Result<PrepareSummary> {
    let path = ctx.layout.prepare_summary();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}; run `pipeline prepare`", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a prepare summary", path.display()))
}

/// Runs the stage: trains, or imports `load.source` when it is set.
pub fn run(ctx: &Ctx) -> Result<Outcome> {
    if !ctx.cfg.load.source.as_os_str().is_empty() {
        return super::load::run(ctx);
    }
    let inputs = [
        ctx.layout.train_tokens(),
        ctx.layout.val_tokens(),
        ctx.layout.prepare_summary(),
    ];
    let section = (
        &ctx.cfg.model,
        &ctx.cfg.train,
        &ctx.cfg.models,
        &ctx.cfg.run.backend,
    );
    ctx.run_stage(
        super::Stage::Train,
        &section,
        &inputs,
        || read_summary(ctx),
        |summary| train_models(ctx, &summary),
    )
}

/// Trains (or resumes) every model in `models`, then writes the `metrics` table.
fn train_models(ctx: &Ctx, summary: &PrepareSummary) -> Result<serde_json::Value> {
    let device = ctx.cfg.run.backend.device()?;
    let train = TokenStream::open(&ctx.layout.train_tokens())?;
    let val = TokenStream::open(&ctx.layout.val_tokens())?;
    if ctx.force {
        for name in &ctx.cfg.models {
            let dir = ctx.layout.model_dir(name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove {}", dir.display()))?;
            }
        }
    }
    let mut figures = TrainSummary::new();
    let mut all = Vec::new();
    for name in &ctx.cfg.models {
        let vocab_size = ctx.cfg.model.vocab_size.max(summary.vocab_size);
        let model_cfg = ctx.cfg.model_config(name, vocab_size);
        let bar = ctx.ui.bar(ctx.cfg.train.steps as u64, name, "steps");
        let outcome = model::train::train(
            name,
            &model_cfg,
            &ctx.cfg.train_config(name),
            train.ids(),
            val.ids(),
            &ctx.layout.model_dir(name),
            &device,
            &mut |p| {
                bar.set_position(p.step as u64);
                bar.set_message(format!("loss {:.3}", p.loss));
            },
        )?;
        bar.finish_and_clear();
        let last = outcome
            .checkpoints
            .last()
            .context("training wrote no checkpoint")?;
        let val_loss = last.meta.val_loss.unwrap_or(f32::NAN);
        let params = model_cfg.n_params();
        let resumed = outcome
            .resumed_from
            .map_or(String::new(), |s| format!(", resumed from step {s}"));
        ctx.ui.say(&format!(
            "    train: {name}: {} checkpoints, validation loss {:.3} (perplexity {:.1}), {:.0} tokens/s{resumed}",
            outcome.checkpoints.len(),
            val_loss,
            val_loss.exp(),
            outcome.tokens_per_second,
        ));
        // tokens/s is null when this call trained nothing (the model was already complete)
        let speed = (outcome.tokens_per_second > 0.0).then_some(outcome.tokens_per_second);
        figures.insert(
            name.clone(),
            ModelSummary {
                checkpoints: outcome.checkpoints.len(),
                val_loss: last.meta.val_loss,
                val_ppl: last.meta.val_loss.map(f32::exp),
                tokens_per_second: speed,
                params,
                imported: false,
                identical_steps: vec![],
                checkpoint_sha256: Default::default(),
            },
        );
        all.push((name.clone(), outcome.checkpoints));
    }
    write_metrics(&ctx.layout.metrics(), &all, &ctx.run_id())?;
    drop_unlisted_models(ctx)?;
    Ok(serde_json::to_value(figures)?)
}

/// Removes the folders of models no longer in `models`: later stages read what `train/` holds.
pub(super) fn drop_unlisted_models(ctx: &Ctx) -> Result<()> {
    let mut keep: Vec<std::path::PathBuf> = ctx.cfg.models.iter().map(Into::into).collect();
    keep.push("metrics.parquet".into());
    queries::durable::retain_only(&ctx.layout.stage_dir("train"), &keep)?;
    Ok(())
}

/// Every model's checkpoints, from disk.
pub fn checkpoints(ctx: &Ctx) -> Result<Vec<(String, Vec<Checkpoint>)>> {
    let mut out = Vec::new();
    for name in &ctx.cfg.models {
        let dir = ctx.layout.model_dir(name);
        let cps = list_checkpoints(&dir)?;
        anyhow::ensure!(
            !cps.is_empty(),
            "{} has no checkpoints; run `pipeline train`",
            dir.display()
        );
        out.push((name.clone(), cps));
    }
    Ok(out)
}

/// The `metrics` table: one row per (model, checkpoint).
pub fn write_metrics(
    path: &Path,
    models: &[(String, Vec<Checkpoint>)],
    run_id: &str,
) -> Result<()> {
    let rows: Vec<MetricsRow> = models
        .iter()
        .flat_map(|(name, cps)| cps.iter().map(move |c| (name, &c.meta)))
        .map(|(name, m)| MetricsRow {
            model: name.clone(),
            step: m.step as u32,
            tokens: m.tokens_seen,
            train_loss: m.train_loss,
            val_loss: m.val_loss,
            val_ppl: m.val_loss.map(f32::exp),
            lr: m.lr,
            topk_k: m.topk_k as u32,
            dead_fraction: m.dead_fraction.clone(),
            seconds: m.seconds,
        })
        .collect();
    queries::parquet_io::write_parquet(
        path,
        metrics::schema(),
        &[metrics::encode(&rows)?],
        &[("run_id", run_id.to_owned())],
    )?;
    Ok(())
}
