//! The model's shape. Names follow GPT-2/nanoGPT and the TopK LM paper (`topk_k`, `n_nontopk`).

use serde::{Deserialize, Serialize};

use crate::activation::{TopKBy, TopKSelect};
use crate::{Error, Result};

/// How token positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Positional {
    /// A learned position embedding added to the token embedding (GPT-2).
    #[default]
    Learned,
    /// Rotary position embedding applied to queries and keys (burn's, on interleaved pairs).
    Rope,
    /// Rotary position embedding as Hugging Face models apply it (GPT-NeoX, Llama): the first
    /// `rotary_fraction` of each head's dimensions, its two halves rotated together.
    Rotary,
}

/// The normalisation before attention, before the MLP and after the last block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    /// Layer norm with gain and bias (GPT-2, GPT-NeoX).
    #[default]
    Layer,
    /// RMS norm with a gain only (Llama).
    Rms,
}

/// The MLP's non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MlpKind {
    /// `c_proj(GELU(c_fc(x)))` with the exact (erf) GELU (this project, GPT-NeoX).
    #[default]
    Gelu,
    /// The same with GELU's tanh approximation (GPT-2's `gelu_new`).
    GeluTanh,
    /// `c_proj(SiLU(gate(x)) ⊙ c_fc(x))` (Llama).
    #[serde(rename = "swiglu")]
    SwiGlu,
}

fn default_norm_eps() -> f64 {
    1e-5
}

fn default_true() -> bool {
    true
}

fn default_rotary_fraction() -> f64 {
    1.0
}

fn default_rope_theta() -> f64 {
    10_000.0
}

/// Named model sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Trains end to end in minutes on 2 CPU cores.
    Tiny,
    /// A larger CPU model (tens of minutes).
    Small,
    /// The paper's depth (24 layers); needs a GPU.
    Paper,
}

/// Shape of a GPT-style TopK language model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    /// Vocabulary size (set from the tokenizer).
    pub vocab_size: usize,
    /// Longest context, in tokens.
    pub block_size: usize,
    /// Width of the residual stream; TopK neurons are its coordinates.
    pub d_model: usize,
    /// Attention heads per block; `d_model` must be divisible by it.
    pub n_heads: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Hidden width of each MLP.
    pub d_ff: usize,
    /// Entries kept per token by each TopK block (paper: `topk-k`).
    pub topk_k: usize,
    /// Final blocks left dense (paper: `n-nontopk`). `n_layers` gives the dense baseline.
    pub n_nontopk: usize,
    /// What "largest" means for TopK.
    #[serde(default)]
    pub topk_by: TopKBy,
    /// Apply ReLU to the kept entries.
    #[serde(default)]
    pub topk_relu: bool,
    /// Where TopK chooses the kept entries (the result is the same up to ties).
    #[serde(default)]
    pub topk_select: TopKSelect,
    /// Position encoding.
    #[serde(default)]
    pub positional: Positional,
    /// Share the token embedding with the unembedding.
    #[serde(default)]
    pub tie_embeddings: bool,
    /// The norm, and its ε.
    #[serde(default)]
    pub norm: NormKind,
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    #[serde(default)]
    pub mlp: MlpKind,
    /// Biases on the attention and MLP projections.
    #[serde(default = "default_true")]
    pub bias: bool,
    /// Key/value heads (grouped-query attention); 0: one per query head.
    #[serde(default)]
    pub n_kv_heads: usize,
    /// Share of each head's dimensions that `Positional::Rotary` rotates.
    #[serde(default = "default_rotary_fraction")]
    pub rotary_fraction: f64,
    /// Base of the rotary frequencies.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// `x + attn(ln_1(x)) + mlp(ln_2(x))` (GPT-NeoX) instead of one after the other.
    #[serde(default)]
    pub parallel_residual: bool,
    /// A bias on the (untied) unembedding: this project's models have one, Hugging Face
    /// families do not.
    #[serde(default = "default_true")]
    pub lm_head_bias: bool,
}

