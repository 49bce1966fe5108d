//! `pipeline generate` and `pipeline steer`: text from any checkpoint, and the same text with
//! one neuron per layer clamped (`set`), boosted (`add`) or scaled — the paper's single-neuron
//! concept steering. The edit acts on the block output after TopK (see `model::Intervention`).

use anyhow::{Context, Result, bail};
use arrow::datatypes::Float64Type;
use model::checkpoint::{Checkpoint, list_checkpoints, load_weights, read_card};
use model::generate::{Sampling, generate};
use model::{Gpt, GptConfig, Intervention, InterventionMode};
use queries::session::{SessionOptions, collect, open_run};
use queries::sql::steer as q;
use queries::tables::columns::required;
use tokenizers::Tokenizer;

use crate::cli::{GenerateArgs, SteerArgs};
use crate::lexicon::Lexicon;
use crate::stages::Ctx;
use crate::stages::analyze::runtime;
use crate::steering;

/// A loaded checkpoint ready to generate from.
pub struct Loaded {
    pub name: String,
    pub cfg: GptConfig,
    pub checkpoint: Checkpoint,
    pub model: Gpt,
    pub tokenizer: Tokenizer,
    pub device: model::Device,
}

fn load(ctx: &Ctx, args: &GenerateArgs) -> Result<Loaded> {
    load_checkpoint(ctx, &args.model, args.step)
}

/// The checkpoint of `model` at `step` (default: its last), with the run's tokenizer.
pub fn load_checkpoint(ctx: &Ctx, model: &str, step: Option<usize>) -> Result<Loaded> {
    let dir = ctx.layout.model_dir(model);
    let card = read_card(&dir).with_context(|| {
        format!(
            "no trained model `{}` in this run; run `pipeline train` (models: {})",
            model,
            ctx.cfg.models.join(", ")
        )
    })?;
    let cps = list_checkpoints(&dir)?;
    let checkpoint = match step {
        Some(step) => cps
            .iter()
            .find(|c| c.meta.step == step)
            .cloned()
            .with_context(|| {
                let steps: Vec<String> = cps.iter().map(|c| c.meta.step.to_string()).collect();
                format!(
                    "model `{}` has no checkpoint at step {step}; steps: {}",
                    model,
                    steps.join(", ")
                )
            })?,
        None => cps
            .last()
            .cloned()
            .context("no checkpoints; run `pipeline train`")?,
    };
    let device = ctx.cfg.run.backend.device()?;
    let weights = load_weights(&card.model, &checkpoint.dir, &device)?;
    let tokenizer = crate::tokenize::load(&ctx.layout.tokenizer())?;
    Ok(Loaded {
        name: model.to_owned(),
        cfg: card.model,
        checkpoint,
        model: weights,
        tokenizer,
        device,
    })
}

pub fn encode(tokenizer: &Tokenizer, prompt: &str) -> Result<Vec<u32>> {
    if prompt.trim().is_empty() {
        bail!("the prompt is empty; pass --prompt \"Once upon a time,\"");
    }
    let enc = tokenizer
        .encode(prompt, false)
        .map_err(|e| anyhow::anyhow!("cannot tokenize the prompt: {e}"))?;
    Ok(enc.get_ids().to_vec())
}

fn sampling(ctx: &Ctx, args: &GenerateArgs) -> Sampling {
    Sampling {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed.unwrap_or(ctx.cfg.train.seed),
    }
}

pub fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> String {
    tokenizer.decode(ids, false).unwrap_or_default()
}

/// `pipeline generate`.
pub fn run_generate(ctx: &Ctx, args: &GenerateArgs) -> Result<()> {
    let l = load(ctx, args)?;
    let prompt = encode(&l.tokenizer, &args.prompt)?;
    let out = generate(
        &l.model,
        &prompt,
        l.cfg.block_size,
        &sampling(ctx, args),
        &[],
        true,
        &l.device,
    );
    println!("{}{}", args.prompt, decode(&l.tokenizer, &out));
    Ok(())
}

