use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::DType;

use crate::dtype::{to_dtype, to_f32};

/// GPT-2's initialisation: N(0, 0.02) for every weight matrix.
pub(crate) const INIT_STD: f64 = 0.02;

pub(crate) fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: INIT_STD,
        })
        .init(device)
}

/// `linear` applied to every token at once, as one `[B·T, d_in]` matrix product.
///
/// burn keeps `[B, T, d_in]` inputs as a batched product when T is a multiple of its tile size
/// (a GPU choice); on the CPU one tall product is faster, and its weight gradient needs no
/// reduction over the batch.
pub(crate) fn per_token(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [b, t, d_in] = x.dims();
    let y = apply(linear, x.reshape([b * t, d_in]));
    let d_out = y.dims()[1];
    y.reshape([b, t, d_out])
}

/// `linear` on `[N, d_in]` rows. In a half-precision training step (see
/// [`crate::train::Precision`]) the weight is bf16 or f16: the product is taken in that type
/// and returned in f32, so the residual stream, the norms and TopK's selection stay f32.
pub(crate) fn apply(linear: &Linear, x: Tensor<2>) -> Tensor<2> {
    let weight = linear.weight.val();
    if weight.dtype() == DType::F32 {
        return linear.forward(x);
    }
    let y = to_f32(to_dtype(x, weight.dtype()).matmul(weight));
    match &linear.bias {
        Some(bias) => y + bias.val().unsqueeze(),
        None => y,
    }
}

/// Position-wise feed-forward network: `c_proj(GELU(c_fc(x)))`.
#[derive(Module, Debug)]
pub struct Mlp {
    pub c_fc: Linear,
    pub c_proj: Linear,
}

impl Mlp {
    pub fn new(d_model: usize, d_ff: usize, device: &Device) -> Self {
        Self {
            c_fc: linear(d_model, d_ff, device),
            c_proj: linear(d_ff, d_model, device),
        }
    }

    /// # Shapes
    /// - x: `[B, T, d_model]` → `[B, T, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d_model] = x.dims();
        let x = apply(&self.c_fc, x.reshape([b * t, d_model]));
        let x = crate::fused::gelu(x);
        apply(&self.c_proj, x).reshape([b, t, d_model])
    }
}
