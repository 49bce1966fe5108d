use burn::nn::{LayerNorm, LayerNormConfig, RotaryEncoding};
use burn::prelude::*;

use crate::activation::TopK;
use crate::attention::CausalSelfAttention;
use crate::mlp::Mlp;

/// A pre-norm transformer block: `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))`, and in a TopK
/// block `x = TopK(x)`, so the block's output — the residual stream the next block reads — is
/// sparse.
#[derive(Module, Debug)]
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: CausalSelfAttention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
    /// `Some` in a TopK block, `None` in a dense one.
    pub topk: Option<TopK>,
}

impl Block {
    pub fn new(
        d_model: usize,
        n_heads: usize,
        d_ff: usize,
        topk: Option<TopK>,
        device: &Device,
    ) -> Self {
        Self {
            ln_1: LayerNormConfig::new(d_model)
                .with_epsilon(crate::fused::LAYER_NORM_EPSILON)
                .init(device),
            attn: CausalSelfAttention::new(d_model, n_heads, device),
            ln_2: LayerNormConfig::new(d_model)
                .with_epsilon(crate::fused::LAYER_NORM_EPSILON)
                .init(device),
            mlp: Mlp::new(d_model, d_ff, device),
            topk,
        }
    }

    /// # Shapes
    /// - x: `[B, T, d_model]` → `[B, T, d_model]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: Option<&RotaryEncoding>,
        start: usize,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
    ) -> Tensor<3> {
        let x = x.clone()
            + self
                .attn
                .forward(crate::fused::layer_norm(&self.ln_1, x), rope, start, cache);
        let x = x.clone() + self.mlp.forward(crate::fused::layer_norm(&self.ln_2, x));
        match &self.topk {
            Some(topk) => topk.forward(x),
            None => x,
        }
    }
}
