//! `train`: the TopK LM and its dense baseline, same data and seed; checkpoints across
//! training; resumes after an interruption. Writes `train/<model>/…` and `train/metrics.parquet`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{
    Float32Builder, Float64Builder, ListBuilder, RecordBatch, StringBuilder, UInt32Builder,
    UInt64Builder,
};
use model::checkpoint::{Checkpoint, ModelCard, list_checkpoints};
use serde_json::json;

use super::{Ctx, Outcome};
use crate::stages::prepare::PrepareSummary;

/// Token ids of a `.bin` stream, memory-mapped.
pub struct TokenStream {
    map: memmap2::Mmap,
}

impl TokenStream {
    /// Maps a little-endian u32 file.
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: the file is written once by `prepare` (atomically) and only read afterwards.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .with_context(|| format!("cannot map {}", path.display()))?;
        anyhow::ensure!(
            map.len() % 4 == 0,
            "{}: truncated (size is not a multiple of 4 bytes); run `pipeline prepare --force`",
            path.display()
        );
        Ok(Self { map })
    }

    /// The ids.
    pub fn ids(&self) -> &[u32] {
        bytemuck::cast_slice(&self.map)
    }
}

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
        return load(ctx);
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
    let device = model::device(&ctx.cfg.run.backend)?;
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
    let mut figures = serde_json::Map::new();
    let mut all = Vec::new();
    for name in &ctx.cfg.models {
        let vocab_size = ctx.cfg.model.vocab_size.max(summary.vocab_size);
        let model_cfg = ctx.cfg.model_config(name, vocab_size);
        let bar = ctx.ui.bar(ctx.cfg.train.steps as u64, name, "steps");
        let outcome = model::train::train(
            name,
            &model_cfg,
            &ctx.cfg.train,
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
            json!({
                "checkpoints": outcome.checkpoints.len(),
                "val_loss": val_loss,
                "val_ppl": val_loss.exp(),
                "tokens_per_second": speed,
                "params": model_cfg.n_params(),
            }),
        );
        all.push((name.clone(), outcome.checkpoints));
    }
    write_metrics(&ctx.layout.metrics(), &all, &ctx.run_id())?;
    drop_unlisted_models(ctx)?;
    Ok(serde_json::Value::Object(figures))
}

/// Imports checkpoint series trained elsewhere: each checkpoint is loaded (so a truncated file
/// or a missing tensor is named) and written again in this run's layout. The safetensors
/// bytes depend only on the weights, so importing this pipeline's own output is bit-exact.
fn load(ctx: &Ctx) -> Result<Outcome> {
    let source = &ctx.cfg.load.source;
    let inputs: Vec<_> = ctx.cfg.models.iter().map(|m| source.join(m)).collect();
    if let Some(missing) = inputs.iter().find(|p| !p.is_dir()) {
        anyhow::bail!(
            "`load.source` = {}: there is no folder {}; it must hold one folder per name in `models` ({})",
            source.display(),
            missing.display(),
            ctx.cfg.models.join(", ")
        );
    }
    ctx.run_stage(
        super::Stage::Train,
        &(&ctx.cfg.models, source),
        &inputs,
        || read_imports(ctx),
        |series| import(ctx, series),
    )
}

/// One imported model: its name, card and checkpoints.
type Import = (String, ModelCard, Vec<Checkpoint>);

/// Every model of `load.source`, checked before anything is written.
fn read_imports(ctx: &Ctx) -> Result<Vec<Import>> {
    let mut series = Vec::new();
    for name in &ctx.cfg.models {
        let dir = ctx.cfg.load.source.join(name);
        let card = model::checkpoint::read_card(&dir)
            .with_context(|| format!("cannot import model `{name}`"))?;
        let cps = list_checkpoints(&dir)?;
        anyhow::ensure!(
            !cps.is_empty(),
            "{} has no checkpoints/step-*/ folders with meta.json",
            dir.display()
        );
        check_imported_shape(ctx, name, &dir, &card.model, &cps)?;
        series.push((name.clone(), card, cps));
    }
    Ok(series)
}

