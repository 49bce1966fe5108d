//! `config.json` of a Hugging Face model folder → this crate's [`GptConfig`], per family
//! (`model_type`), refusing options the model does not implement.

use std::path::Path;

use serde_json::{Map, Value};

use crate::config::{GptConfig, MlpKind, NormKind, Positional};
use crate::{Error, Result};

/// The architectures this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Gpt2,
    GptNeox,
    Llama,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Gpt2 => "gpt2",
            Family::GptNeox => "gpt_neox",
            Family::Llama => "llama",
        }
    }
}

/// Reads one key of `config.json` under any of its spellings (newer `transformers` versions
/// renamed some, and moved the rotary ones into `rope_parameters`).
struct Keys<'a> {
    path: &'a Path,
    map: &'a Map<String, Value>,
}

impl Keys<'_> {
    fn find(&self, names: &[&str]) -> Option<&Value> {
        let rope = self.map.get("rope_parameters").and_then(Value::as_object);
        names.iter().find_map(|n| {
            self.map
                .get(*n)
                .filter(|v| !v.is_null())
                .or_else(|| rope.and_then(|r| r.get(*n)).filter(|v| !v.is_null()))
        })
    }

    fn usize(&self, names: &[&str]) -> Result<usize> {
        self.opt_usize(names)?.ok_or_else(|| {
            Error::import(
                self.path,
                format!("no `{}` (the family needs it)", names[0]),
            )
        })
    }

    fn opt_usize(&self, names: &[&str]) -> Result<Option<usize>> {
        match self.find(names) {
            None => Ok(None),
            Some(v) => v.as_u64().map(|x| Some(x as usize)).ok_or_else(|| {
                Error::import(
                    self.path,
                    format!("`{}` = {v} is not a whole number", names[0]),
                )
            }),
        }
    }

    fn f64_or(&self, names: &[&str], default: f64) -> Result<f64> {
        match self.find(names) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| {
                Error::import(self.path, format!("`{}` = {v} is not a number", names[0]))
            }),
        }
    }

    fn bool_or(&self, names: &[&str], default: bool) -> bool {
        self.find(names).and_then(Value::as_bool).unwrap_or(default)
    }

    fn str(&self, names: &[&str]) -> Option<&str> {
        self.find(names).and_then(Value::as_str)
    }

    /// Refuses an option set to anything but its neutral value.
    fn refuse(&self, name: &str, neutral: &[Value]) -> Result<()> {
        match self.map.get(name) {
            Some(v) if !neutral.contains(v) => Err(Error::import(
                self.path,
                format!(
                    "`{name}` = {v} is not supported (only {neutral:?}); the import would compute something else"
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// The family and shape of the model in `config.json`. `default_k` is the k recorded for a
/// dense model (a TopK model names its own: `topk_k`, `n_nontopk`).
pub fn read_config(path: &Path, default_k: usize) -> Result<(Family, GptConfig)> {
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    let value: Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })?;
    let map = value
        .as_object()
        .ok_or_else(|| Error::import(path, "not a JSON object"))?;
    let keys = Keys { path, map };
    let model_type = keys.str(&["model_type"]).unwrap_or("");
    let (family, mut cfg) = match model_type {
        "gpt2" => (Family::Gpt2, gpt2(&keys)?),
        "gpt_neox" => (Family::GptNeox, gpt_neox(&keys)?),
        "llama" => (Family::Llama, llama(&keys)?),
        other => {
            return Err(Error::import(
                path,
                format!(
                    "model_type {other:?} is not supported; supported: gpt2, gpt_neox (Pythia), llama (SmolLM and look-alikes)"
                ),
            ));
        }
    };
    // A TopK LM trained in this family names k and how many final blocks stay dense.
    match keys.opt_usize(&["topk_k", "topk"])? {
        Some(k) => {
            cfg.topk_k = k;
            cfg.n_nontopk = keys.opt_usize(&["n_nontopk"])?.unwrap_or(0);
        }
        None => {
            cfg.topk_k = default_k.min(cfg.d_model);
            cfg.n_nontopk = cfg.n_layers;
        }
    }
    cfg.validate()
        .map_err(|e| Error::import(path, e.to_string()))?;
    Ok((family, cfg))
}

fn base(
    keys: &Keys,
    d: usize,
    layers: usize,
    heads: usize,
    ff: usize,
    ctx: usize,
) -> Result<GptConfig> {
    Ok(GptConfig {
        vocab_size: keys.usize(&["vocab_size"])?,
        block_size: ctx,
        d_model: d,
        n_heads: heads,
        n_layers: layers,
        d_ff: ff,
        topk_k: 1,
        n_nontopk: layers,
        lm_head_bias: false,
        ..GptConfig::tiny(1)
    })
}

fn gelu(keys: &Keys, name: &str) -> Result<MlpKind> {
    match keys.str(&[name]).unwrap_or("gelu") {
        "gelu" => Ok(MlpKind::Gelu),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(MlpKind::GeluTanh),
        other => Err(Error::import(
            keys.path,
            format!("`{name}` = {other:?} is not supported (gelu, gelu_new, gelu_pytorch_tanh)"),
        )),
    }
}

fn gpt2(keys: &Keys) -> Result<GptConfig> {
    keys.refuse("add_cross_attention", &[Value::Bool(false)])?;
    keys.refuse("scale_attn_by_inverse_layer_idx", &[Value::Bool(false)])?;
    keys.refuse("scale_attn_weights", &[Value::Bool(true)])?;
    let d = keys.usize(&["n_embd", "hidden_size"])?;
    let ff = keys.opt_usize(&["n_inner"])?.unwrap_or(4 * d);
    let mut cfg = base(
        keys,
        d,
        keys.usize(&["n_layer", "num_hidden_layers"])?,
        keys.usize(&["n_head", "num_attention_heads"])?,
        ff,
        keys.usize(&["n_positions", "n_ctx", "max_position_embeddings"])?,
    )?;
    cfg.norm_eps = keys.f64_or(&["layer_norm_epsilon"], 1e-5)?;
    cfg.mlp = gelu(keys, "activation_function")?;
    cfg.tie_embeddings = keys.bool_or(&["tie_word_embeddings"], true);
    Ok(cfg)
}

fn gpt_neox(keys: &Keys) -> Result<GptConfig> {
    keys.refuse("rope_scaling", &[Value::Null])?;
    let d = keys.usize(&["hidden_size"])?;
    let mut cfg = base(
        keys,
        d,
        keys.usize(&["num_hidden_layers"])?,
        keys.usize(&["num_attention_heads"])?,
        keys.usize(&["intermediate_size"])?,
        keys.usize(&["max_position_embeddings"])?,
    )?;
    cfg.norm_eps = keys.f64_or(&["layer_norm_eps"], 1e-5)?;
    cfg.mlp = gelu(keys, "hidden_act")?;
    cfg.positional = Positional::Rotary;
    cfg.rotary_fraction = keys.f64_or(&["partial_rotary_factor", "rotary_pct"], 1.0)?;
    cfg.rope_theta = keys.f64_or(&["rope_theta", "rotary_emb_base"], 10_000.0)?;
    cfg.parallel_residual = keys.bool_or(&["use_parallel_residual"], true);
    // The MLP always has biases in this family: an attention without them is not supported.
    keys.refuse("attention_bias", &[Value::Bool(true)])?;
    cfg.tie_embeddings = keys.bool_or(&["tie_word_embeddings"], false);
    Ok(cfg)
}

fn llama(keys: &Keys) -> Result<GptConfig> {
    keys.refuse("rope_scaling", &[Value::Null])?;
    keys.refuse("pretraining_tp", &[Value::from(1)])?;
    if let Some(kind) = keys.str(&["rope_type"]).filter(|t| *t != "default") {
        return Err(Error::import(
            keys.path,
            format!("rope_type {kind:?} is not supported (only \"default\")"),
        ));
    }
    if keys.str(&["hidden_act"]).unwrap_or("silu") != "silu" {
        return Err(Error::import(
            keys.path,
            "hidden_act must be \"silu\" (SwiGLU)",
        ));
    }
    let attention_bias = keys.bool_or(&["attention_bias"], false);
    if keys.bool_or(&["mlp_bias"], false) != attention_bias {
        return Err(Error::import(
            keys.path,
            "attention_bias and mlp_bias differ; only both on or both off is supported",
        ));
    }
    let d = keys.usize(&["hidden_size"])?;
    let heads = keys.usize(&["num_attention_heads"])?;
    if let Some(hd) = keys.opt_usize(&["head_dim"])?.filter(|&hd| hd * heads != d) {
        return Err(Error::import(
            keys.path,
            format!("head_dim = {hd} with {heads} heads is not hidden_size = {d}; not supported"),
        ));
    }
    let mut cfg = base(
        keys,
        d,
        keys.usize(&["num_hidden_layers"])?,
        heads,
        keys.usize(&["intermediate_size"])?,
        keys.usize(&["max_position_embeddings"])?,
    )?;
    cfg.norm = NormKind::Rms;
    cfg.norm_eps = keys.f64_or(&["rms_norm_eps"], 1e-6)?;
    cfg.mlp = MlpKind::SwiGlu;
    cfg.bias = attention_bias;
    cfg.n_kv_heads = keys.opt_usize(&["num_key_value_heads"])?.unwrap_or(0);
    cfg.positional = Positional::Rotary;
    cfg.rope_theta = keys.f64_or(&["rope_theta"], 10_000.0)?;
    cfg.tie_embeddings = keys.bool_or(&["tie_word_embeddings"], false);
    Ok(cfg)
}
