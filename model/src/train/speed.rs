//! Training throughput: tokens/s of the steps `train` takes (forward, backward, AdamW), for
//! `pipeline bench train` and the `train_speed` example that runs without the pipeline.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsAccumulator};

use super::{Batches, Precision, init_on_cpu, shard_gradients};
use crate::SplitMix64;
use crate::{Device, GptConfig};

/// Steps timed after the warm-up ones (which compile kernels and fill caches).
#[derive(Debug, Clone, Copy)]
pub struct SpeedRun {
    pub warmup_steps: usize,
    pub measured_steps: usize,
    /// Times each run is repeated by [`compare`], which keeps the fastest.
    pub rounds: usize,
}

impl Default for SpeedRun {
    fn default() -> Self {
        Self {
            warmup_steps: 3,
            measured_steps: 15,
            rounds: 2,
        }
    }
}

/// `n` token ids drawn uniformly below `vocab`, from `seed`.
pub fn synthetic_tokens(vocab: usize, n: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed, 0);
    (0..n).map(|_| rng.below(vocab) as u32).collect()
}

/// Training tokens/s of one model config, each batch split into `shards` shards trained at
/// once, as `train` does. The device is synchronised before the clock stops, so queued GPU
/// work is counted.
pub fn tokens_per_second(
    cfg: &GptConfig,
    batch_size: usize,
    shards: usize,
    precision: Precision,
    tokens: &[u32],
    device: &Device,
    run: SpeedRun,
) -> f64 {
    let ad = device.clone().autodiff();
    let mut model = init_on_cpu(cfg, 1).fork(&ad);
    let mut optim = AdamWConfig::new().init();
    let batches = Batches {
        tokens,
        block_size: cfg.block_size,
        batch_size,
    };
    let mut step = |model: crate::Gpt, i: usize| {
        let (x, y) = batches.random(1, i, 0, &ad);
        let mut grads = GradientsAccumulator::new();
        for shard in shard_gradients(&model, x, y, shards, shards as f32, precision) {
            grads.accumulate(&model, shard.grads);
        }
        optim.step(1e-3, model, grads.grads())
    };
    for i in 0..run.warmup_steps {
        model = step(model, i);
    }
    let _ = device.sync();
    let started = Instant::now();
    for i in 0..run.measured_steps {
        model = step(model, run.warmup_steps + i);
    }
    drop(model);
    let _ = device.sync();
    (run.measured_steps * batch_size * cfg.block_size) as f64 / started.elapsed().as_secs_f64()
}

/// Training speed of a TopK model beside its dense baseline, on one device in one sitting.
#[derive(Debug, Clone)]
pub struct TrainSpeed {
    pub shards: usize,
    /// Tokens/s of the TopK model, f32, `shards` shards.
    pub topk: f64,
    /// Tokens/s of the dense baseline, f32, `shards` shards.
    pub dense: f64,
    /// Tokens/s of the TopK model, f32, one shard.
    pub topk_unsharded: f64,
    /// The half type the device computes in (bf16 before f16) and the TopK model's tokens/s in it.
    pub half: Option<(Precision, f64)>,
}

/// Measures [`TrainSpeed`]: each run `run.rounds` times, alternating so drift in machine load hits all
/// alike, keeping the faster of the two.
pub fn compare(
    topk: &GptConfig,
    batch_size: usize,
    shards: usize,
    tokens: &[u32],
    device: &Device,
    run: SpeedRun,
) -> TrainSpeed {
    let dense = topk.dense();
    let f32 = Precision::F32;
    let half = [Precision::Bf16, Precision::F16]
        .into_iter()
        .find(|p| p.check(device).is_ok());
    let speed = |cfg: &GptConfig, shards: usize, precision: Precision| {
        tokens_per_second(cfg, batch_size, shards, precision, tokens, device, run)
    };
    let mut best = TrainSpeed {
        shards,
        topk: 0.0,
        dense: 0.0,
        topk_unsharded: 0.0,
        half: half.map(|p| (p, 0.0)),
    };
    for _ in 0..run.rounds {
        best.topk = best.topk.max(speed(topk, shards, f32));
        best.dense = best.dense.max(speed(&dense, shards, f32));
        best.topk_unsharded = best.topk_unsharded.max(speed(topk, 1, f32));
        if let Some((p, low)) = &mut best.half {
            *low = low.max(speed(topk, shards, *p));
        }
    }
    best
}

impl std::fmt::Display for TrainSpeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (t, d, one) = (self.topk, self.dense, self.topk_unsharded);
        writeln!(f, "  topk : {t:>9.0} tokens/s")?;
        writeln!(f, "  dense: {d:>9.0} tokens/s")?;
        writeln!(
            f,
            "  TopK overhead: {:+.1}% (target ≤ +10%)",
            (d / t - 1.0) * 100.0
        )?;
        write!(
            f,
            "  topk unsharded (parallel_shards = 1): {one:.0} tokens/s; {} shards are {:.2}× faster",
            self.shards,
            t / one
        )?;
        if let Some((p, low)) = self.half {
            write!(
                f,
                "\n  topk in {} (train.precision): {low:.0} tokens/s, {:.2}× f32",
                p.name(),
                low / t
            )?;
        }
        Ok(())
    }
}
