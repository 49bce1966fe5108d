//! The same checkpoint gives the same forward pass on the CPU backend and on a GPU through
//! wgpu (built with `--features wgpu`; skipped with a printed reason when no adapter exists).

#[cfg(feature = "wgpu")]
#[test]
fn flex_and_wgpu_agree_on_a_forward_pass() {
    use burn::prelude::*;
    use burn::tensor::TensorData;
    use model::GptConfig;
    use model::checkpoint::{CheckpointMeta, load_weights, save_checkpoint};

    let cfg = GptConfig {
        vocab_size: 50,
        block_size: 16,
        d_model: 32,
        n_heads: 2,
        n_layers: 3,
        d_ff: 64,
        topk_k: 8,
        n_nontopk: 1,
        ..GptConfig::tiny(50)
    };
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
    let gpu = match std::panic::catch_unwind(|| {
        let d = Device::wgpu(Default::default());
        let _ = Tensor::<1>::zeros([1], &d).into_data();
        d
    }) {
        Ok(d) => d,
        Err(_) => {
            eprintln!("SKIPPED: no wgpu adapter on this machine");
            return;
        }
    };
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
