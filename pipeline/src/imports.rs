//! Checks and bookkeeping of imported checkpoint series (the `train` stage with
//! `load.source`): a Hugging Face series read and compared revision by revision, the shape an
//! imported model must have, what is known of a revision, and revisions with equal weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use model::GptConfig;
use model::checkpoint::{Checkpoint, CheckpointMeta, ModelCard};

/// A Hugging Face series: every revision's config read and compared (one family, one shape),
/// and the run's tokenizer checked against the embedding.
/// `want` is the run's `[model]`, `tokenizer` the run's tokenizer (checked if present).
pub fn read_hf_series(
    want: &GptConfig,
    tokenizer: &Path,
    name: &str,
    dir: &Path,
) -> Result<(ModelCard, Vec<(usize, PathBuf)>)> {
    let revisions = model::hf::revisions(dir)?;
    let k = want.topk_k;
    let mut first: Option<(model::hf::Family, GptConfig, PathBuf)> = None;
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
    check_imported_shape(want, name, dir, &cfg, &[])?;
    if tokenizer.exists() {
        let vocab = crate::tokenize::load(tokenizer)?.get_vocab_size(true);
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
    Ok((card, revisions))
}

/// What is known of a Hugging Face revision: its step and k, nothing of its training.
pub fn hf_meta(step: usize, cfg: &GptConfig) -> CheckpointMeta {
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
pub fn duplicates(checkpoints: &[Checkpoint]) -> Vec<String> {
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
pub fn check_imported_shape(
    want: &GptConfig,
    name: &str,
    dir: &Path,
    card: &GptConfig,
    cps: &[Checkpoint],
) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_with_equal_weights_are_listed_together() {
        let cfg = GptConfig::micro(10);
        let cp = |step: usize, sha: &str| Checkpoint {
            dir: PathBuf::from(format!("step{step}")),
            meta: CheckpointMeta {
                sha256: sha.into(),
                ..hf_meta(step, &cfg)
            },
        };
        let series = [
            cp(0, "a"),
            cp(1000, "b"),
            cp(2000, "a"),
            cp(3000, "c"),
            cp(4000, "a"),
        ];
        assert_eq!(duplicates(&series), vec!["step 0 = step 2000 = step 4000"]);
        assert!(duplicates(&series[..2]).is_empty());
        assert_eq!(hf_meta(7, &cfg).topk_k, cfg.topk_k);
    }
}
