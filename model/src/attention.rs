use burn::nn::{Linear, RotaryEncoding};
use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use crate::config::{GptConfig, Positional};
use crate::mlp::{linear, per_token};
use crate::rotary::apply_rotary;

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

/// Causal multi-head self-attention (grouped-query when `n_kv_heads` < `n_heads`).
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// Query, key and value projections in one matrix: `[d_model, (n_heads + 2 ·
    /// n_kv_heads) · head_dim]`, all queries, then all keys, then all values.
    pub c_attn: Linear,
    /// Output projection.
    pub c_proj: Linear,
    pub n_heads: usize,
}

impl CausalSelfAttention {
    pub fn new(cfg: &GptConfig, device: &Device) -> Self {
        let d = cfg.d_model;
        let kv = cfg.kv_heads() * cfg.head_dim();
        Self {
            c_attn: linear(d, d + 2 * kv, cfg.bias, device),
            c_proj: linear(d, d, cfg.bias, device),
            n_heads: cfg.n_heads,
        }
    }

    /// # Shapes
    /// - x: `[B, T, C]` at absolute positions `start..start + T` → `[B, T, C]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        cfg: &GptConfig,
        rope: Option<&RotaryEncoding>,
        start: usize,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
    ) -> Tensor<3> {
        let [b, t, c] = x.dims();
        let (nh, hs, kvh) = (self.n_heads, c / self.n_heads, cfg.kv_heads());
        let qkv = per_token(&self.c_attn, x); // [B, T, C + 2 · kvh · hs]
        let plain = cfg.positional == Positional::Learned && kvh == nh;
        if plain && cache.is_none() {
            // Training and recording: one fused operation from the packed projection.
            return per_token(&self.c_proj, crate::fused::causal_attention(qkv, nh));
        }
        let heads = |offset: usize, n: usize| {
            qkv.clone()
                .narrow(2, offset, n * hs)
                .reshape([b, t, n, hs])
                .swap_dims(1, 2) // [B, n, T, hs]
        };
        let (mut q, mut k, mut v) = (heads(0, nh), heads(c, kvh), heads(c + kvh * hs, kvh));
        if let Some(rope) = rope {
            q = rope.apply(q, start);
            k = rope.apply(k, start);
        }
        if cfg.positional == Positional::Rotary {
            q = apply_rotary(q, start, cfg.rotary_dims(), cfg.rope_theta);
            k = apply_rotary(k, start, cfg.rotary_dims(), cfg.rope_theta);
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
        if kvh < nh {
            // Each key/value head serves n_heads / n_kv_heads consecutive query heads.
            let repeat = |x: Tensor<4>| {
                let [b, _, tk, _] = x.dims();
                x.unsqueeze_dim::<5>(2)
                    .repeat_dim(2, nh / kvh)
                    .reshape([b, nh, tk, hs])
            };
            (k, v) = (repeat(k), repeat(v));
        }
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
