//! `train` with `load.source` set: checkpoint series trained elsewhere, imported into this
//! run's layout (`train/<model>/…` and `train/metrics.parquet`, as `train` writes them).

use std::path::Path;

use anyhow::{Context, Result};
use model::checkpoint::{Checkpoint, ModelCard, list_checkpoints};

use super::train::{drop_unlisted_models, write_metrics};
use super::{Ctx, Outcome};
use crate::summaries::{ModelSummary, TrainSummary};

/// Imports checkpoint series trained elsewhere: each checkpoint is loaded (so a truncated file
/// or a missing tensor is named) and written again in this run's layout. The safetensors
/// bytes depend only on the weights, so importing this pipeline's own output is bit-exact.
pub fn run(ctx: &Ctx) -> Result<Outcome> {
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
    let device = ctx.cfg.run.backend.device()?;
    let (mut all, mut summary) = (Vec::new(), TrainSummary::new());
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
        let val_loss = imported.last().and_then(|c| c.meta.val_loss);
        summary.insert(
            name.clone(),
            ModelSummary {
                checkpoints: imported.len(),
                val_loss,
                val_ppl: val_loss.map(f32::exp),
                tokens_per_second: None,
                params: card.model.n_params(),
                imported: true,
            },
        );
        all.push((name, imported));
    }
    write_metrics(&ctx.layout.metrics(), &all, &ctx.run_id())?;
    drop_unlisted_models(ctx)?;
    Ok(serde_json::to_value(summary)?)
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
