//! The run's facts, the models table and the stability table, from the manifest's typed
//! stage summaries and the stability query.

use queries::results::StabilitySummary;
use reports::html::Table;

use crate::config::PipelineConfig;
use crate::manifest::Manifest;
use crate::stages::Stage;
use crate::summaries::{PrepareSummary, TrainSummary};

/// The stage's typed summary, if the stage ran and recorded one of this shape.
fn stage_summary<T: serde::de::DeserializeOwned>(manifest: &Manifest, stage: Stage) -> Option<T> {
    let record = manifest.stages.get(stage.name())?;
    serde_json::from_value(record.summary.clone()).ok()
}

/// (label, value) lines of the "Run" table.
pub fn run_facts(cfg: &PipelineConfig, manifest: &Manifest) -> Vec<(String, String)> {
    let m = &cfg.model;
    let mut out = vec![
        ("run".to_owned(), manifest.run_id.clone()),
        (
            "preset".to_owned(),
            format!("{:?}", cfg.run.preset).to_lowercase(),
        ),
        (
            "model".to_owned(),
            format!(
                "d_model {}, {} layers ({} TopK, k = {}), {} heads, context {}",
                m.d_model,
                m.n_layers,
                m.n_layers - m.n_nontopk,
                m.topk_k,
                m.n_heads,
                m.block_size
            ),
        ),
        (
            "training".to_owned(),
            format!(
                "{} steps × {} sequences, lr {}, seed {}",
                cfg.train.steps,
                cfg.train.batch_size * cfg.train.grad_accum,
                cfg.train.lr,
                cfg.train.seed
            ),
        ),
        (
            "git commit".to_owned(),
            manifest
                .git_commit
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        ),
    ];
    if let Some(p) = stage_summary::<PrepareSummary>(manifest, Stage::Prepare) {
        out.push((
            "data".to_owned(),
            format!(
                "{} documents, {} train tokens, vocabulary {}, {} evaluation tokens",
                p.documents, p.train_tokens, p.vocab_size, p.eval_tokens
            ),
        ));
    }
    for (stage, rec) in &manifest.stages {
        out.push((format!("time: {stage}"), format!("{:.1} s", rec.seconds)));
    }
    out
}

/// One row per trained or imported model; a notice when the manifest has no train summary.
pub fn models_table(manifest: &Manifest, notices: &mut Vec<String>) -> Table {
    let mut t = Table {
        headers: [
            "model",
            "parameters",
            "validation loss",
            "perplexity",
            "training tokens/s",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    };
    let Some(models) = stage_summary::<TrainSummary>(manifest, Stage::Train) else {
        notices.push("Models: no training summary in the manifest (run `pipeline train`).".into());
        return t;
    };
    let value =
        |v: Option<f32>, digits: usize| v.map_or("—".to_owned(), |v| format!("{v:.digits$}"));
    for (name, m) in models {
        let speed = match (m.tokens_per_second, m.imported) {
            (Some(t), _) => format!("{t:.0}"),
            (None, true) => "— (imported)".to_owned(),
            (None, false) => "— (resumed, nothing to train)".to_owned(),
        };
        t.rows.push(vec![
            name,
            m.params.to_string(),
            value(m.val_loss, 3),
            value(m.val_ppl, 1),
            speed,
        ]);
        t.links.push(None);
    }
    t
}

/// The stability table: surviving share per kind of feature and comparison.
pub fn stability_table(rows: &[StabilitySummary]) -> Table {
    Table {
        headers: [
            "features",
            "compared across",
            "matched by",
            "surviving share",
            "mean cosine",
            "pairs × layers",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.model.clone(),
                    r.comparison.clone(),
                    r.method.clone(),
                    format!("{:.1}%", 100.0 * r.share_stable),
                    r.mean_cosine.map_or("—".into(), |c| format!("{c:.3}")),
                    r.n_pairs.to_string(),
                ]
            })
            .collect(),
        links: vec![None; rows.len()],
    }
}
