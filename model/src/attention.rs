use burn::nn::{Linear, RotaryEncoding};
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::mlp::{linear, per_token};

/// Keys and values of earlier positions, so generation computes each position once.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// `[B, n_heads, T_past, head_dim]` per block.
    pub(crate) layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
}

impl KvCache {
    /// Positions already cached.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |(k, _)| k.dims()[2])
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Causal multi-head self-attention.
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// Query, key and value projections in one matrix.
    pub c_attn: Linear,
    /// Output projection.
    pub c_proj: Linear,
    pub n_heads: usize,
}

impl CausalSelfAttention {
    pub fn new(d_model: usize, n_heads: usize, device: &Device) -> Self {
        Self {
            c_attn: linear(d_model, 3 * d_model, device),
            c_proj: linear(d_model, d_model, device),
            n_heads,
        }
    }

    /// # Shapes
    /// - x: `[B, T, C]` at absolute positions `start..start + T` → `[B, T, C]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: Option<&RotaryEncoding>,
        start: usize,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
    ) -> Tensor<3> {
        let [b, t, c] = x.dims();
        let (nh, hs) = (self.n_heads, c / self.n_heads);
        let qkv = per_token(&self.c_attn, x); // [B, T, 3C]
        if rope.is_none() && cache.is_none() {
            // Training and recording: one fused operation from the packed projection.
            return per_token(&self.c_proj, crate::fused::causal_attention(qkv, nh));
        }
        let heads = |i: usize| {
            qkv.clone()
                .narrow(2, i * c, c)
                .reshape([b, t, nh, hs])
                .swap_dims(1, 2) // [B, nh, T, hs]
        };
        let (mut q, mut k, mut v) = (heads(0), heads(1), heads(2));
        if let Some(rope) = rope {
            q = rope.apply(q, start);
            k = rope.apply(k, start);
        }
        let mut causal = true;
        if let Some(slot) = cache {
            if let Some((k_past, v_past)) = slot.take() {
                k = Tensor::cat(vec![k_past, k], 2);
                v = Tensor::cat(vec![v_past, v], 2);
                // A single new query may see every cached key; longer chunks need the mask.
                causal = t > 1;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        assert!(
            causal || t == 1,
            "with a KV cache, feed one token at a time after the prompt"
        );
        let options = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: causal,
        };
        let y = attention(q, k, v, None, None, options); // [B, nh, T, hs]
        let y = y.swap_dims(1, 2).reshape([b, t, c]);
        per_token(&self.c_proj, y)
    }
}
