//! Models trained elsewhere, in Hugging Face format: `config.json` and safetensors weights of
//! the GPT-2, GPT-NeoX (Pythia) and Llama families, read into this crate's [`Gpt`] so that
//! every stage treats them like its own. Weights are converted once at load time (transposed
//! to burn's `[in, out]`, GPT-NeoX's per-head interleaved QKV rows regrouped, Llama's separate
//! projections packed); the forward pass follows each family's options (norm, MLP, rotary,
//! parallel residual) through [`GptConfig`].

mod config;
mod series;
mod weights;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;

pub use config::{Family, read_config};
pub use series::{is_series, revisions, step_of};
pub use weights::TensorFiles;

use crate::config::GptConfig;
use crate::gpt::Gpt;
use crate::{Error, Result};

/// Whether `dir` looks like a Hugging Face model folder (a `config.json` with `model_type`).
pub fn is_model_folder(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("model_type").is_some())
}

/// Loads the model in `dir`. `default_k` is the k recorded for a dense model.
pub fn load(dir: &Path, default_k: usize, device: &Device) -> Result<(Family, GptConfig, Gpt)> {
    let (family, cfg) = read_config(&dir.join("config.json"), default_k)?;
    let files = TensorFiles::open(dir)?;
    let mut model = cfg.init(device);
    let reader = Reader {
        files: &files,
        device,
        used: RefCell::new(BTreeSet::new()),
    };
    match family {
        Family::Gpt2 => gpt2(&reader, &cfg, &mut model)?,
        Family::GptNeox => gpt_neox(&reader, &cfg, &mut model)?,
        Family::Llama => llama(&reader, &cfg, &mut model)?,
    }
    // A tensor nothing read is an option this crate does not implement (QK norms, biases
    // the config does not announce, ...): refused rather than silently ignored.
    let used = reader.used.borrow();
    let unused: Vec<&str> = files
        .names()
        .filter(|n| !used.contains(*n) && !is_buffer(n))
        .collect();
    if !unused.is_empty() {
        return Err(Error::import(
            dir,
            format!(
                "tensors the {} import does not use: {} (an option this project does not implement)",
                family.name(),
                unused
                    .iter()
                    .take(5)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok((family, cfg, model))
}

/// Constant buffers some exporters save beside the weights.
fn is_buffer(name: &str) -> bool {
    [
        "attn.bias",
        "attn.masked_bias",
        "attention.bias",
        "attention.masked_bias",
        "inv_freq",
    ]
    .iter()
    .any(|b| name.ends_with(b))
}

struct Reader<'a> {
    files: &'a TensorFiles,
    device: &'a Device,
    used: RefCell<BTreeSet<String>>,
}

impl Reader<'_> {
    fn get<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        self.used.borrow_mut().insert(name.to_owned());
        self.files.tensor(name, shape, self.device)
    }

    /// A `[out, in]` matrix (PyTorch's `nn.Linear`) as burn's `[in, out]`.
    fn linear_t(&self, name: &str, out: usize, inp: usize) -> Result<Tensor<2>> {
        Ok(self.get(name, [out, inp])?.transpose())
    }

    fn norm(&self, norm: &mut LayerNorm, prefix: &str, d: usize, bias: bool) -> Result<()> {
        norm.gamma = Param::from_tensor(self.get(&format!("{prefix}.weight"), [d])?);
        if bias {
            norm.beta = Some(Param::from_tensor(
                self.get(&format!("{prefix}.bias"), [d])?,
            ));
        }
        Ok(())
    }
}

fn set(linear: &mut Linear, weight: Tensor<2>, bias: Option<Tensor<1>>) {
    debug_assert_eq!(linear.weight.dims(), weight.dims(), "burn stores [in, out]");
    linear.weight = Param::from_tensor(weight);
    linear.bias = bias.map(Param::from_tensor);
}

fn gpt2(r: &Reader, cfg: &GptConfig, m: &mut Gpt) -> Result<()> {
    let p = if r.files.has("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    };
    let (d, f, v) = (cfg.d_model, cfg.d_ff, cfg.vocab_size);
    m.wte.weight = Param::from_tensor(r.get(&format!("{p}wte.weight"), [v, d])?);
    if let Some(wpe) = &mut m.wpe {
        wpe.weight = Param::from_tensor(r.get(&format!("{p}wpe.weight"), [cfg.block_size, d])?);
    }
    for (l, block) in m.blocks.iter_mut().enumerate() {
        let h = format!("{p}h.{l}");
        // Conv1D stores [in, out], as burn does.
        let conv = |name: &str, inp: usize, out: usize| -> Result<(Tensor<2>, Option<Tensor<1>>)> {
            Ok((
                r.get(&format!("{h}.{name}.weight"), [inp, out])?,
                Some(r.get(&format!("{h}.{name}.bias"), [out])?),
            ))
        };
        r.norm(&mut block.ln_1, &format!("{h}.ln_1"), d, true)?;
        r.norm(&mut block.ln_2, &format!("{h}.ln_2"), d, true)?;
        let (w, b) = conv("attn.c_attn", d, 3 * d)?;
        set(&mut block.attn.c_attn, w, b);
        let (w, b) = conv("attn.c_proj", d, d)?;
        set(&mut block.attn.c_proj, w, b);
        let (w, b) = conv("mlp.c_fc", d, f)?;
        set(&mut block.mlp.c_fc, w, b);
        let (w, b) = conv("mlp.c_proj", f, d)?;
        set(&mut block.mlp.c_proj, w, b);
    }
    r.norm(&mut m.ln_f, &format!("{p}ln_f"), d, true)?;
    if let Some(head) = &mut m.lm_head {
        set(head, r.linear_t("lm_head.weight", v, d)?, None);
    }
    Ok(())
}

fn gpt_neox(r: &Reader, cfg: &GptConfig, m: &mut Gpt) -> Result<()> {
    let (d, f, v) = (cfg.d_model, cfg.d_ff, cfg.vocab_size);
    let (nh, hs) = (cfg.n_heads, cfg.head_dim());
    m.wte.weight = Param::from_tensor(r.get("gpt_neox.embed_in.weight", [v, d])?);
    for (l, block) in m.blocks.iter_mut().enumerate() {
        let p = format!("gpt_neox.layers.{l}");
        r.norm(&mut block.ln_1, &format!("{p}.input_layernorm"), d, true)?;
        r.norm(
            &mut block.ln_2,
            &format!("{p}.post_attention_layernorm"),
            d,
            true,
        )?;
        // The fused QKV rows are grouped per head, (head, [q|k|v], head_dim): regroup them to
        // all queries, then all keys, then all values.
        let w: Tensor<2> = r.get(&format!("{p}.attention.query_key_value.weight"), [3 * d, d])?;
        let w = w
            .reshape([nh, 3, hs, d])
            .swap_dims(0, 1)
            .reshape([3 * d, d]);
        let b: Tensor<1> = r.get(&format!("{p}.attention.query_key_value.bias"), [3 * d])?;
        let b = b.reshape([nh, 3, hs]).swap_dims(0, 1).reshape([3 * d]);
        set(&mut block.attn.c_attn, w.transpose(), Some(b));
        let dense =
            |name: &str, out: usize, inp: usize| -> Result<(Tensor<2>, Option<Tensor<1>>)> {
                Ok((
                    r.linear_t(&format!("{p}.{name}.weight"), out, inp)?,
                    Some(r.get(&format!("{p}.{name}.bias"), [out])?),
                ))
            };
        let (w, b) = dense("attention.dense", d, d)?;
        set(&mut block.attn.c_proj, w, b);
        let (w, b) = dense("mlp.dense_h_to_4h", f, d)?;
        set(&mut block.mlp.c_fc, w, b);
        let (w, b) = dense("mlp.dense_4h_to_h", d, f)?;
        set(&mut block.mlp.c_proj, w, b);
    }
    r.norm(&mut m.ln_f, "gpt_neox.final_layer_norm", d, true)?;
    if let Some(head) = &mut m.lm_head {
        set(head, r.linear_t("embed_out.weight", v, d)?, None);
    }
    Ok(())
}

fn llama(r: &Reader, cfg: &GptConfig, m: &mut Gpt) -> Result<()> {
    let (d, f, v) = (cfg.d_model, cfg.d_ff, cfg.vocab_size);
    let kv = cfg.kv_heads() * cfg.head_dim();
    m.wte.weight = Param::from_tensor(r.get("model.embed_tokens.weight", [v, d])?);
    for (l, block) in m.blocks.iter_mut().enumerate() {
        let p = format!("model.layers.{l}");
        r.norm(&mut block.ln_1, &format!("{p}.input_layernorm"), d, false)?;
        r.norm(
            &mut block.ln_2,
            &format!("{p}.post_attention_layernorm"),
            d,
            false,
        )?;
        let proj = |name: &str, out: usize, inp: usize| -> Result<(Tensor<2>, Option<Tensor<1>>)> {
            let bias = if cfg.bias {
                Some(r.get(&format!("{p}.{name}.bias"), [out])?)
            } else {
                None
            };
            Ok((r.linear_t(&format!("{p}.{name}.weight"), out, inp)?, bias))
        };
        // Queries, keys and values packed side by side, as the attention reads them.
        let (q, qb) = proj("self_attn.q_proj", d, d)?;
        let (k, kb) = proj("self_attn.k_proj", kv, d)?;
        let (vv, vb) = proj("self_attn.v_proj", kv, d)?;
        let bias = match (qb, kb, vb) {
            (Some(q), Some(k), Some(v)) => Some(Tensor::cat(vec![q, k, v], 0)),
            _ => None,
        };
        set(&mut block.attn.c_attn, Tensor::cat(vec![q, k, vv], 1), bias);
        let (w, b) = proj("self_attn.o_proj", d, d)?;
        set(&mut block.attn.c_proj, w, b);
        let (w, b) = proj("mlp.up_proj", f, d)?;
        set(&mut block.mlp.c_fc, w, b);
        let (w, b) = proj("mlp.down_proj", d, f)?;
        set(&mut block.mlp.c_proj, w, b);
        let (w, b) = proj("mlp.gate_proj", f, d)?;
        if let Some(gate) = &mut block.mlp.gate {
            set(gate, w, b);
        }
    }
    r.norm(&mut m.ln_f, "model.norm", d, false)?;
    if let Some(head) = &mut m.lm_head {
        set(head, r.linear_t("lm_head.weight", v, d)?, None);
    }
    Ok(())
}
