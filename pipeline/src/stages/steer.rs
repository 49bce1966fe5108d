//! `steer`: the steering evaluation. For each model and concept, the neurons that steer the
//! concept (`crate::steering`: the most concept-specific neuron of each TopK layer, the same
//! layer indices in the dense baseline) are set to a multiple of their largest observed
//! activation while the model continues neutral prompts; the share of generated words that
//! belong to the concept, and the perplexity of the text under the unsteered model, give a
//! dose-response curve. Writes `steer/steering.parquet`.

use std::path::Path;

use anyhow::{Context, Result};
use datafusion::prelude::SessionContext;
use model::checkpoint::{list_checkpoints, load_weights, read_card};
use model::generate::{Sampling, generate, perplexity};
use model::{Device, Intervention, InterventionMode};
use queries::session::{SessionOptions, collect, open_run};
use queries::sql::steer as q;
use queries::tables::steering::{self, SteeringRow};
use serde_json::json;
use tokenizers::Tokenizer;

use super::{Ctx, Outcome};
use crate::config::{SteerCheckpoints, bundled};
use crate::lexicon::Lexicon;
use crate::stages::analyze::runtime;
use crate::steering::{Target, concept_share, concept_targets, steered_layers, target_names};

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
            let prompts = read_prompts(&prompts_path)?;
            let lex = Lexicon::load(&bundled(&ctx.cfg.data.lexicon))?;
            Ok((prompts, lex))
        },
        |(prompts, lex)| evaluate(ctx, &prompts, &lex),
    )
}

/// The prompts file: one prompt per line, blank lines skipped.
fn read_prompts(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let prompts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    anyhow::ensure!(
        !prompts.is_empty(),
        "{} has no prompts (one per line)",
        path.display()
    );
    Ok(prompts)
}

/// What every steered generation shares.
struct Generator<'a> {
    prompts: Vec<Vec<u32>>,
    lex: &'a Lexicon,
    tokenizer: Tokenizer,
    sampling: Sampling,
    device: Device,
}

fn evaluate(ctx: &Ctx, prompts: &[String], lex: &Lexicon) -> Result<serde_json::Value> {
    let cfg = &ctx.cfg.steer;
    ctx.fresh_output_dir(super::Stage::Steer)?;
    let tokenizer = crate::tokenize::load(&ctx.layout.tokenizer())?;
    let generator = Generator {
        prompts: prompts
            .iter()
            .map(|p| {
                Ok(tokenizer
                    .encode(p.as_str(), false)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .get_ids()
                    .to_vec())
            })
            .collect::<Result<_>>()?,
        lex,
        tokenizer,
        sampling: Sampling {
            max_new_tokens: cfg.max_new_tokens,
            temperature: cfg.temperature,
            top_p: 0.95,
            seed: ctx.cfg.train.seed,
        },
        device: ctx.cfg.run.backend.device()?,
    };
    let rt = runtime()?;
    let session = rt.block_on(open_run(ctx.layout.root(), &SessionOptions::default()))?;
    let layers = steered_layers(&ctx.cfg.model);
    let concepts = if cfg.concepts.is_empty() {
        rt.block_on(best_concepts(
            &session,
            &ctx.cfg.models[0],
            layers,
            cfg.auto_concepts,
        ))?
    } else {
        cfg.concepts.clone()
    };
    let per_concept = (cfg.strengths.len() * prompts.len()) as u64;
    // Each model's checkpoints to evaluate: its last, or all of them.
    let mut plan = Vec::new();
    for name in &ctx.cfg.models {
        let dir = ctx.layout.model_dir(name);
        let card = read_card(&dir)?;
        let mut cps = list_checkpoints(&dir)?;
        let last = cps.pop().context("no checkpoints")?;
        if cfg.checkpoints == SteerCheckpoints::All {
            plan.extend(cps.into_iter().map(|cp| (name, card.clone(), cp)));
        }
        plan.push((name, card, last));
    }
    let total = plan.len() as u64 * concepts.len() as u64 * per_concept;
    let bar = ctx.ui.bar(total, "steer", "texts");
    let (mut rows, mut skipped) = (Vec::new(), Vec::new());
    for (name, card, cp) in plan {
        let model = load_weights(&card.model, &cp.dir, &generator.device)?;
        let step = cp.meta.step;
        for concept in &concepts {
            // The concept's most specific neurons at this checkpoint.
            let targets = rt.block_on(concept_targets(&session, name, step, concept, layers))?;
            if targets.is_empty() {
                skipped.push(format!("{name}@{step}/{concept}"));
                bar.inc(per_concept);
                continue;
            }
            for &strength in &cfg.strengths {
                for (p, prompt) in generator.prompts.iter().enumerate() {
                    let edits = if strength == 0.0 {
                        vec![]
                    } else {
                        interventions(&targets, strength, prompt.len())
                    };
                    let out = generate(
                        &model,
                        prompt,
                        card.model.block_size,
                        &generator.sampling,
                        &edits,
                        true,
                        &generator.device,
                    );
                    let text = generator.tokenizer.decode(&out, false).unwrap_or_default();
                    rows.push(SteeringRow {
                        model: name.clone(),
                        step: step as u32,
                        concept: concept.clone(),
                        neurons: target_names(&targets),
                        mode: "set".into(),
                        strength,
                        prompt_id: p as u32,
                        concept_share: concept_share(&text, concept, generator.lex),
                        perplexity: perplexity(&model, prompt, &out, &generator.device),
                        text,
                    });
                    bar.inc(1);
                }
            }
        }
    }
    bar.finish_and_clear();
    queries::parquet_io::write_parquet(
        &ctx.layout.steering(),
        steering::schema(),
        &[steering::encode(&rows)?],
        &[("run_id", ctx.run_id())],
    )?;
    let note = if skipped.is_empty() {
        String::new()
    } else {
        format!("; no specific neuron for {}", skipped.join(", "))
    };
    ctx.ui
        .say(&format!("    steer: {} texts{note}", rows.len()));
    Ok(json!({"texts": rows.len(), "skipped": skipped}))
}

/// The default concepts: those with the most specialised neurons in the steered layers of
/// `model` at its last step.
async fn best_concepts(
    session: &SessionContext,
    model: &str,
    layers: usize,
    limit: usize,
) -> Result<Vec<String>> {
    let sql = q::render(
        q::BEST_CONCEPTS,
        &[
            ("model", model.to_owned()),
            ("topk_layers", layers.to_string()),
            ("limit", limit.to_string()),
        ],
    );
    Ok(queries::tables::columns::text(
        &collect(session, &sql).await?,
        "top_concept",
    )?)
}

/// Each target set to `strength` × its largest observed activation, from the last prompt
/// position (which predicts the first new token) on.
fn interventions(targets: &[Target], strength: f64, prompt_len: usize) -> Vec<Intervention> {
    targets
        .iter()
        .map(|t| Intervention {
            layer: t.layer,
            neuron: t.neuron,
            mode: InterventionMode::Set,
            value: (strength * t.max_value) as f32,
            from_position: prompt_len - 1,
            until_position: None,
        })
        .collect()
}
