use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;

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
        let x = self.c_fc.forward(x);
        let x = burn::tensor::activation::gelu(x);
        self.c_proj.forward(x)
    }
}
