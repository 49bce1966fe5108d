//! The steering playground: a prompt continued by a checkpoint with and without an edit of
//! chosen neurons (the code of `pipeline steer`), words of the concept highlighted. Seeded, so
//! the same URL gives the same texts.

use std::sync::Mutex;

use model::generate::{Sampling, generate};
use model::{Intervention, InterventionMode};
use queries::sql::serve::Literal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::explorer::Explorer;
use crate::lexicon::Lexicon;
use crate::stages::Ctx;
use crate::steer::{Loaded, decode, encode, load_checkpoint};
use crate::steering::concept_share;

/// Most tokens one request may generate, and most neurons it may edit.
pub const MAX_NEW_TOKENS: usize = 200;
pub const MAX_TARGETS: usize = 8;
const MAX_PROMPT_CHARS: usize = 2000;

/// `/api/steer` parameters.
#[derive(Debug, Deserialize)]
pub struct SteerParams {
    pub model: String,
    pub step: Option<usize>,
    /// Neurons to edit: `layer:neuron`, comma-separated (e.g. `2:417,1:30`).
    pub neurons: String,
    pub prompt: Option<String>,
    /// set (clamp), add (boost) or scale.
    pub mode: Option<InterventionMode>,
    /// Strength; with `relative` (the default) in units of each neuron's largest activation at
    /// this checkpoint, as the `steer` stage uses it.
    pub strength: Option<f64>,
    pub relative: Option<bool>,
    pub tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub seed: Option<u64>,
    /// Concept whose words are highlighted (default: the first neuron's top concept).
    pub concept: Option<String>,
}

/// Checkpoints are loaded on demand and the last one kept; one generation at a time (the CPU
/// has few cores, and two at once would only halve each).
pub struct Playground {
    ctx: Ctx,
    loaded: Mutex<Option<Loaded>>,
    lexicon: Option<Lexicon>,
}

impl Playground {
    pub fn new(ctx: Ctx) -> Self {
        let lexicon = Lexicon::load(&crate::config::bundled(&ctx.cfg.data.lexicon)).ok();
        Self {
            ctx,
            loaded: Mutex::new(None),
            lexicon,
        }
    }

    /// Checks the request, finds each neuron's strength and the concept, then generates.
    pub async fn steer(&self, explorer: &Explorer, p: SteerParams) -> Result<Value, ApiError> {
        let m = explorer.model(&p.model)?;
        let step = explorer.step(m, p.step)?;
        let targets = parse_targets(&p.neurons)?;
        for &(layer, neuron) in &targets {
            explorer.layer(m, layer)?;
            explorer.neuron(m, layer, neuron)?;
        }
        let prompt = p
            .prompt
            .clone()
            .unwrap_or_else(|| "Once upon a time,".to_owned());
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(ApiError::bad_request(format!(
                "the prompt has over {MAX_PROMPT_CHARS} characters"
            )));
        }
        let tokens = p.tokens.unwrap_or(40);
        if tokens == 0 || tokens > MAX_NEW_TOKENS {
            return Err(ApiError::bad_request(format!(
                "tokens={tokens}: generate 1..={MAX_NEW_TOKENS} tokens"
            )));
        }
        let strength = p.strength.unwrap_or(4.0);
        if !strength.is_finite() {
            return Err(ApiError::bad_request("strength must be a finite number"));
        }
        let relative = p.relative.unwrap_or(true);
        let mut notices = Vec::new();
        let mut edits = Vec::new();
        for &(layer, neuron) in &targets {
            let at = [
                ("model", Literal::from(m.name.as_str())),
                ("step", step.into()),
                ("layer", layer.into()),
                ("neuron", neuron.into()),
            ];
            let max = if relative {
                let weights = explorer
                    .query(&queries::sql::serve::fill(
                        queries::sql::serve::NEURON_MAX,
                        &at,
                    ))
                    .await;
                match weights
                    .ok()
                    .and_then(|r| r.first().and_then(|r| r.get("max_value")?.as_f64()))
                {
                    Some(v) => v,
                    None => {
                        notices.push(format!(
                            "layer {layer} neuron {neuron} never fires at step {step} (or `analyze` has not run): strength taken as an absolute value"
                        ));
                        1.0
                    }
                }
            } else {
                1.0
            };
            edits.push((layer, neuron, strength * max));
        }
        let concept = match p.concept.clone() {
            Some(c) => Some(c),
            None => {
                let (layer, neuron) = targets[0];
                explorer
                    .query(&queries::sql::serve::fill(
                        queries::sql::serve::NEURON_CONCEPT,
                        &[
                            ("model", Literal::from(m.name.as_str())),
                            ("step", step.into()),
                            ("layer", layer.into()),
                            ("neuron", neuron.into()),
                        ],
                    ))
                    .await
                    .ok()
                    .and_then(|r| r.first()?.get("top_concept")?.as_str().map(str::to_owned))
            }
        };
        let mode = p.mode.unwrap_or_default();
        let sampling = Sampling {
            max_new_tokens: tokens,
            temperature: p.temperature.unwrap_or(0.8).max(0.0),
            top_p: 0.95,
            seed: p.seed.unwrap_or(self.ctx.cfg.train.seed),
        };
        let (model, prompt_text) = (m.name.clone(), prompt.clone());
        let generated = tokio::task::block_in_place(|| {
            self.generate(&model, step, &prompt_text, mode, &edits, &sampling)
        })?;
        let lex = self.lexicon.as_ref();
        let show = |text: &str| highlight(text, concept.as_deref(), lex);
        let share = |text: &str| match (&concept, lex) {
            (Some(c), Some(l)) => Some(concept_share(text, c, l)),
            _ => None,
        };
        Ok(json!({
            "model": m.name, "step": step, "prompt": prompt, "mode": mode,
            "edits": edits.iter().map(|(l, n, v)| json!({"layer": l, "neuron": n, "value": v})).collect::<Vec<_>>(),
            "concept": concept, "seed": sampling.seed,
            "plain": show(&generated.0), "steered": show(&generated.1),
            "concept_share_plain": share(&generated.0), "concept_share_steered": share(&generated.1),
            "notices": notices,
        }))
    }

    /// (unsteered, steered) continuations of `prompt`.
    fn generate(
        &self,
        model: &str,
        step: usize,
        prompt: &str,
        mode: InterventionMode,
        edits: &[(usize, usize, f64)],
        sampling: &Sampling,
    ) -> Result<(String, String), ApiError> {
        let mut slot = self
            .loaded
            .lock()
            .map_err(|_| ApiError::internal("an earlier generation failed; restart the server"))?;
        if slot
            .as_ref()
            .is_none_or(|l| l.name != model || l.checkpoint.meta.step != step)
        {
            *slot =
                Some(load_checkpoint(&self.ctx, model, Some(step)).map_err(ApiError::unavailable)?);
        }
        let l = slot.as_ref().expect("loaded above");
        let ids = encode(&l.tokenizer, prompt).map_err(ApiError::bad_request)?;
        if ids.len() >= l.cfg.block_size {
            return Err(ApiError::bad_request(format!(
                "the prompt is {} tokens; the model reads at most {} (block_size), so leave room to generate",
                ids.len(),
                l.cfg.block_size
            )));
        }
        let interventions: Vec<Intervention> = edits
            .iter()
            .map(|&(layer, neuron, value)| Intervention {
                layer,
                neuron,
                mode,
                value: value as f32,
                from_position: ids.len() - 1,
                until_position: None,
            })
            .collect();
        let run = |edits: &[Intervention]| {
            let out = generate(
                &l.model,
                &ids,
                l.cfg.block_size,
                sampling,
                edits,
                true,
                &l.device,
            );
            decode(&l.tokenizer, &out)
        };
        Ok((run(&[]), run(&interventions)))
    }
}

