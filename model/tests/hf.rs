//! The Hugging Face import computes what `transformers` computes: for every family and
//! variant in `tests/fixtures/hf/` (written by `scripts/hf_reference.py`, which records the
//! versions it ran with), each checkpoint's logits and every block output on the reference
//! token ids, within 1e-4, with the same top-k entries per token.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::TensorData;
use model::ForwardInput;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hf")
}

/// A tensor of `reference.safetensors`: (values, shape).
fn reference(dir: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor(name).unwrap();
    let values = match view.dtype() {
        safetensors::Dtype::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(view.data()),
        safetensors::Dtype::I64 => bytemuck::pod_collect_to_vec::<u8, i64>(view.data())
            .into_iter()
            .map(|x| x as f32)
            .collect(),
        other => panic!("{other:?}"),
    };
    (values, view.shape().to_vec())
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Indices of the k largest entries of each row of width `d`, sorted.
fn top_indices(values: &[f32], d: usize, k: usize) -> Vec<Vec<usize>> {
    values
        .chunks(d)
        .map(|row| {
            let mut idx: Vec<usize> = (0..d).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let mut top = idx[..k].to_vec();
            top.sort();
            top
        })
        .collect()
}

#[test]
fn every_family_matches_transformers_logits_and_block_outputs() {
    let device = Device::flex();
    let mut checked = Vec::new();
    let mut variants: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    variants.sort();
    assert!(
        variants.len() >= 6,
        "fixtures missing: run scripts/hf_reference.py"
    );
    for variant in variants {
        for step in ["step0", "step1000", "step2000"] {
            let dir = variant.join(step);
            let (family, cfg, model) = model::hf::load(&dir, 8, &device)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            let (ids, shape) = reference(&dir, "ids");
            let ids: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
            let tokens =
                Tensor::<2, Int>::from_data(TensorData::new(ids, [shape[0], shape[1]]), &device);
            let out = model.forward_with(
                tokens,
                ForwardInput {
                    capture_hidden: true,
                    ..Default::default()
                },
            );
            let what = format!("{} ({}) {step}", variant.display(), family.name());
            let (want, _) = reference(&dir, "logits");
            let got = out.logits.into_data().try_into_vec::<f32>().unwrap();
            let logit_diff = max_abs_diff(&got, &want);
            assert!(logit_diff <= 1e-4, "{what}: logits differ by {logit_diff}");
            for (layer, hidden) in out.hidden.into_iter().enumerate() {
                let (want, _) = reference(&dir, &format!("block.{layer}"));
                let got = hidden.into_data().try_into_vec::<f32>().unwrap();
                let diff = max_abs_diff(&got, &want);
                assert!(diff <= 1e-4, "{what}: block {layer} differs by {diff}");
                let k = cfg.topk_k;
                assert_eq!(
                    top_indices(&got, cfg.d_model, k),
                    top_indices(&want, cfg.d_model, k),
                    "{what}: block {layer}: top-{k} indices differ"
                );
                if cfg.is_topk_layer(layer) {
                    // A TopK block keeps exactly k entries per token.
                    assert!(
                        got.chunks(cfg.d_model).all(|row| row
                            .iter()
                            .filter(|v| **v != 0.0)
                            .count()
                            == k)
                    );
                }
            }
            eprintln!("{what}: logits within {logit_diff:.2e}");
            checked.push(what);
        }
    }
    assert_eq!(checked.len(), 18, "{checked:?}");
}

#[test]
fn generation_with_a_kv_cache_equals_the_full_forward_pass_in_every_family() {
    let device = Device::flex();
    for variant in [
        "gpt2",
        "gpt_neox",
        "gpt_neox-sequential-topk",
        "llama",
        "llama-tied-topk",
    ] {
        let dir = fixtures().join(variant).join("step1000");
        let (_, cfg, model) = model::hf::load(&dir, 8, &device).unwrap();
        let ids: Vec<i64> = (0..12).map(|i| ((i * 5 + 1) % 96) as i64).collect();
        let tensor = |ids: &[i64]| {
            Tensor::<2, Int>::from_data(TensorData::new(ids.to_vec(), [1, ids.len()]), &device)
        };
        let full = model
            .forward(tensor(&ids))
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let mut cache = model::KvCache::default();
        let mut incremental = model
            .forward_with(
                tensor(&ids[..8]),
                ForwardInput {
                    cache: Some(&mut cache),
                    ..Default::default()
                },
            )
            .logits
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        for i in 8..12 {
            let step = model.forward_with(
                tensor(&ids[i..i + 1]),
                ForwardInput {
                    cache: Some(&mut cache),
                    ..Default::default()
                },
            );
            incremental.extend(step.logits.into_data().try_into_vec::<f32>().unwrap());
        }
        let diff = max_abs_diff(&full, &incremental);
        assert!(
            diff <= 1e-4,
            "{variant}: cached generation differs by {diff} (vocab {})",
            cfg.vocab_size
        );
    }
}

/// A copy of one fixture revision, to damage.
fn copy_of(variant: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let from = fixtures().join(variant).join("step0");
    for e in std::fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    tmp
}

fn load_error(dir: &Path) -> String {
    match model::hf::load(dir, 8, &Device::flex()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, from: &str, to: &str) {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

#[test]
fn bad_model_folders_are_named_with_what_to_fix() {
    // A config whose shapes do not fit the weights: the tensor and both shapes.
    let dir = copy_of("gpt2");
    edit_config(dir.path(), "\"n_embd\": 32", "\"n_embd\": 48");
    let err = load_error(dir.path());
    assert!(
        err.contains("transformer.wte.weight")
            && err.contains("[96, 32]")
            && err.contains("[96, 48]"),
        "{err}"
    );

    // A truncated weights file.
    let dir = copy_of("llama");
    let weights = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains("model.safetensors") && err.contains("truncated"),
        "{err}"
    );

    // Sharded weights with a shard missing.
    let dir = copy_of("llama");
    std::fs::rename(
        dir.path().join("model.safetensors"),
        dir.path().join("model-00001-of-00002.safetensors"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        r#"{"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors", "lm_head.weight": "model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains("model-00002-of-00002.safetensors") && err.contains("missing shard"),
        "{err}"
    );

    // An unknown family, and an option the import does not implement.
    let dir = copy_of("gpt_neox");
    edit_config(
        dir.path(),
        "\"model_type\": \"gpt_neox\"",
        "\"model_type\": \"mamba\"",
    );
    let err = load_error(dir.path());
    assert!(
        err.contains("\"mamba\"") && err.contains("gpt_neox"),
        "{err}"
    );
    let dir = copy_of("llama");
    edit_config(dir.path(), "\"pretraining_tp\": 1", "\"pretraining_tp\": 2");
    assert!(load_error(dir.path()).contains("pretraining_tp"));

    // Weights the config does not announce (a bias on a bias-free Llama) are refused.
    let dir = copy_of("gpt_neox");
    edit_config(
        dir.path(),
        "\"model_type\": \"gpt_neox\"",
        "\"model_type\": \"gpt_neox\", \"attention_bias\": false",
    );
    assert!(load_error(dir.path()).contains("attention_bias"));

    // A revision folder without a step number in its name.
    let series = tempfile::tempdir().unwrap();
    let main = series.path().join("main");
    std::fs::create_dir(&main).unwrap();
    std::fs::copy(
        fixtures().join("gpt2/step0/config.json"),
        main.join("config.json"),
    )
    .unwrap();
    let err = model::hf::revisions(series.path()).unwrap_err().to_string();
    assert!(err.contains("main") && err.contains("step number"), "{err}");
}