impl GptConfig {
    /// The default preset: d_model 128, 4 layers (3 TopK + 1 dense), k = 32 (a quarter of the
    /// residual stream: at this width k = 16 cost 29% in perplexity, k = 32 13%).
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            block_size: 64,
            d_model: 128,
            n_heads: 4,
            n_layers: 4,
            d_ff: 512,
            topk_k: 32,
            n_nontopk: 1,
            topk_by: TopKBy::Value,
            topk_relu: false,
            topk_select: TopKSelect::Auto,
            positional: Positional::Learned,
            tie_embeddings: false,
            norm: NormKind::Layer,
            norm_eps: default_norm_eps(),
            mlp: MlpKind::Gelu,
            bias: true,
            n_kv_heads: 0,
            rotary_fraction: 1.0,
            rope_theta: default_rope_theta(),
            parallel_residual: false,
            lm_head_bias: true,
        }
    }

    /// The model of unit tests and examples: d_model 32, 3 layers (2 TopK + 1 dense), k = 8,
    /// 2 heads, context 16; fast enough to train a few steps in milliseconds. Tests state
    /// what they change with struct update syntax (`GptConfig { topk_k: 4, ..micro(v) }`).
    pub fn micro(vocab_size: usize) -> Self {
        Self {
            block_size: 16,
            d_model: 32,
            n_heads: 2,
            n_layers: 3,
            d_ff: 64,
            topk_k: 8,
            n_nontopk: 1,
            ..Self::tiny(vocab_size)
        }
    }

    /// d_model 256, 6 layers (4 TopK + 2 dense), k = 32.
    pub fn small(vocab_size: usize) -> Self {
        Self {
            block_size: 128,
            d_model: 256,
            n_heads: 8,
            n_layers: 6,
            d_ff: 1024,
            topk_k: 32,
            n_nontopk: 2,
            ..Self::tiny(vocab_size)
        }
    }

    /// The paper's depth: 24 layers, the last 4 dense (about 1B parameters at d_model 2048).
    pub fn paper(vocab_size: usize) -> Self {
        Self {
            block_size: 1024,
            d_model: 2048,
            n_heads: 16,
            n_layers: 24,
            d_ff: 8192,
            topk_k: 64,
            n_nontopk: 4,
            ..Self::tiny(vocab_size)
        }
    }

    /// The config of a preset.
    pub fn preset(preset: Preset, vocab_size: usize) -> Self {
        match preset {
            Preset::Tiny => Self::tiny(vocab_size),
            Preset::Small => Self::small(vocab_size),
            Preset::Paper => Self::paper(vocab_size),
        }
    }

    /// The same shape with every block dense: the baseline TopK models are compared against.
    pub fn dense(&self) -> Self {
        Self {
            n_nontopk: self.n_layers,
            ..self.clone()
        }
    }

    /// Number of leading TopK blocks.
    pub fn n_topk_layers(&self) -> usize {
        self.n_layers - self.n_nontopk.min(self.n_layers)
    }

    /// Whether block `layer` ends in TopK.
    pub fn is_topk_layer(&self, layer: usize) -> bool {
        layer < self.n_topk_layers()
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// Key/value heads (equal to `n_heads` without grouped-query attention).
    pub fn kv_heads(&self) -> usize {
        if self.n_kv_heads == 0 {
            self.n_heads
        } else {
            self.n_kv_heads
        }
    }

    /// Dimensions of each head that `Positional::Rotary` rotates (even).
    pub fn rotary_dims(&self) -> usize {
        ((self.head_dim() as f64 * self.rotary_fraction) as usize) & !1
    }

    /// Rejects impossible shapes, naming the key and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let fail = |key: &str, value: usize, allowed: String| {
            Err(Error::Config(format!("`{key}` = {value}: {allowed}")))
        };
        let positive = [
            ("vocab_size", self.vocab_size),
            ("block_size", self.block_size),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_layers", self.n_layers),
            ("d_ff", self.d_ff),
            ("topk_k", self.topk_k),
        ];
        for (key, value) in positive {
            if value == 0 {
                return fail(key, value, "must be at least 1".into());
            }
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return fail(
                "n_heads",
                self.n_heads,
                format!("must divide d_model = {}", self.d_model),
            );
        }
        if self.topk_k > self.d_model {
            return fail(
                "topk_k",
                self.topk_k,
                format!("must be at most d_model = {}", self.d_model),
            );
        }
        if self.n_nontopk > self.n_layers {
            return fail(
                "n_nontopk",
                self.n_nontopk,
                format!("must be at most n_layers = {}", self.n_layers),
            );
        }
        if !self.n_heads.is_multiple_of(self.kv_heads()) {
            return fail(
                "n_kv_heads",
                self.kv_heads(),
                format!("must divide n_heads = {}", self.n_heads),
            );
        }
        if !(0.0..=1.0).contains(&self.rotary_fraction) {
            return Err(Error::Config(format!(
                "`rotary_fraction` = {}: must be between 0 and 1",
                self.rotary_fraction
            )));
        }
        if self.d_model > u16::MAX as usize + 1 {
            return fail(
                "d_model",
                self.d_model,
                "must be at most 65536 (neuron ids are stored as u16)".into(),
            );
        }
        Ok(())
    }

    /// Parameters of the model built from this config.
    pub fn n_params(&self) -> usize {
        let (d, f, v) = (self.d_model, self.d_ff, self.vocab_size);
        let b = self.bias as usize;
        let norm = if self.norm == NormKind::Layer {
            2 * d
        } else {
            d
        };
        let qkv = d + 2 * self.kv_heads() * self.head_dim();
        let mlp_in = if self.mlp == MlpKind::SwiGlu { 2 } else { 1 } * (d * f + b * f);
        let per_block = 2 * norm + (d * qkv + b * qkv) + (d * d + b * d) + mlp_in + (f * d + b * d);
        let pos = if self.positional == Positional::Learned {
            self.block_size * d
        } else {
            0
        };
        let unembed = if self.tie_embeddings {
            0
        } else {
            d * v + self.lm_head_bias as usize * v
        };
        v * d + pos + self.n_layers * per_block + norm + unembed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_params_counts_the_parameters_of_every_family_s_model() {
        let device = burn::tensor::Device::flex();
        let llama = GptConfig {
            norm: NormKind::Rms,
            mlp: MlpKind::SwiGlu,
            bias: false,
            n_kv_heads: 1,
            positional: Positional::Rotary,
            lm_head_bias: false,
            ..GptConfig::micro(50)
        };
        let neox = GptConfig {
            positional: Positional::Rotary,
            parallel_residual: true,
            lm_head_bias: false,
            ..GptConfig::micro(50)
        };
        let gpt2 = GptConfig {
            tie_embeddings: true,
            ..GptConfig::micro(50)
        };
        for cfg in [GptConfig::tiny(100), llama, neox, gpt2] {
            use burn::module::Module;
            assert_eq!(cfg.n_params(), cfg.init(&device).num_params(), "{cfg:?}");
        }
    }

    #[test]
    fn presets_are_valid() {
        for p in [Preset::Tiny, Preset::Small, Preset::Paper] {
            GptConfig::preset(p, 4096).validate().unwrap();
        }
    }

    #[test]
    fn impossible_values_name_their_key() {
        let base = GptConfig::tiny(100);
        let cases = [
            (
                GptConfig {
                    topk_k: 129,
                    ..base.clone()
                },
                "topk_k",
            ),
            (
                GptConfig {
                    n_layers: 0,
                    ..base.clone()
                },
                "n_layers",
            ),
            (
                GptConfig {
                    n_nontopk: 5,
                    ..base.clone()
                },
                "n_nontopk",
            ),
            (
                GptConfig {
                    n_heads: 3,
                    ..base.clone()
                },
                "n_heads",
            ),
        ];
        for (cfg, key) in cases {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{err}");
        }
    }

    #[test]
    fn dense_baseline_has_no_topk_layer() {
        let cfg = GptConfig::tiny(100);
        assert_eq!(cfg.n_topk_layers(), 3);
        assert!(cfg.is_topk_layer(2) && !cfg.is_topk_layer(3));
        assert_eq!(cfg.dense().n_topk_layers(), 0);
    }
}
