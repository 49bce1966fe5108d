//! What a `record` run records: one job per checkpoint of every model and per SAE set, and
//! the partitions those jobs make (everything else in `record/` is stale).

use std::path::PathBuf;

use anyhow::{Context, Result};
use model::GptConfig;
use model::checkpoint::{Checkpoint, read_card};
use queries::layout::RunLayout;

use super::Recorder;
use crate::saes::SaeSet;

/// One checkpoint to record: a model's block outputs, or one SAE set's latents.
pub struct Job<'a> {
    pub name: &'a str,
    pub cfg: GptConfig,
    pub checkpoint: &'a Checkpoint,
    /// The model's previous checkpoint (the weight side of lineage); none for SAEs.
    pub previous: Option<&'a Checkpoint>,
    pub saes: Option<&'a SaeSet>,
}

/// Every checkpoint of every model, then every SAE set, recorded as models of their own
/// (`dense-sae`, ...).
pub fn jobs<'a>(
    layout: &RunLayout,
    models: &'a [(String, Vec<Checkpoint>)],
    sae_model: &str,
    sae_series: &'a [(String, Vec<(Checkpoint, SaeSet)>)],
) -> Result<Vec<Job<'a>>> {
    let mut jobs = Vec::new();
    for (name, cps) in models {
        let card = read_card(&layout.model_dir(name))?;
        let previous = std::iter::once(None).chain(cps.iter().map(Some));
        jobs.extend(cps.iter().zip(previous).map(|(checkpoint, previous)| Job {
            name,
            cfg: card.model.clone(),
            checkpoint,
            previous,
            saes: None,
        }));
    }
    if !sae_series.is_empty() {
        let base = read_card(&layout.model_dir(sae_model))
            .context("the SAE base model has no config.json")?;
        for (series, saes) in sae_series {
            jobs.extend(saes.iter().map(|(checkpoint, set)| Job {
                name: series,
                cfg: base.model.clone(),
                checkpoint,
                previous: None,
                saes: Some(set),
            }));
        }
    }
    Ok(jobs)
}

/// The partitions this config asks for; anything else in `record/` (a step no longer trained,
/// a model no longer listed, SAEs turned off) goes when the stage is done.
pub fn expected_partitions(jobs: &[Job]) -> Vec<PathBuf> {
    let mut expected = Vec::new();
    for job in jobs {
        let layers: Vec<usize> = match job.saes {
            None => (0..job.cfg.n_layers).collect(),
            Some(set) => set.saes.iter().map(|(l, _)| *l).collect(),
        };
        for layer in layers {
            for table in ["activations", "neurons"] {
                let step = job.checkpoint.meta.step;
                expected.push(Recorder::partition_rel(table, job.name, step, layer));
            }
        }
    }
    expected
}
