//! The training loop: forward → backward → AdamW, with evaluation and checkpoints on schedule.

use std::path::Path;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, ModuleMapper, Param};
use burn::optim::{AdamWConfig, GradientsAccumulator};
use burn::prelude::*;
use rayon::prelude::*;

use super::{Batches, TrainingConfig, checkpoint_steps, lr_at, shard_gradients, topk_k_at};
use crate::checkpoint::{
    self, Checkpoint, CheckpointMeta, ModelCard, TrainState, list_checkpoints,
};
use crate::gpt::{ForwardInput, cross_entropy};
use crate::{Error, Gpt, GptConfig, Result};

/// Reported after every optimizer step.
#[derive(Debug, Clone)]
pub struct Progress {
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    pub tokens_seen: u64,
    pub lr: f64,
}

/// What a call to [`train`] did.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// All checkpoints of the model, earlier runs' included.
    pub checkpoints: Vec<Checkpoint>,
    /// Step the run resumed from (`None`: started from scratch; equal to `steps`: nothing to do).
    pub resumed_from: Option<usize>,
    /// Training tokens per second in this call (0 when nothing ran).
    pub tokens_per_second: f64,
}

/// Validation loss and, per block, the share of neurons never among a token's top-k.
pub fn evaluate(
    model: &Gpt,
    cfg: &GptConfig,
    val: &Batches<'_>,
    n_batches: usize,
    device: &Device,
) -> (f32, Vec<f32>) {
    let d = model.ln_f.gamma.dims()[0];
    // Batches at once, one per core; losses are summed in batch order, so the result is the
    // same as one at a time.
    let per_batch: Vec<(f32, Vec<Vec<bool>>)> = (0..n_batches)
        .into_par_iter()
        .map(|i| {
            let (x, y) = val.sequential(i, device);
            let out = model.forward_with(
                x,
                ForwardInput {
                    capture_hidden: true,
                    ..Default::default()
                },
            );
            let loss = cross_entropy(out.logits, y).into_scalar::<f32>();
            let mut seen = vec![vec![false; d]; model.blocks.len()];
            for (layer, h) in out.hidden.into_iter().enumerate() {
                // The same entries the recorder records.
                let by_abs = cfg.is_topk_layer(layer) || cfg.topk_by == crate::TopKBy::Abs;
                let (_, idx) = crate::top_entries(h, cfg.topk_k.min(d), by_abs);
                for n in idx
                    .into_data()
                    .convert::<i64>()
                    .try_into_vec::<i64>()
                    .expect("int data")
                {
                    seen[layer][n as usize] = true;
                }
            }
            (loss, seen)
        })
        .collect();
    let mut loss_sum = 0.0f64;
    let mut seen = vec![vec![false; d]; model.blocks.len()];
    for (loss, batch_seen) in per_batch {
        loss_sum += loss as f64;
        for (all, batch) in seen.iter_mut().zip(batch_seen) {
            for (a, b) in all.iter_mut().zip(batch) {
                *a |= b;
            }
        }
    }
    let dead = seen
        .iter()
        .map(|s| s.iter().filter(|x| !**x).count() as f32 / d as f32)
        .collect();
    ((loss_sum / n_batches as f64) as f32, dead)
}

