use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::DType;

use crate::config::{GptConfig, MlpKind};
use crate::dtype::{to_dtype, to_f32};

/// GPT-2's initialisation: N(0, 0.02) for every weight matrix.
pub(crate) const INIT_STD: f64 = 0.02;

pub(crate) fn linear(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .with_bias(bias)
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

/// Position-wise feed-forward network: `c_proj(GELU(c_fc(x)))`, or with
/// [`MlpKind::SwiGlu`] `c_proj(SiLU(gate(x)) ⊙ c_fc(x))`.
#[derive(Module, Debug)]
pub struct Mlp {
    pub c_fc: Linear,
    pub c_proj: Linear,
    /// The gate of a SwiGLU MLP (`None` otherwise).
    pub gate: Option<Linear>,
}

impl Mlp {
    pub fn new(cfg: &GptConfig, device: &Device) -> Self {
        let (d, f, bias) = (cfg.d_model, cfg.d_ff, cfg.bias);
        Self {
            c_fc: linear(d, f, bias, device),
            c_proj: linear(f, d, bias, device),
            gate: (cfg.mlp == MlpKind::SwiGlu).then(|| linear(d, f, bias, device)),
        }
    }

    /// # Shapes
    /// - x: `[B, T, d_model]` → `[B, T, d_model]`
    pub fn forward(&self, x: Tensor<3>, kind: MlpKind) -> Tensor<3> {
        let [b, t, d_model] = x.dims();
        let x = x.reshape([b * t, d_model]);
        let h = match (kind, &self.gate) {
            (MlpKind::SwiGlu, Some(gate)) => {
                burn::tensor::activation::silu(apply(gate, x.clone())) * apply(&self.c_fc, x)
            }
            (MlpKind::GeluTanh, _) => gelu_tanh(apply(&self.c_fc, x)),
            _ => crate::fused::gelu(apply(&self.c_fc, x)),
        };
        apply(&self.c_proj, h).reshape([b, t, d_model])
    }
}

/// GELU's tanh approximation (GPT-2's `gelu_new`): ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
fn gelu_tanh(x: Tensor<2>) -> Tensor<2> {
    let inner = (x.clone() + x.clone().powi_scalar(3).mul_scalar(0.044_715))
        .mul_scalar((2.0 / std::f64::consts::PI).sqrt());
    x.clone().mul_scalar(0.5) * (inner.tanh().add_scalar(1.0))
}