/// Loads each checkpoint (naming a bad file or tensor) and saves it in this run's layout.
fn import(ctx: &Ctx, series: Vec<Import>) -> Result<serde_json::Value> {
    let device = model::device(&ctx.cfg.run.backend)?;
    let mut all = Vec::new();
    for (name, card, cps) in series {
        let dir = ctx.layout.model_dir(&name);
        model::checkpoint::write_or_check_card(&dir, &card)?;
        let mut imported = Vec::new();
        for cp in cps {
            let weights = model::checkpoint::load_weights(&card.model, &cp.dir, &device)?;
            let saved = model::checkpoint::save_checkpoint(&dir, &weights, cp.meta.clone())?;
            imported.push(saved);
        }
        // Checkpoints of an earlier import that the source no longer has.
        let mut keep = vec![std::path::PathBuf::from("config.json")];
        keep.extend(
            imported
                .iter()
                .filter_map(|c| c.dir.strip_prefix(&dir).ok().map(Into::into)),
        );
        queries::durable::retain_only(&dir, &keep)?;
        ctx.ui.say(&format!(
            "     load: {name}: {} checkpoints from {}",
            imported.len(),
            ctx.cfg.load.source.join(&name).display()
        ));
        all.push((name, imported));
    }
    write_metrics(&ctx.layout.metrics(), &all, &ctx.run_id())?;
    drop_unlisted_models(ctx)?;
    let counts: std::collections::BTreeMap<_, _> =
        all.iter().map(|(n, c)| (n.clone(), c.len())).collect();
    Ok(json!({ "imported": counts }))
}

/// Removes the folders of models no longer in `models`: later stages read what `train/` holds.
fn drop_unlisted_models(ctx: &Ctx) -> Result<()> {
    let mut keep: Vec<std::path::PathBuf> = ctx.cfg.models.iter().map(Into::into).collect();
    keep.push("metrics.parquet".into());
    queries::durable::retain_only(&ctx.layout.stage_dir("train"), &keep)?;
    Ok(())
}

/// An imported model must have the shape the config describes (the SAE and steering stages
/// address its layers through `[model]`), and each checkpoint a k its layers can keep.
fn check_imported_shape(
    ctx: &Ctx,
    name: &str,
    dir: &Path,
    card: &model::GptConfig,
    cps: &[Checkpoint],
) -> Result<()> {
    let want = &ctx.cfg.model;
    for (key, have, expected) in [
        ("n_layers", card.n_layers, want.n_layers),
        ("d_model", card.d_model, want.d_model),
    ] {
        anyhow::ensure!(
            have == expected,
            "{}: model `{name}` has {key} = {have}, but the config says model.{key} = {expected}; set `--set model.{key}={have}` (the config must describe the imported models)",
            dir.join("config.json").display()
        );
    }
    for cp in cps {
        anyhow::ensure!(
            cp.meta.topk_k <= card.d_model,
            "{}: topk_k = {} exceeds d_model = {}; fix the checkpoint's meta.json",
            cp.dir.join("meta.json").display(),
            cp.meta.topk_k,
            card.d_model
        );
    }
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
    let mut model = StringBuilder::new();
    let mut step = UInt32Builder::new();
    let mut tokens = UInt64Builder::new();
    let mut train_loss = Float32Builder::new();
    let mut val_loss = Float32Builder::new();
    let mut val_ppl = Float32Builder::new();
    let mut lr = Float64Builder::new();
    let mut topk_k = UInt32Builder::new();
    let mut dead = ListBuilder::new(Float32Builder::new());
    let mut seconds = Float64Builder::new();
    for (name, cps) in models {
        for c in cps {
            let m = &c.meta;
            model.append_value(name);
            step.append_value(m.step as u32);
            tokens.append_value(m.tokens_seen);
            train_loss.append_option(m.train_loss);
            val_loss.append_option(m.val_loss);
            val_ppl.append_option(m.val_loss.map(f32::exp));
            lr.append_value(m.lr);
            topk_k.append_value(m.topk_k as u32);
            dead.append_value(m.dead_fraction.iter().map(|x| Some(*x)));
            seconds.append_value(m.seconds);
        }
    }
    let batch = RecordBatch::try_new(
        queries::schema::metrics_schema(),
        vec![
            Arc::new(model.finish()),
            Arc::new(step.finish()),
            Arc::new(tokens.finish()),
            Arc::new(train_loss.finish()),
            Arc::new(val_loss.finish()),
            Arc::new(val_ppl.finish()),
            Arc::new(lr.finish()),
            Arc::new(topk_k.finish()),
            Arc::new(dead.finish()),
            Arc::new(seconds.finish()),
        ],
    )?;
    queries::parquet_io::write_parquet(
        path,
        queries::schema::metrics_schema(),
        &[batch],
        &[("run_id", run_id.to_owned())],
    )?;
    Ok(())
}
