//! Training, checkpoints and resume on a tiny model.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use model::checkpoint::{list_checkpoints, load_weights};
use model::train::{Batches, SplitMix64, TrainingConfig, shard_gradients, train};
use model::{Device, GptConfig};

mod common;
use common::{pattern, tiny};

fn schedule(steps: usize) -> TrainingConfig {
    TrainingConfig {
        steps,
        batch_size: 8,
        lr: 1e-2,
        warmup_steps: 5,
        checkpoint_every: 10,
        eval_batches: 2,
        ..TrainingConfig::tiny()
    }
}

fn weights_bytes(dir: &std::path::Path, step: usize) -> Vec<u8> {
    let cp = list_checkpoints(dir)
        .unwrap()
        .into_iter()
        .find(|c| c.meta.step == step)
        .unwrap();
    std::fs::read(cp.weights()).unwrap()
}

#[test]
fn a_tiny_topk_model_overfits_a_short_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(2000);
    let out = train(
        "topk",
        &tiny(),
        &schedule(60),
        &data,
        &data,
        dir.path(),
        &Device::flex(),
        &mut |_| {},
    )
    .unwrap();
    let first = out.checkpoints.first().unwrap().meta.val_loss.unwrap();
    let last = out.checkpoints.last().unwrap().meta.val_loss.unwrap();
    // ln(16) ≈ 2.77 at random; a learned period-10 sequence is nearly deterministic.
    assert!(first > 2.0, "initial loss {first}");
    assert!(last < 0.5, "final loss {last}");
    let steps: Vec<usize> = out.checkpoints.iter().map(|c| c.meta.step).collect();
    assert_eq!(steps, vec![0, 1, 2, 4, 8, 10, 20, 30, 40, 50, 60]);
}

#[test]
fn resume_after_interruption_matches_an_uninterrupted_run_bit_for_bit() {
    let data = pattern(3000);
    let full = tempfile::tempdir().unwrap();
    train(
        "topk",
        &tiny(),
        &schedule(30),
        &data,
        &data,
        full.path(),
        &Device::flex(),
        &mut |_| {},
    )
    .unwrap();

    // Interrupt after step 13: the state on disk is that of checkpoint 10.
    let cut = tempfile::tempdir().unwrap();
    let mut calls = 0;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train(
            "topk",
            &tiny(),
            &schedule(30),
            &data,
            &data,
            cut.path(),
            &Device::flex(),
            &mut |p| {
                calls += 1;
                if p.step == 13 {
                    panic!("simulated kill");
                }
            },
        )
    }));
    assert!(result.is_err() && calls == 13);
    let resumed = train(
        "topk",
        &tiny(),
        &schedule(30),
        &data,
        &data,
        cut.path(),
        &Device::flex(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(resumed.resumed_from, Some(10));
    for step in [10, 20, 30] {
        assert_eq!(
            weights_bytes(full.path(), step),
            weights_bytes(cut.path(), step),
            "step {step}"
        );
    }
}

#[test]
fn checkpoints_round_trip_and_bad_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(500);
    let cfg = tiny();
    let out = train(
        "topk",
        &cfg,
        &schedule(2),
        &data,
        &data,
        dir.path(),
        &Device::flex(),
        &mut |_| {},
    )
    .unwrap();
    let cp = out.checkpoints.last().unwrap();
    let device = Device::flex();
    let model = load_weights(&cfg, &cp.dir, &device).unwrap();

    // Export again and compare bytes: save → load → save is exact (the file has no varying
    // metadata, so equal weights mean equal bytes).
    let again = tempfile::tempdir().unwrap();
    let meta = cp.meta.clone();
    let saved = model::checkpoint::save_checkpoint(again.path(), &model, meta).unwrap();
    assert_eq!(
        std::fs::read(saved.weights()).unwrap(),
        std::fs::read(cp.weights()).unwrap()
    );

    // A different shape names the file.
    let wider = GptConfig {
        d_model: 64,
        ..cfg.clone()
    };
    let err = load_weights(&wider, &cp.dir, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    // A truncated file names the file.
    let truncated = again.path().join("cut.safetensors");
    let bytes = std::fs::read(cp.weights()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_weights(&cfg, &truncated, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut.safetensors"), "{err}");

    // A resumed run with another config is refused.
    let other = GptConfig { topk_k: 4, ..cfg };
    let err = train(
        "topk",
        &other,
        &schedule(2),
        &data,
        &data,
        dir.path(),
        &Device::flex(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("config.json") && err.contains("different"),
        "{err}"
    );
}

/// Compares every parameter's gradient in two gradient sets.
struct GradientGap<'a> {
    whole: &'a GradientsParams,
    sharded: &'a GradientsParams,
    entries: usize,
    /// Largest |whole - sharded| and largest |whole| over all entries.
    max_gap: f32,
    max_value: f32,
}

impl ModuleVisitor for GradientGap<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let values = |grads: &GradientsParams| {
            grads
                .get::<D>(param.id)
                .expect("every parameter has a gradient")
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let (a, b) = (values(self.whole), values(self.sharded));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            self.max_gap = self.max_gap.max((x - y).abs());
            self.max_value = self.max_value.max(x.abs());
        }
        self.entries += a.len();
    }
}

#[test]
fn sharded_gradients_sum_to_the_whole_batch_gradient() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = tiny().init(&device);
    let data: Vec<u32> = {
        let mut rng = SplitMix64::new(5, 0);
        (0..500).map(|_| rng.below(16) as u32).collect()
    };
    let batches = Batches {
        tokens: &data,
        block_size: 8,
        batch_size: 8,
    };
    let (x, y) = batches.random(1, 0, 0, &device);
    let sum = |shards: usize| {
        let mut acc = GradientsAccumulator::new();
        let mut loss = 0.0;
        for shard in shard_gradients(&model, x.clone(), y.clone(), shards, shards as f32) {
            loss += shard.loss;
            acc.accumulate(&model, shard.grads);
        }
        (loss, acc.grads())
    };
    let (whole_loss, whole) = sum(1);
    let (sharded_loss, sharded) = sum(4);
    // The mean of four equal shards' means is the batch mean.
    assert!(
        (whole_loss - sharded_loss).abs() < 1e-5,
        "{whole_loss} vs {sharded_loss}"
    );
    let mut gap = GradientGap {
        whole: &whole,
        sharded: &sharded,
        entries: 0,
        max_gap: 0.0,
        max_value: 0.0,
    };
    model.visit(&mut gap);
    assert_eq!(gap.entries, model.num_params());
    assert!(gap.max_value > 1e-3, "gradients are not trivially zero");
    assert!(
        gap.max_gap <= 1e-5 * gap.max_value,
        "largest gradient difference {} (largest gradient {})",
        gap.max_gap,
        gap.max_value
    );
}
