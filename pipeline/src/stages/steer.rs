//! `steer`: the steering evaluation. For each model and concept, the most concept-specific
//! neuron of each TopK layer (the same layer indices in the dense baseline) is set to a
//! multiple of its largest observed activation while the model continues neutral prompts;
//! the share of generated words that belong to the concept, and the perplexity of the text
//! under the unsteered model, give a dose-response curve. Writes `steer/steering.parquet`.

use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{Float64Array, RecordBatch, StringArray, UInt32Array};
use model::checkpoint::{list_checkpoints, load_weights, read_card};
use model::generate::{Sampling, generate, perplexity};
use model::{Intervention, InterventionMode};
use queries::session::{SessionOptions, collect, column_f64, open_run};
use queries::sql::steer as q;
use serde_json::json;

use super::{Ctx, Outcome};
use crate::config::bundled;
use crate::lexicon::{Lexicon, normalise_word};
use crate::stages::analyze::runtime;

/// Share of the alphabetic words of `text` whose concept is `concept`.
pub fn concept_share(text: &str, concept: &str, lex: &Lexicon) -> f64 {
    let words: Vec<String> = text
        .split_whitespace()
        .map(normalise_word)
        .filter(|w| !w.is_empty() && w.chars().all(char::is_alphabetic))
        .collect();
    let hits = words
        .iter()
        .filter(|w| lex.concept_of(w).is_some_and(|id| lex.name(id) == concept))
        .count();
    hits as f64 / words.len().max(1) as f64
}

/// One generated text of the evaluation.
struct SteeringRow {
    model: String,
    step: u32,
    concept: String,
    neurons: String,
    strength: f64,
    prompt_id: u32,
    concept_share: f64,
    perplexity: f64,
    text: String,
}

