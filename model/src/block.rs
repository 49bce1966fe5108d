use burn::nn::{LayerNorm, LayerNormConfig, RotaryEncoding};
use burn::prelude::*;

use crate::activation::TopK;
use crate::attention::CausalSelfAttention;
use crate::config::{GptConfig, NormKind};
use crate::mlp::Mlp;

/// A pre-norm transformer block: `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))` (or, with a
/// parallel residual, `x = x + attn(ln_1(x)) + mlp(ln_2(x))`), and in a TopK block
/// `x = TopK(x)`, so the block's output — the residual stream the next block reads — is sparse.
#[derive(Module, Debug)]
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: CausalSelfAttention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
    /// `Some` in a TopK block, `None` in a dense one.
    pub topk: Option<TopK>,
}

/// A norm of the model: layer norm (gain and bias) or RMS norm (gain only, kept in the
/// layer norm's `gamma`).
pub(crate) fn norm_module(cfg: &GptConfig, device: &Device) -> LayerNorm {
    LayerNormConfig::new(cfg.d_model)
        .with_epsilon(cfg.norm_eps)
        .with_bias(cfg.norm == NormKind::Layer)
        .init(device)
}

/// Applies a norm made by [`norm_module`].
pub(crate) fn apply_norm<const D: usize>(
    norm: &LayerNorm,
    cfg: &GptConfig,
    x: Tensor<D>,
) -> Tensor<D> {
    match cfg.norm {
        NormKind::Layer if cfg.norm_eps == crate::fused::LAYER_NORM_EPSILON => {
            crate::fused::layer_norm(norm, x)
        }
        NormKind::Layer => norm.forward(x),
        NormKind::Rms => {
            let rms = x
                .clone()
                .powi_scalar(2)
                .mean_dim(D - 1)
                .add_scalar(cfg.norm_eps)
                .sqrt();
            x / rms * norm.gamma.val().unsqueeze()
        }
    }
}

impl Block {
    pub fn new(cfg: &GptConfig, topk: Option<TopK>, device: &Device) -> Self {
        Self {
            ln_1: norm_module(cfg, device),
            attn: CausalSelfAttention::new(cfg, device),
            ln_2: norm_module(cfg, device),
            mlp: Mlp::new(cfg, device),
            topk,
        }
    }

    /// # Shapes
    /// - x: `[B, T, d_model]` → `[B, T, d_model]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        cfg: &GptConfig,
        rope: Option<&RotaryEncoding>,
        start: usize,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
    ) -> Tensor<3> {
        let attn = self.attn.forward(
            apply_norm(&self.ln_1, cfg, x.clone()),
            cfg,
            rope,
            start,
            cache,
        );
        let x = if cfg.parallel_residual {
            let mlp = self
                .mlp
                .forward(apply_norm(&self.ln_2, cfg, x.clone()), cfg.mlp);
            x + attn + mlp
        } else {
            let x = x + attn;
            x.clone() + self.mlp.forward(apply_norm(&self.ln_2, cfg, x), cfg.mlp)
        };
        match &self.topk {
            Some(topk) => topk.forward(x),
            None => x,
        }
    }
}