/// `2:417,1:30` → [(2, 417), (1, 30)].
pub fn parse_targets(spec: &str) -> Result<Vec<(usize, usize)>, ApiError> {
    let bad = |part: &str| {
        ApiError::bad_request(format!(
            "neurons: `{part}` is not layer:neuron (e.g. neurons=2:417,1:30)"
        ))
    };
    let targets: Vec<(usize, usize)> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|part| {
            let (l, n) = part.split_once(':').ok_or_else(|| bad(part))?;
            Ok((
                l.trim().parse().map_err(|_| bad(part))?,
                n.trim().parse().map_err(|_| bad(part))?,
            ))
        })
        .collect::<Result<_, ApiError>>()?;
    if targets.is_empty() || targets.len() > MAX_TARGETS {
        return Err(ApiError::bad_request(format!(
            "neurons: give 1 to {MAX_TARGETS} as layer:neuron, comma-separated"
        )));
    }
    Ok(targets)
}

/// The text as pieces: words of `concept` marked, so the page can highlight them.
pub fn highlight(text: &str, concept: Option<&str>, lex: Option<&Lexicon>) -> Vec<Value> {
    let mut pieces = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, pieces: &mut Vec<Value>| {
        if word.is_empty() {
            return;
        }
        let hit = match (concept, lex) {
            (Some(c), Some(l)) => l.has_concept(word, c),
            _ => false,
        };
        pieces.push(json!({"text": std::mem::take(word), "concept": hit}));
    };
    for ch in text.chars() {
        if ch.is_alphanumeric() || ch == '\'' || ch == '-' {
            word.push(ch);
        } else {
            flush(&mut word, &mut pieces);
            pieces.push(json!({"text": ch.to_string(), "concept": false}));
        }
    }
    flush(&mut word, &mut pieces);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_refuse_bad_lists() {
        assert_eq!(
            parse_targets("2:417, 1:30").unwrap(),
            vec![(2, 417), (1, 30)]
        );
        for bad in ["", "2", "2:x", "a:1", "1:2,3"] {
            let e = parse_targets(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
        let many = ["0:1"; MAX_TARGETS + 1].join(",");
        assert!(parse_targets(&many).is_err());
    }

    #[test]
    fn highlighted_pieces_rebuild_the_text_and_mark_concept_words() {
        let lex = Lexicon::parse("bread\tnoun.food\ndog\tnoun.animal\n").unwrap();
        let text = "The dog ate bread, then <b>bread</b>.";
        let pieces = highlight(text, Some("noun.food"), Some(&lex));
        let rebuilt: String = pieces.iter().map(|p| p["text"].as_str().unwrap()).collect();
        assert_eq!(rebuilt, text);
        let hits: Vec<&str> = pieces
            .iter()
            .filter(|p| p["concept"] == true)
            .map(|p| p["text"].as_str().unwrap())
            .collect();
        assert_eq!(hits, ["bread", "bread"]);
    }
}
