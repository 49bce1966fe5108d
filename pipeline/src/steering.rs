//! Which neurons steer a concept, and how much of a text is about it: the one rule that
//! `pipeline steer --concept` and the `steer` stage share.
//!
//! The rule: at the model's checkpoint, in each steered layer, the neuron whose top concept
//! is the concept with the lowest normalised semantic entropy (enough observations only).
//! The steered layers are the TopK layers of the configured TopK model (`model.n_layers −
//! model.n_nontopk`, from layer 0), and the same layer indices in the dense baseline, so the
//! two are steered at the same depth.

use anyhow::{Context, Result};
use arrow::datatypes::{Float64Type, UInt32Type};
use datafusion::prelude::SessionContext;
use queries::session::collect;
use queries::sql::steer as q;
use queries::tables::columns::{required, text};

use crate::lexicon::{Lexicon, normalise_word};

/// One neuron chosen to steer a concept.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub layer: usize,
    pub neuron: usize,
    /// Its largest activation on the evaluation tokens: strengths are multiples of it.
    pub max_value: f64,
    pub entropy_norm: f64,
    pub top_share: f64,
}

/// The layers steered in every model: the TopK layers of the TopK model config.
pub fn steered_layers(model: &model::GptConfig) -> usize {
    (model.n_layers - model.n_nontopk.min(model.n_layers)).max(1)
}

/// The neurons that steer `concept` in `model` at `step` (one per steered layer that has
/// one), by the rule above. Empty when no neuron has the concept as its top concept.
pub async fn concept_targets(
    session: &SessionContext,
    model: &str,
    step: usize,
    concept: &str,
    steered_layers: usize,
) -> Result<Vec<Target>> {
    let sql = q::render(
        q::CONCEPT_NEURONS,
        &[
            ("model", model.to_owned()),
            ("step", step.to_string()),
            ("concept", concept.to_owned()),
        ],
    );
    let rows = collect(session, &sql)
        .await
        .context("steering by concept needs the analysis tables; run `pipeline analyze`")?;
    let layer = required::<UInt32Type>(&rows, "layer")?;
    let neuron = required::<UInt32Type>(&rows, "neuron")?;
    let max_value = required::<Float64Type>(&rows, "max_value")?;
    let entropy = required::<Float64Type>(&rows, "entropy_norm")?;
    let share = required::<Float64Type>(&rows, "top_share")?;
    Ok((0..layer.len())
        .filter(|&i| (layer[i] as usize) < steered_layers)
        .map(|i| Target {
            layer: layer[i] as usize,
            neuron: neuron[i] as usize,
            max_value: max_value[i],
            entropy_norm: entropy[i],
            top_share: share[i],
        })
        .collect())
}

/// The concepts some neuron of `model` has as its top concept, closest to `concept` first.
pub async fn close_concepts(
    session: &SessionContext,
    model: &str,
    concept: &str,
) -> Result<Vec<String>> {
    let sql = q::render(q::CONCEPTS, &[("model", model.to_owned())]);
    let known = text(&collect(session, &sql).await?, "top_concept")?;
    Ok(closest(concept, known, 8))
}

/// The `n` candidates closest to `wanted` by edit distance (ties in alphabetical order).
pub fn closest(wanted: &str, mut candidates: Vec<String>, n: usize) -> Vec<String> {
    candidates.sort_by_cached_key(|c| (strsim::levenshtein(wanted, c), c.clone()));
    candidates.truncate(n);
    candidates
}

/// `L<layer>:N<neuron>` joined by commas: how the `steering` table names the neurons.
pub fn target_names(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|t| format!("L{}:N{}", t.layer, t.neuron))
        .collect::<Vec<_>>()
        .join(",")
}

/// Share of the alphabetic words of `text` whose concept is `concept`.
pub fn concept_share(text: &str, concept: &str, lex: &Lexicon) -> f64 {
    let words: Vec<String> = text
        .split_whitespace()
        .map(normalise_word)
        .filter(|w| !w.is_empty() && w.chars().all(char::is_alphabetic))
        .collect();
    let hits = words.iter().filter(|w| lex.has_concept(w, concept)).count();
    hits as f64 / words.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concept_share_counts_labelled_words() {
        let lex = Lexicon::parse("dog\tnoun.animal\ncat\tnoun.animal\nbread\tnoun.food\n").unwrap();
        assert_eq!(
            concept_share("The dog and the cats, 42 loaves", "noun.animal", &lex),
            2.0 / 6.0
        );
        assert_eq!(concept_share("", "noun.animal", &lex), 0.0);
    }

    #[test]
    fn close_matches_are_ordered_by_edit_distance() {
        let known = [
            "noun.animal",
            "noun.artifact",
            "noun.location",
            "verb.motion",
        ]
        .map(String::from)
        .to_vec();
        // One letter off comes first; alphabetical order would put noun.animal first.
        assert_eq!(
            closest("noun.locaton", known.clone(), 1),
            vec!["noun.location"]
        );
        assert_eq!(closest("noun.locaton", known.clone(), 9).len(), 4);
        assert_eq!(closest("verb.motio", known, 1), vec!["verb.motion"]);
    }
}