/// Trains (or resumes training of) one model into `dir`, writing checkpoints on the schedule.
///
/// Killing the process and calling this again continues from the last checkpoint; because each
/// step's batch depends only on (seed, step), the result equals an uninterrupted run.
#[allow(clippy::too_many_arguments)]
pub fn train(
    name: &str,
    model_cfg: &GptConfig,
    cfg: &TrainingConfig,
    train_tokens: &[u32],
    val_tokens: &[u32],
    dir: &Path,
    device: &Device,
    on_step: &mut dyn FnMut(&Progress),
) -> Result<TrainOutcome> {
    model_cfg.validate()?;
    cfg.validate()?;
    cfg.precision.check(device)?;
    let train = Batches {
        tokens: train_tokens,
        block_size: model_cfg.block_size,
        batch_size: cfg.batch_size,
    };
    let val = Batches {
        tokens: val_tokens,
        ..train
    };
    if !train.fits() || !val.fits() {
        return Err(Error::Training(format!(
            "the corpus is too small: training needs more than block_size + 1 = {} tokens in both \
             the train ({}) and validation ({}) splits",
            model_cfg.block_size + 1,
            train_tokens.len(),
            val_tokens.len()
        )));
    }
    checkpoint::write_or_check_card(
        dir,
        &ModelCard {
            name: name.to_owned(),
            model: model_cfg.clone(),
            training: Some(cfg.clone()),
        },
    )?;

    // --- init (or resume)
    let ad = device.clone().autodiff();
    let model = init_on_cpu(model_cfg, cfg.seed).fork(&ad);
    let mut optim_cfg = AdamWConfig::new()
        .with_beta_1(cfg.beta1)
        .with_beta_2(cfg.beta2)
        .with_weight_decay(cfg.weight_decay);
    if cfg.grad_clip > 0.0 {
        optim_cfg = optim_cfg.with_grad_clipping(Some(GradientClippingConfig::Norm(cfg.grad_clip)));
    }
    let (mut model, mut optim, state) = checkpoint::load_state(dir, model, optim_cfg.init())?;
    let resumed_from = state.as_ref().map(|s| s.step);
    let (mut step, mut tokens_seen, seconds_before) =
        state.map_or((0, 0, 0.0), |s| (s.step, s.tokens_seen, s.seconds));
    let tokens_per_step = (cfg.batch_size * cfg.grad_accum * model_cfg.block_size) as u64;
    tracing::info!(
        model = name,
        params = model.num_params(),
        tokens_per_step,
        resumed_from = ?resumed_from,
        "training"
    );

    let schedule = checkpoint_steps(cfg);
    let started = Instant::now();
    let mut losses_since_checkpoint = Vec::new();
    let mut last_checkpoint = resumed_from;
    let save = |model: &Gpt,
                optim: &burn::optim::ModuleOptimizer,
                step: usize,
                tokens_seen: u64,
                losses: &mut Vec<f32>|
     -> Result<()> {
        let k = topk_k_at(step, model_cfg.topk_k, model_cfg.d_model, cfg);
        let eval_model = model.valid();
        let (val_loss, dead_fraction) =
            evaluate(&eval_model, model_cfg, &val, cfg.eval_batches, device);
        let seconds = seconds_before + started.elapsed().as_secs_f64();
        let meta = CheckpointMeta {
            step,
            tokens_seen,
            train_loss: (!losses.is_empty())
                .then(|| losses.iter().sum::<f32>() / losses.len() as f32),
            val_loss: Some(val_loss),
            lr: lr_at(step, cfg),
            topk_k: k,
            dead_fraction,
            seconds,
            sha256: String::new(),
        };
        checkpoint::save_checkpoint(dir, &eval_model, meta)?;
        checkpoint::save_state(
            dir,
            model,
            optim,
            &TrainState {
                step,
                tokens_seen,
                seconds,
            },
        )?;
        losses.clear();
        Ok(())
    };
    if resumed_from.is_none() {
        save(&model, &optim, 0, 0, &mut losses_since_checkpoint)?;
        last_checkpoint = Some(0);
    }

    // --- loop
    let first_step = step;
    while step < cfg.steps {
        let lr = lr_at(step, cfg);
        model = model.with_topk_k(topk_k_at(step, model_cfg.topk_k, model_cfg.d_model, cfg));
        let mut accumulator = GradientsAccumulator::new();
        let mut step_loss = 0.0f32;
        let divisor = (cfg.grad_accum * cfg.parallel_shards) as f32;
        for micro in 0..cfg.grad_accum {
            let (x, y) = train.random(cfg.seed, step, micro, &ad);
            // forward and backward, shards at once: mean cross-entropy scaled so the summed
            // gradients are those of the step's mean loss
            let shards = shard_gradients(&model, x, y, cfg.parallel_shards, divisor, cfg.precision);
            for shard in shards {
                if !shard.loss.is_finite() {
                    return Err(Error::Training(format!(
                        "{name}: loss is {} at step {step}; the last good checkpoint is step {} in {}. \
                         Lower `train.lr` or raise `train.warmup_steps` and run again with --force",
                        shard.loss,
                        last_checkpoint.unwrap_or(0),
                        dir.join("checkpoints").display()
                    )));
                }
                step_loss += shard.loss;
                accumulator.accumulate(&model, shard.grads);
            }
        }
        // update: one AdamW step on the summed gradients
        model = optim.step(lr, model, accumulator.grads());
        step += 1;
        tokens_seen += tokens_per_step;
        losses_since_checkpoint.push(step_loss);
        on_step(&Progress {
            step,
            steps: cfg.steps,
            loss: step_loss,
            tokens_seen,
            lr,
        });
        if schedule.binary_search(&step).is_ok() {
            save(
                &model,
                &optim,
                step,
                tokens_seen,
                &mut losses_since_checkpoint,
            )?;
            last_checkpoint = Some(step);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ran = (step - first_step) as f64 * tokens_per_step as f64;
    Ok(TrainOutcome {
        checkpoints: list_checkpoints(dir)?,
        resumed_from,
        tokens_per_second: if ran > 0.0 { ran / elapsed } else { 0.0 },
    })
}

/// The initial weights from `seed`, drawn on the CPU and tracked for gradients; move them with
/// `fork`. Every backend's random generator draws differently, so runs on different backends
/// start from the same weights only this way.
pub fn init_on_cpu(cfg: &GptConfig, seed: u64) -> Gpt {
    let cpu = Device::flex().autodiff();
    cpu.seed(seed);
    // burn draws a parameter when it is first used, on the device it is on by then: draw all
    // now, here.
    cfg.init(&cpu).map(&mut DrawNow)
}

struct DrawNow;

impl ModuleMapper for DrawNow {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|w| w)
    }
}