/// `pipeline steer`.
pub fn run_steer(ctx: &Ctx, args: &SteerArgs) -> Result<()> {
    let l = load(ctx, &args.generate)?;
    let prompt = encode(&l.tokenizer, &args.generate.prompt)?;
    let step = l.checkpoint.meta.step;
    let rt = runtime()?;
    let session = rt.block_on(open_run(ctx.layout.root(), &SessionOptions::default()))?;
    let base = [("model", l.name.clone()), ("step", step.to_string())];
    let with = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        base.iter().cloned().chain(extra.iter().cloned()).collect()
    };

    // Which neurons: the one given, or per steered layer the most specific neuron of the
    // concept (the rule the `steer` stage uses: `crate::steering`).
    let mut targets: Vec<(usize, usize, f64)> = Vec::new(); // (layer, neuron, max activation)
    if let Some(concept) = &args.concept {
        let layers = steering::steered_layers(&ctx.cfg.model);
        let chosen = rt.block_on(steering::concept_targets(
            &session, &l.name, step, concept, layers,
        ))?;
        for t in &chosen {
            println!(
                "chose layer {} neuron {}: top concept {concept} (share {:.2}), semantic entropy {:.3}, max activation {:.2}",
                t.layer, t.neuron, t.top_share, t.entropy_norm, t.max_value
            );
            targets.push((t.layer, t.neuron, t.max_value));
        }
        if targets.is_empty() {
            let close = rt.block_on(steering::close_concepts(&session, &l.name, concept))?;
            bail!(
                "no neuron of `{}` in layers 0..{layers} at step {step} has `{concept}` as its top concept; closest concepts: {}",
                l.name,
                close.join(", ")
            );
        }
    } else {
        let (Some(layer), Some(neuron)) = (args.layer, args.neuron) else {
            bail!(
                "say which neuron: --layer L --neuron N, or --concept C (e.g. --concept noun.food)"
            );
        };
        if layer >= l.cfg.n_layers {
            bail!(
                "--layer {layer}: the model has layers 0..{}",
                l.cfg.n_layers - 1
            );
        }
        if neuron >= l.cfg.d_model {
            bail!(
                "--neuron {neuron}: neurons are 0..{} (d_model = {})",
                l.cfg.d_model - 1,
                l.cfg.d_model
            );
        }
        if !l.cfg.is_topk_layer(layer) {
            eprintln!(
                "warning: layer {layer} is dense; the edit is applied to its output all the same"
            );
        }
        let maxv = if args.relative {
            let rows = rt.block_on(collect(
                &session,
                &q::render(
                    q::NEURON_MAX,
                    &with(&[("layer", layer.to_string()), ("neuron", neuron.to_string())]),
                ),
            ))?;
            let max = required::<Float64Type>(&rows, "max_value")?;
            *max.first().with_context(|| {
                format!(
                    "neuron {neuron} of layer {layer} has no statistics at step {step} (dead, or run `pipeline analyze`)"
                )
            })?
        } else {
            1.0
        };
        targets.push((layer, neuron, maxv));
    }
    // By default the edit acts where generated tokens are produced: the last prompt position
    // (which predicts the first new token) and every generated one. With --prompt-only it
    // acts on the prompt positions only; generation then reads the edited keys and values.
    let mode = InterventionMode::from(args.mode);
    let (from_position, until_position) = if args.prompt_only {
        (0, Some(prompt.len()))
    } else {
        (prompt.len() - 1, None)
    };
    let edits: Vec<Intervention> = targets
        .iter()
        .map(|&(layer, neuron, maxv)| Intervention {
            layer,
            neuron,
            mode,
            value: if args.relative || args.concept.is_some() {
                (args.value * maxv) as f32
            } else {
                args.value as f32
            },
            from_position,
            until_position,
        })
        .collect();
    let s = sampling(ctx, &args.generate);
    let plain = generate(
        &l.model,
        &prompt,
        l.cfg.block_size,
        &s,
        &[],
        true,
        &l.device,
    );
    let steered = generate(
        &l.model,
        &prompt,
        l.cfg.block_size,
        &s,
        &edits,
        true,
        &l.device,
    );
    let lexicon = args
        .concept
        .as_ref()
        .map(|_| Lexicon::load(&crate::config::bundled(&ctx.cfg.data.lexicon)));
    let show = |ids: &[u32]| {
        highlight(
            &decode(&l.tokenizer, ids),
            args.concept.as_deref(),
            lexicon.as_ref().and_then(|r| r.as_ref().ok()),
        )
    };
    let how = edits
        .iter()
        .map(|e| format!("L{} N{} {:?} {:.2}", e.layer, e.neuron, e.mode, e.value).to_lowercase())
        .collect::<Vec<_>>()
        .join(", ");
    println!("model {} step {step}; steering {how}", l.name);
    println!("── unsteered ──\n{}{}", args.generate.prompt, show(&plain));
    println!(
        "── steered ────\n{}{}",
        args.generate.prompt,
        show(&steered)
    );
    Ok(())
}

/// Words of `concept` in bold yellow (ANSI) when writing to a terminal.
fn highlight(text: &str, concept: Option<&str>, lexicon: Option<&Lexicon>) -> String {
    let (Some(concept), Some(lex)) = (concept, lexicon) else {
        return text.to_owned();
    };
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return text.to_owned();
    }
    let mut out = String::new();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if lex.has_concept(word, concept) {
            out.push_str(&format!("\x1b[1;33m{word}\x1b[0m"));
        } else {
            out.push_str(word);
        }
    }
    out
}
