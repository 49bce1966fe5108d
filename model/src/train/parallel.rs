//! Data parallelism inside one process: a micro-batch is split into equal shards whose
//! forward and backward passes run at the same time, one per core.
//!
//! burn's CPU kernels parallelise only large matrix products; the element-wise work of a small
//! model runs on one thread. Shards keep every core busy. Each shard runs on a fork of the
//! model (same parameter ids, its own autodiff graph, so the graphs never share a lock), and
//! the gradients are returned in shard order: summed in that order they are the same on every
//! machine, whatever its number of cores.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use rayon::prelude::*;

use super::{Precision, compute_copy};
use crate::Gpt;

/// One shard's contribution to an optimizer step.
pub struct ShardGradients {
    /// The shard's mean cross-entropy divided by `divisor`.
    pub loss: f32,
    /// Gradients of that scaled loss, keyed by the model's parameter ids.
    pub grads: GradientsParams,
}

/// Splits the micro-batch (`tokens`, `targets`: `[batch, T]`) into `shards` equal shards along
/// the batch and returns, in shard order, each shard's mean loss divided by `divisor` and its
/// gradients. With `divisor = shards × micro-batches` the sum over shards and micro-batches is
/// the gradient of the mean loss of the whole step.
///
/// `batch` must be a multiple of `shards` (the training config checks it). With a reduced
/// `precision` the passes compute in it and the gradients are still f32.
pub fn shard_gradients(
    model: &Gpt,
    tokens: Tensor<2, Int>,
    targets: Tensor<2, Int>,
    shards: usize,
    divisor: f32,
    precision: Precision,
) -> Vec<ShardGradients> {
    let run = |model: &Gpt, tokens: Tensor<2, Int>, targets: Tensor<2, Int>| {
        let loss = match precision.compute_dtype() {
            Some(dtype) => compute_copy(model, dtype).loss(tokens, targets),
            None => model.loss(tokens, targets),
        }
        .div_scalar(divisor);
        let value = loss.clone().into_scalar::<f32>();
        ShardGradients {
            loss: value,
            grads: GradientsParams::from_grads(loss.backward(), model),
        }
    };
    if shards <= 1 {
        return vec![run(model, tokens, targets)];
    }
    let batch = tokens.dims()[0];
    assert!(
        batch.is_multiple_of(shards),
        "a batch of {batch} sequences does not split into {shards} equal shards"
    );
    let rows = batch / shards;
    let device = tokens.device();
    (0..shards)
        .into_par_iter()
        .map(|s| {
            let replica = model.clone().fork(&device);
            run(
                &replica,
                tokens.clone().narrow(0, s * rows, rows),
                targets.clone().narrow(0, s * rows, rows),
            )
        })
        .collect()
}
