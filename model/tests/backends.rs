//! The same checkpoint gives the same forward pass, and the same training state the same next
//! steps, on the CPU backend and on a GPU through wgpu. The tests need a GPU adapter, so they
//! are ignored by default: `cargo test -p model --features wgpu --test backends -- --ignored`
//! on a machine with one (a missing adapter then fails the test).

#[cfg(feature = "wgpu")]
mod common;

/// The wgpu device; fails the test when no adapter can be opened.
#[cfg(feature = "wgpu")]
fn wgpu_device() -> burn::prelude::Device {
    use burn::prelude::*;
    let d = Device::wgpu(Default::default());
    let _ = Tensor::<1>::zeros([1], &d).into_data();
    d
}

#[cfg(feature = "wgpu")]
#[test]
#[ignore = "needs a wgpu adapter (a GPU); run with -- --ignored where there is one"]
fn flex_and_wgpu_agree_on_a_forward_pass() {
    use burn::prelude::*;
    use burn::tensor::TensorData;
    use model::GptConfig;
    use model::checkpoint::{CheckpointMeta, load_weights, save_checkpoint};

    let cfg = GptConfig::micro(50);
    let cpu = Device::flex();
    cpu.seed(3);
    let dir = tempfile::tempdir().unwrap();
    let meta = CheckpointMeta {
        step: 0,
        tokens_seen: 0,
        train_loss: None,
        val_loss: None,
        lr: 0.0,
        topk_k: 8,
        dead_fraction: vec![],
        seconds: 0.0,
        sha256: String::new(),
    };
    let cp = save_checkpoint(dir.path(), &cfg.init(&cpu), meta).unwrap();
    let gpu = wgpu_device();
    let ids: Vec<i64> = (0..32).map(|i| (i * 7 % 50) as i64).collect();
    let logits = |device: &Device| {
        let m = load_weights(&cfg, &cp.dir, device).unwrap();
        let x = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [2, 16]), device);
        m.forward(x)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    };
    let (a, b) = (logits(&cpu), logits(&gpu));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "largest difference {worst}");
}

#[cfg(feature = "wgpu")]
#[test]
#[ignore = "needs a wgpu adapter (a GPU); run with -- --ignored where there is one"]
fn training_resumed_on_wgpu_follows_the_cpu_run() {
    use model::train::{TrainingConfig, train};

    let cfg = common::tiny();
    let schedule = |steps| TrainingConfig {
        steps,
        ..short_schedule()
    };
    let data = common::pattern(2000);
    let gpu = wgpu_device();
    // The CPU run is stopped after step 3 (its state on disk is checkpoint 2); both devices
    // resume that state for the remaining steps.
    let cpu_dir = tempfile::tempdir().unwrap();
    let cpu = burn::prelude::Device::flex();
    let run = |dir: &std::path::Path, device, on_step: &mut dyn FnMut(&model::train::Progress)| {
        train(
            "topk",
            &cfg,
            &schedule(8),
            &data,
            &data,
            dir,
            device,
            on_step,
        )
    };
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(cpu_dir.path(), &cpu, &mut |p| {
            assert!(p.step < 3, "simulated kill")
        })
    }));
    assert!(stopped.is_err());
    let gpu_dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(cpu_dir.path()).unwrap() {
        let entry = entry.unwrap();
        copy_tree(&entry.path(), &gpu_dir.path().join(entry.file_name()));
    }
    let on_cpu = run(cpu_dir.path(), &cpu, &mut |_| {}).unwrap();
    let on_gpu = run(gpu_dir.path(), &gpu, &mut |_| {}).unwrap();
    assert_eq!(on_gpu.resumed_from, Some(2));
    assert_curves_agree("resumed", &losses(&on_cpu), &losses(&on_gpu));
}

#[cfg(feature = "wgpu")]
#[test]
#[ignore = "needs a wgpu adapter (a GPU); run with -- --ignored where there is one"]
fn a_run_started_on_wgpu_starts_from_the_cpu_runs_weights_and_follows_it() {
    let gpu = wgpu_device();
    let cpu = burn::prelude::Device::flex();
    // Before the initial weights were drawn on the CPU, step 0 already differed (each backend's
    // random generator draws its own weights).
    assert_curves_agree(
        "from scratch",
        &val_losses(&cpu, short_schedule()),
        &val_losses(&gpu, short_schedule()),
    );
}

/// Validation losses by checkpoint of a flex run and a wgpu run, equal within 1e-3.
#[cfg(feature = "wgpu")]
fn assert_curves_agree(what: &str, a: &[(usize, f32)], b: &[(usize, f32)]) {
    eprintln!("validation loss by step, {what}, flex: {a:?}");
    eprintln!("validation loss by step, {what}, wgpu: {b:?}");
    assert_eq!(a.len(), b.len());
    for ((step, x), (_, y)) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= 1e-3 * x.abs().max(1.0),
            "{what}, step {step}: flex {x}, wgpu {y}"
        );
    }
}

/// Step and validation loss of each checkpoint.
#[cfg(feature = "wgpu")]
fn losses(outcome: &model::train::TrainOutcome) -> Vec<(usize, f32)> {
    outcome
        .checkpoints
        .iter()
        .map(|c| (c.meta.step, c.meta.val_loss.unwrap()))
        .collect()
}

#[cfg(feature = "wgpu")]
#[test]
#[ignore = "needs a wgpu adapter (a GPU); run with -- --ignored where there is one"]
fn half_precision_training_on_wgpu_follows_flex_where_the_adapter_computes_in_it() {
    use model::train::{Precision, TrainingConfig};

    let gpu = wgpu_device();
    let cpu = burn::prelude::Device::flex();
    for precision in [Precision::Bf16, Precision::F16] {
        if let Err(e) = precision.check(&gpu) {
            eprintln!("{}: not computed by this adapter ({e})", precision.name());
            continue;
        }
        let cfg = TrainingConfig {
            precision,
            ..short_schedule()
        };
        let last = |device| *val_losses(device, cfg.clone()).last().unwrap();
        let ((_, x), (_, y)) = (last(&cpu), last(&gpu));
        eprintln!(
            "{}: validation loss after 8 steps, flex {x}, wgpu {y}",
            precision.name()
        );
        // Measured, f16: flex 1.61331, wgpu 1.61334 on Mesa's software adapter and 1.61331 on
        // an H200; the products round differently, hence a tolerance wider than f32's.
        assert!(
            (x - y).abs() <= 1e-2 * x,
            "{}: flex {x}, wgpu {y}",
            precision.name()
        );
    }
}

/// Validation loss by checkpoint of the tiny test model trained from scratch on `device`.
#[cfg(feature = "wgpu")]
fn val_losses(
    device: &burn::prelude::Device,
    schedule: model::train::TrainingConfig,
) -> Vec<(usize, f32)> {
    let dir = tempfile::tempdir().unwrap();
    let data = common::pattern(2000);
    let out = model::train::train(
        "topk",
        &common::tiny(),
        &schedule,
        &data,
        &data,
        dir.path(),
        device,
        &mut |_| {},
    )
    .unwrap();
    losses(&out)
}

/// 8 steps of the tiny test model, checkpoints every 4, at the final k from the start.
#[cfg(feature = "wgpu")]
fn short_schedule() -> model::train::TrainingConfig {
    model::train::TrainingConfig {
        steps: 8,
        batch_size: 8,
        lr: 1e-2,
        warmup_steps: 2,
        checkpoint_every: 4,
        eval_batches: 2,
        topk_k_start: 0,
        ..model::train::TrainingConfig::tiny()
    }
}

#[cfg(feature = "wgpu")]
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}
