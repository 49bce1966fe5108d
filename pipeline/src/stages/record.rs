//! `record`: every checkpoint of every model (and every SAE series) over the evaluation
//! tokens, through the recorder (`crate::recording`); afterwards `record/` holds exactly the
//! partitions the config asks for.

use std::path::Path;

use anyhow::{Context, Result};
use model::checkpoint::Checkpoint;
use queries::parquet_io::read_parquet;
use queries::tables::tokens::{self, TokenRow};
use serde_json::json;
use tokenizers::Tokenizer;

use super::{Ctx, Outcome};
use crate::recording::{Features, Job, RecordStats, Recorder, STAGING, expected_partitions, jobs};
use crate::saes::{SaeSet, load_saes, sae_layers, series};

/// Runs the stage.
pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let mut inputs = vec![
        ctx.layout.tokens(),
        ctx.layout.tokenizer(),
        ctx.layout.stage_dir("train"),
    ];
    if ctx.cfg.sae.enabled {
        inputs.push(ctx.layout.stage_dir("sae"));
    }
    let section = (
        ctx.cfg.record_k(),
        &ctx.cfg.record,
        &ctx.cfg.models,
        ctx.cfg.sae.enabled,
        ctx.cfg.sae.second_seed,
    );
    ctx.run_stage(
        super::Stage::Record,
        &section,
        &inputs,
        || load_inputs(ctx),
        |loaded| record(ctx, loaded),
    )
}

/// What the stage records, read and checked before anything is written.
struct Inputs {
    tokens: Vec<TokenRow>,
    tokenizer: Tokenizer,
    models: Vec<(String, Vec<Checkpoint>)>,
    /// Hash of the evaluation tokens and the tokenizer: part of every partition's key.
    inputs_key: String,
    /// Each SAE series with its SAEs per checkpoint.
    sae_series: Vec<(String, Vec<(Checkpoint, SaeSet)>)>,
}

fn load_inputs(ctx: &Ctx) -> Result<Inputs> {
    let (tokens_path, tokenizer_path) = (ctx.layout.tokens(), ctx.layout.tokenizer());
    let batches = read_parquet(&tokens_path)?;
    queries::tables::check_columns(&tokens_path, &batches, &tokens::schema())
        .map_err(anyhow::Error::msg)?;
    let tokens = tokens::decode(&batches)
        .with_context(|| format!("{}: run `pipeline prepare --force`", tokens_path.display()))?;
    let tokenizer = crate::tokenize::load(&tokenizer_path)?;
    let made_with = queries::parquet_io::read_metadata(&tokens_path)?
        .into_iter()
        .find(|(k, _)| k == "tokenizer_sha256")
        .map(|(_, v)| v);
    let tokenizer_sha256 = crate::manifest::hash_path(&tokenizer_path)?;
    if made_with.as_deref() != Some(tokenizer_sha256.as_str()) {
        anyhow::bail!(
            "{} was not made with {}; run `pipeline prepare --force` to rebuild both",
            tokens_path.display(),
            tokenizer_path.display()
        );
    }
    let models = super::train::checkpoints(ctx)?;
    // A checkpoint changed or truncated since it was saved is named before anything is
    // written (the weights are read for the stage's fingerprint anyway).
    for cp in models.iter().flat_map(|(_, cps)| cps) {
        let weights = cp.weights();
        if crate::manifest::hash_path(&weights)? != cp.meta.sha256 {
            anyhow::bail!(
                "{}: its SHA-256 is not the one in meta.json (the file was changed or truncated); restore it, or retrain with `pipeline train --force`",
                weights.display()
            );
        }
    }
    let mut sae_series = Vec::new();
    if ctx.cfg.sae.enabled {
        let base = models
            .iter()
            .find(|(n, _)| *n == ctx.cfg.sae.model)
            .map(|(_, c)| c.as_slice())
            .unwrap_or_default();
        let device = ctx.cfg.run.backend.device()?;
        let layers = sae_layers(&ctx.cfg.model);
        for s in series(&ctx.cfg.sae, base) {
            let mut saes = Vec::new();
            for cp in &s.checkpoints {
                let set = load_saes(&ctx.layout, &layers, &s.name, cp.meta.step, &device)?;
                saes.push((cp.clone(), set));
            }
            sae_series.push((s.name, saes));
        }
    }
    let inputs_key =
        crate::manifest::hash_value(&(crate::manifest::hash_path(&tokens_path)?, tokenizer_sha256));
    Ok(Inputs {
        tokens,
        tokenizer,
        models,
        inputs_key,
        sae_series,
    })
}

fn record(ctx: &Ctx, inputs: Inputs) -> Result<serde_json::Value> {
    let out = ctx.layout.record_dir();
    if ctx.force {
        ctx.fresh_output_dir(super::Stage::Record)?;
    }
    // Partitions a killed run left half-built.
    let staging = out.join(STAGING);
    remove_if_present(&staging)?;
    let recorder = Recorder {
        out: out.clone(),
        k: ctx.cfg.record_k(),
        batch_size: ctx.cfg.record.batch_size,
        rows_per_file: ctx.cfg.record.rows_per_file,
        value_type: ctx.cfg.record.value_type,
        run_id: ctx.run_id(),
        device: ctx.cfg.run.backend.device()?,
        inputs_key: inputs.inputs_key.clone(),
    };
    let jobs = jobs(
        &ctx.layout,
        &inputs.models,
        &ctx.cfg.sae.model,
        &inputs.sae_series,
    )?;
    let bar = ctx.ui.bar(jobs.len() as u64, "record", "checkpoints");
    let record_one = |job: &Job| -> Result<RecordStats> {
        let mut stats = RecordStats::default();
        let features = match job.saes {
            None => Features::Blocks,
            Some(set) => Features::Sae {
                saes: &set.saes,
                fingerprint: set.fingerprint.clone(),
            },
        };
        recorder.record_features(
            job.name,
            &job.cfg,
            job.checkpoint,
            job.previous,
            &features,
            &inputs.tokens,
            &inputs.tokenizer,
            &mut stats,
        )?;
        bar.set_message(format!("{} step {}", job.name, job.checkpoint.meta.step));
        bar.inc(1);
        Ok(stats)
    };
    let recorded: Result<Vec<RecordStats>> = if ctx.cfg.record.parallel_checkpoints > 1 {
        // Checkpoints in parallel inside a pool of that many threads; burn's own parallel
        // matmuls run in the same pool, so cores are not oversubscribed.
        use rayon::prelude::*;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(ctx.cfg.record.parallel_checkpoints)
            .build()?;
        pool.install(|| jobs.par_iter().map(record_one).collect())
    } else {
        jobs.iter().map(record_one).collect()
    };
    // Half-built partitions go with an error (a full disk keeps no temporary files); after
    // success the staging folder is empty (every partition was renamed out of it).
    remove_if_present(&staging)?;
    let per_checkpoint = recorded?;
    bar.finish_and_clear();
    let removed = queries::durable::retain_only(&out, &expected_partitions(&jobs))?;
    let stats = per_checkpoint
        .iter()
        .fold(RecordStats::default(), |a, b| a.merge(b));
    ctx.ui.say(&format!(
        "   record: {} partitions written ({} kept, {} stale removed), {} activation rows, {:.0} tokens/s forward",
        stats.partitions_written,
        stats.partitions_kept,
        removed.len(),
        stats.rows_written,
        stats.tokens as f64 / stats.forward_seconds.max(1e-9)
    ));
    let mut summary = json!(stats);
    summary["stale_removed"] = json!(
        removed
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    );
    Ok(summary)
}

fn remove_if_present(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}
