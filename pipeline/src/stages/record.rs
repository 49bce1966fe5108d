//! `record`: every checkpoint of every model (and every SAE series) over the evaluation
//! tokens, through the recorder (`crate::recording`); afterwards `record/` holds exactly the
//! partitions the config asks for.

use anyhow::{Context, Result};
use model::GptConfig;
use model::checkpoint::{Checkpoint, read_card};
use queries::parquet_io::read_parquet;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::recording::{Features, RecordStats, Recorder, STAGING};

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
    ctx.run_stage(super::Stage::Record, &section, &inputs, || {
        let tokens = read_parquet(&inputs[0])?;
        queries::schema::check_columns(&inputs[0], &tokens, &queries::schema::tokens_schema())
            .map_err(anyhow::Error::msg)?;
        let tokenizer = crate::tokenize::load(&inputs[1])?;
        let made_with = queries::parquet_io::read_metadata(&inputs[0])?
            .into_iter()
            .find(|(k, _)| k == "tokenizer_sha256")
            .map(|(_, v)| v);
        if made_with.as_deref() != Some(crate::manifest::hash_path(&inputs[1])?.as_str()) {
            anyhow::bail!(
                "{} was not made with {}; run `pipeline prepare --force` to rebuild both",
                inputs[0].display(),
                inputs[1].display()
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
            let base = models.iter().find(|(n, _)| *n == ctx.cfg.sae.model).map(|(_, c)| c.as_slice()).unwrap_or_default();
            let device = model::device(&ctx.cfg.run.backend)?;
            for s in crate::saes::series(&ctx.cfg.sae, base) {
                let mut saes = Vec::new();
                for cp in &s.checkpoints {
                    saes.push((cp.clone(), crate::saes::load_saes(&ctx.layout, &crate::saes::sae_layers(&ctx.cfg.model), &s.name, cp.meta.step, &device)?));
                }
                sae_series.push((s.name, saes));
            }
        }
        Ok((tokens, tokenizer, models, sae_series))
    }, |(tokens, tokenizer, models, sae_series)| {
        let device = model::device(&ctx.cfg.run.backend)?;
        let out = ctx.layout.record_dir();
        if ctx.force {
            ctx.fresh_output_dir(super::Stage::Record)?;
        }
        // Partitions a killed run left half-built.
        let staging = out.join(STAGING);
        if staging.exists() {
            std::fs::remove_dir_all(&staging).with_context(|| format!("cannot clear {}", staging.display()))?;
        }
        let inputs_key = crate::manifest::hash_value(&(
            crate::manifest::hash_path(&inputs[0])?,
            crate::manifest::hash_path(&inputs[1])?,
        ));
        let recorder = Recorder { out: out.clone(), k: ctx.cfg.record_k(), batch_size: ctx.cfg.record.batch_size, rows_per_file: ctx.cfg.record.rows_per_file, value_type: ctx.cfg.record.value_type, run_id: ctx.run_id(), device, inputs_key };
        let mut jobs: Vec<Job> = Vec::new();
        for (name, cps) in &models {
            let card = read_card(&ctx.layout.model_dir(name))?;
            let prevs = std::iter::once(None).chain(cps.iter().map(Some));
            jobs.extend(cps.iter().zip(prevs).map(|(cp, prev)| (name.as_str(), card.model.clone(), cp, prev, None)));
        }
        // SAE latents, recorded as their own models (`dense-sae`, ...).
        let base_card = read_card(&ctx.layout.model_dir(&ctx.cfg.sae.model)).ok();
        for (series, saes) in &sae_series {
            let cfg = base_card.as_ref().context("the SAE base model has no config.json")?.model.clone();
            jobs.extend(saes.iter().map(|(cp, set)| (series.as_str(), cfg.clone(), cp, None, Some(set))));
        }
        // The partitions this config asks for; anything else in `record/` (a step no longer
        // trained, a model no longer listed, SAEs turned off) goes when the stage is done.
        let mut expected = Vec::new();
        for (name, cfg, cp, _, saes) in &jobs {
            let layers: Vec<usize> = match saes {
                None => (0..cfg.n_layers).collect(),
                Some(set) => set.saes.iter().map(|(l, _)| *l).collect(),
            };
            for layer in layers {
                for table in ["activations", "neurons"] {
                    expected.push(Recorder::partition_rel(table, name, cp.meta.step, layer));
                }
            }
        }
        let bar = ctx.ui.bar(jobs.len() as u64, "record", "checkpoints");
        type Job<'a> = (&'a str, GptConfig, &'a Checkpoint, Option<&'a Checkpoint>, Option<&'a crate::saes::SaeSet>);
        let record_one = |(name, cfg, cp, prev, saes): &Job| -> Result<RecordStats> {
            let mut stats = RecordStats::default();
            match saes {
                None => recorder.record_checkpoint(name, cfg, cp, *prev, &tokens, &tokenizer, &mut stats)?,
                Some(set) => {
                    let features = Features::Sae { saes: &set.saes, fingerprint: set.fingerprint.clone() };
                    recorder.record_features(name, cfg, cp, None, &features, &tokens, &tokenizer, &mut stats)?
                }
            }
            bar.set_message(format!("{name} step {}", cp.meta.step));
            bar.inc(1);
            Ok(stats)
        };
        let recorded: Result<Vec<RecordStats>> = if ctx.cfg.record.parallel_checkpoints > 1 {
            // Checkpoints in parallel inside a pool of that many threads; burn's own parallel
            // matmuls run in the same pool, so cores are not oversubscribed.
            use rayon::prelude::*;
            let pool = rayon::ThreadPoolBuilder::new().num_threads(ctx.cfg.record.parallel_checkpoints).build()?;
            pool.install(|| jobs.par_iter().map(record_one).collect())
        } else {
            jobs.iter().map(record_one).collect()
        };
        if recorded.is_err() {
            // Half-built partitions go with the error (a full disk keeps no temporary files).
            let _ = std::fs::remove_dir_all(&staging);
        }
        let per_checkpoint = recorded?;
        bar.finish_and_clear();
        // The staging folder is empty now (every partition was renamed out of it).
        if staging.exists() {
            std::fs::remove_dir_all(&staging).with_context(|| format!("cannot remove {}", staging.display()))?;
        }
        let removed = queries::durable::retain_only(&out, &expected)?;
        let stats = per_checkpoint.iter().fold(RecordStats::default(), |a, b| a.merge(b));
        ctx.ui.say(&format!(
            "   record: {} partitions written ({} kept, {} stale removed), {} activation rows, {:.0} tokens/s forward",
            stats.partitions_written, stats.partitions_kept, removed.len(), stats.rows_written,
            stats.tokens as f64 / stats.forward_seconds.max(1e-9)
        ));
        let mut summary = json!(stats);
        summary["stale_removed"] = json!(removed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>());
        Ok(summary)
    })
}
