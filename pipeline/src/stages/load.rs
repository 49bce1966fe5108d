//! `train` with `load.source` set: checkpoint series trained elsewhere, imported into this
//! run's layout (`train/<model>/…` and `train/metrics.parquet`, as `train` writes them).
//! `load.source/<model>/` is either this project's own layout (`config.json` +
//! `checkpoints/step-*/`) or a Hugging Face series: revision folders (`step0/`, `step1000/`,
//! …) of the GPT-2, GPT-NeoX or Llama family (`model::hf`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use model::checkpoint::{Checkpoint, ModelCard, list_checkpoints};

use super::train::{drop_unlisted_models, write_metrics};
use super::{Ctx, Outcome};
use crate::imports::{check_imported_shape, duplicates, hf_meta, read_hf_series};
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

/// Where one imported checkpoint comes from.
enum Revision {
    /// A checkpoint in this project's layout.
    Own(Checkpoint),
    /// A Hugging Face model folder, and the step its name carries.
    HuggingFace { step: usize, dir: PathBuf },
}

/// One imported model: its name, card and checkpoints.
type Import = (String, ModelCard, Vec<Revision>);

/// Every model of `load.source`, checked before anything is written.
fn read_imports(ctx: &Ctx) -> Result<Vec<Import>> {
    let mut series = Vec::new();
    for name in &ctx.cfg.models {
        let dir = ctx.cfg.load.source.join(name);
        if model::hf::is_series(&dir) {
            let (card, revisions) =
                read_hf_series(&ctx.cfg.model, &ctx.layout.tokenizer(), name, &dir)?;
            let revisions = revisions
                .into_iter()
                .map(|(step, dir)| Revision::HuggingFace { step, dir })
                .collect();
            series.push((name.clone(), card, revisions));
            continue;
        }
        let card = model::checkpoint::read_card(&dir)
            .with_context(|| format!("cannot import model `{name}`"))?;
        let cps = list_checkpoints(&dir)?;
        anyhow::ensure!(
            !cps.is_empty(),
            "{} has no checkpoints/step-*/ folders with meta.json (nor Hugging Face revision folders)",
            dir.display()
        );
        check_imported_shape(&ctx.cfg.model, name, &dir, &card.model, &cps)?;
        series.push((
            name.clone(),
            card,
            cps.into_iter().map(Revision::Own).collect(),
        ));
    }
    Ok(series)
}

/// Loads each checkpoint (naming a bad file or tensor) and saves it in this run's layout.
fn import(ctx: &Ctx, series: Vec<Import>) -> Result<serde_json::Value> {
    let device = ctx.cfg.run.backend.device()?;
    let (mut all, mut summary) = (Vec::new(), TrainSummary::new());
    for (name, card, revisions) in series {
        let dir = ctx.layout.model_dir(&name);
        model::checkpoint::write_or_check_card(&dir, &card)?;
        let mut imported = Vec::new();
        for revision in revisions {
            let (weights, meta) = match revision {
                Revision::Own(cp) => (
                    model::checkpoint::load_weights(&card.model, &cp.dir, &device)?,
                    cp.meta,
                ),
                Revision::HuggingFace { step, dir: source } => {
                    let (_, _, weights) = model::hf::load(&source, card.model.topk_k, &device)?;
                    (weights, hf_meta(step, &card.model))
                }
            };
            imported.push(model::checkpoint::save_checkpoint(&dir, &weights, meta)?);
        }
        let duplicates = duplicates(&imported);
        // Checkpoints of an earlier import that the source no longer has.
        let mut keep = vec![std::path::PathBuf::from("config.json")];
        keep.extend(
            imported
                .iter()
                .filter_map(|c| c.dir.strip_prefix(&dir).ok().map(Into::into)),
        );
        queries::durable::retain_only(&dir, &keep)?;
        ctx.ui.say(&format!(
            "     load: {name}: {} checkpoints from {}{}",
            imported.len(),
            ctx.cfg.load.source.join(&name).display(),
            if duplicates.is_empty() {
                String::new()
            } else {
                format!("; identical weights: {}", duplicates.join("; "))
            }
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
                identical_steps: duplicates,
                checkpoint_sha256: imported
                    .iter()
                    .map(|c| (c.meta.step, c.meta.sha256.clone()))
                    .collect(),
            },
        );
        all.push((name, imported));
    }
    write_metrics(&ctx.layout.metrics(), &all, &ctx.run_id())?;
    drop_unlisted_models(ctx)?;
    Ok(serde_json::to_value(summary)?)
}
