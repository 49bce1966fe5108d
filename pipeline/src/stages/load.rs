//! `train` with `load.source` set: checkpoint series trained elsewhere, imported into this
//! run's layout (`train/<model>/…` and `train/metrics.parquet`, as `train` writes them).
//! `load.source/<model>/` is either this project's own layout (`config.json` +
//! `checkpoints/step-*/`) or a Hugging Face series: revision folders (`step0/`, `step1000/`,
//! …) of the GPT-2, GPT-NeoX or Llama family (`model::hf`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use model::checkpoint::{Checkpoint, CheckpointMeta, ModelCard, list_checkpoints};

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
            series.push(read_hf_series(ctx, name, &dir)?);
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
        check_imported_shape(ctx, name, &dir, &card.model, &cps)?;
        series.push((
            name.clone(),
            card,
            cps.into_iter().map(Revision::Own).collect(),
        ));
    }
    Ok(series)
}

/// A Hugging Face series: every revision's config read and compared (one family, one shape),
/// and the run's tokenizer checked against the embedding.
fn read_hf_series(ctx: &Ctx, name: &str, dir: &Path) -> Result<Import> {
    let revisions = model::hf::revisions(dir)?;
    let k = ctx.cfg.model.topk_k;
    let mut first: Option<(model::hf::Family, model::GptConfig, PathBuf)> = None;
    for (_, rev) in &revisions {
        let path = rev.join("config.json");
        let (family, cfg) = model::hf::read_config(&path, k)?;
        match &first {
            None => first = Some((family, cfg, path)),
            Some((f, c, p)) => anyhow::ensure!(
                *f == family && *c == cfg,
                "{}: {} model of another shape than {} ({}); a series holds one model's checkpoints",
                path.display(),
                family.name(),
                p.display(),
                f.name()
            ),
        }
    }
    let (_, cfg, path) = first.expect("revisions() is never empty");
    check_imported_shape(ctx, name, dir, &cfg, &[])?;
    let tokenizer = ctx.layout.tokenizer();
    if tokenizer.exists() {
        let vocab = crate::tokenize::load(&tokenizer)?.get_vocab_size(true);
        anyhow::ensure!(
            vocab <= cfg.vocab_size,
            "{} has {vocab} tokens but the embedding of {} has {} rows; set `data.tokenizer` to the series' tokenizer.json and run `pipeline prepare`",
            tokenizer.display(),
            path.display(),
            cfg.vocab_size
        );
    }
    let card = ModelCard {
        name: name.to_owned(),
        model: cfg,
        training: None,
    };
    let revisions = revisions
        .into_iter()
        .map(|(step, dir)| Revision::HuggingFace { step, dir })
        .collect();
    Ok((name.to_owned(), card, revisions))
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

/// What is known of a Hugging Face revision: its step and k, nothing of its training.
fn hf_meta(step: usize, cfg: &model::GptConfig) -> CheckpointMeta {
    CheckpointMeta {
        step,
        tokens_seen: 0,
        train_loss: None,
        val_loss: None,
        lr: 0.0,
        topk_k: cfg.topk_k,
        dead_fraction: vec![],
        seconds: 0.0,
        sha256: String::new(),
    }
}

/// Checkpoints whose weights are identical (equal hashes), as "step a = step b" (a hub branch
/// that serves another revision's weights).
fn duplicates(checkpoints: &[Checkpoint]) -> Vec<String> {
    let mut by_hash: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for c in checkpoints {
        by_hash.entry(&c.meta.sha256).or_default().push(c.meta.step);
    }
    by_hash
        .into_values()
        .filter(|steps| steps.len() > 1)
        .map(|steps| {
            steps
                .iter()
                .map(|s| format!("step {s}"))
                .collect::<Vec<_>>()
                .join(" = ")
        })
        .collect()
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