/// Runs the stage.
pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let cfg = &ctx.cfg.steer;
    let prompts_path = bundled(&cfg.prompts);
    let inputs = [
        ctx.layout.stage_dir("analyze"),
        ctx.layout.tokenizer(),
        prompts_path.clone(),
    ];
    ctx.run_stage(
        super::Stage::Steer,
        &(cfg, &ctx.cfg.models),
        &inputs,
        || {
            let text = std::fs::read_to_string(&prompts_path)
                .with_context(|| format!("cannot read {}", prompts_path.display()))?;
            let prompts: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            anyhow::ensure!(
                !prompts.is_empty(),
                "{} has no prompts (one per line)",
                prompts_path.display()
            );
            let lex = Lexicon::load(&bundled(&ctx.cfg.data.lexicon))?;
            Ok((prompts, lex))
        },
        |(prompts, lex)| {
            ctx.fresh_output_dir(super::Stage::Steer)?;
            let device = model::device(&ctx.cfg.run.backend)?;
            let tokenizer = crate::tokenize::load(&inputs[1])?;
            let rt = runtime()?;
            let session = rt.block_on(open_run(ctx.layout.root(), &SessionOptions::default()))?;
            let topk_layers =
                ctx.cfg.model.n_layers - ctx.cfg.model.n_nontopk.min(ctx.cfg.model.n_layers);
            let sampling = Sampling {
                max_new_tokens: cfg.max_new_tokens,
                temperature: cfg.temperature,
                top_p: 0.95,
                seed: ctx.cfg.train.seed,
            };
            let mut rows: Vec<SteeringRow> = Vec::new();
            let mut skipped = Vec::new();
            let concepts: Vec<String> = if cfg.concepts.is_empty() {
                let sql = q::render(
                    q::BEST_CONCEPTS,
                    &[
                        ("model", ctx.cfg.models[0].clone()),
                        ("topk_layers", topk_layers.max(1).to_string()),
                        ("limit", cfg.auto_concepts.to_string()),
                    ],
                );
                queries::session::column_str(&rt.block_on(collect(&session, &sql))?, "top_concept")?
            } else {
                cfg.concepts.clone()
            };
            let total =
                (ctx.cfg.models.len() * concepts.len() * cfg.strengths.len() * prompts.len())
                    as u64;
            let bar = ctx.ui.bar(total, "steer", "texts");
            for name in &ctx.cfg.models {
                let dir = ctx.layout.model_dir(name);
                let card = read_card(&dir)?;
                let cp = list_checkpoints(&dir)?.pop().context("no checkpoints")?;
                let model = load_weights(&card.model, &cp.dir, &device)?;
                let step = cp.meta.step;
                for concept in &concepts {
                    let sql = q::render(
                        q::CONCEPT_NEURONS,
                        &[
                            ("model", name.clone()),
                            ("step", step.to_string()),
                            ("concept", concept.clone()),
                        ],
                    );
                    let found = rt.block_on(collect(&session, &sql))?;
                    let (layer, neuron, maxv) = (
                        column_f64(&found, "layer")?,
                        column_f64(&found, "neuron")?,
                        column_f64(&found, "max_value")?,
                    );
                    let chosen: Vec<(usize, usize, f64)> = (0..layer.len())
                        .filter(|&i| (layer[i] as usize) < topk_layers.max(1))
                        .map(|i| (layer[i] as usize, neuron[i] as usize, maxv[i]))
                        .collect();
                    if chosen.is_empty() {
                        skipped.push(format!("{name}/{concept}"));
                        bar.inc((cfg.strengths.len() * prompts.len()) as u64);
                        continue;
                    }
                    let neurons = chosen
                        .iter()
                        .map(|(l, n, _)| format!("L{l}:N{n}"))
                        .collect::<Vec<_>>()
                        .join(",");
                    for &strength in &cfg.strengths {
                        for (p, prompt) in prompts.iter().enumerate() {
                            let ids = tokenizer
                                .encode(prompt.as_str(), false)
                                .map_err(|e| anyhow::anyhow!("{e}"))?
                                .get_ids()
                                .to_vec();
                            let edits: Vec<Intervention> = if strength == 0.0 {
                                vec![]
                            } else {
                                chosen
                                    .iter()
                                    .map(|&(layer, neuron, maxv)| Intervention {
                                        layer,
                                        neuron,
                                        mode: InterventionMode::Set,
                                        value: (strength * maxv) as f32,
                                        from_position: ids.len() - 1,
                                        until_position: None,
                                    })
                                    .collect()
                            };
                            let out = generate(
                                &model,
                                &ids,
                                card.model.block_size,
                                &sampling,
                                &edits,
                                true,
                                &device,
                            );
                            let text = tokenizer.decode(&out, false).unwrap_or_default();
                            let ppl = perplexity(&model, &ids, &out, &device);
                            rows.push(SteeringRow {
                                model: name.clone(),
                                step: step as u32,
                                concept: concept.clone(),
                                neurons: neurons.clone(),
                                strength,
                                prompt_id: p as u32,
                                concept_share: concept_share(&text, concept, &lex),
                                perplexity: ppl,
                                text,
                            });
                            bar.inc(1);
                        }
                    }
                }
            }
            bar.finish_and_clear();
            let batch = RecordBatch::try_new(
                queries::schema::steering_schema(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.model.as_str()),
                    )),
                    Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.step))),
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.concept.as_str()),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.neurons.as_str()),
                    )),
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "set"))),
                    Arc::new(Float64Array::from_iter_values(
                        rows.iter().map(|r| r.strength),
                    )),
                    Arc::new(UInt32Array::from_iter_values(
                        rows.iter().map(|r| r.prompt_id),
                    )),
                    Arc::new(Float64Array::from_iter_values(
                        rows.iter().map(|r| r.concept_share),
                    )),
                    Arc::new(Float64Array::from_iter_values(
                        rows.iter().map(|r| r.perplexity),
                    )),
                    Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|r| r.text.as_str()),
                    )),
                ],
            )?;
            queries::parquet_io::write_parquet(
                &ctx.layout.steering(),
                queries::schema::steering_schema(),
                &[batch],
                &[("run_id", ctx.run_id())],
            )?;
            ctx.ui.say(&format!(
                "    steer: {} texts{}",
                rows.len(),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; no specific neuron for {}", skipped.join(", "))
                }
            ));
            Ok(json!({"texts": rows.len(), "skipped": skipped}))
        },
    )
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
}
