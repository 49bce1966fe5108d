//! Mixed-precision training: the matrix products of a step in bf16 or f16, everything else in
//! f32.
//!
//! Each step casts the weight matrices (linear and embedding weights) inside the autodiff
//! graph, so the backward pass casts their gradients back and AdamW sees f32 gradients of f32
//! weights. Products return f32 (`mlp::apply`), so the residual stream, the norms, the softmax
//! and the scores TopK selects by stay f32, like PyTorch's autocast (with every tensor in bf16, the
//! dense tiny model's gradient moved 0.75% from f32's; with only the products, 0.40%). Still,
//! rounding the products changes which neurons TopK keeps near the k-th entry: the TopK
//! model's bf16 gradient is 8% from f32's, though it trains as well. No loss scaling: bf16
//! has f32's exponent range; with f16 very small gradients can underflow. Checkpoints,
//! evaluation and recording always use the f32 weights.

use burn::module::{ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::FloatDType;
use serde::{Deserialize, Serialize};

use crate::{Error, Gpt, Result};

/// The float type a training step computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32 (the default; on a CPU the half types only add conversions).
    #[default]
    F32,
    /// bfloat16: f32's range, 8 bits of mantissa.
    Bf16,
    /// IEEE half: more mantissa than bf16, far less range.
    F16,
}

impl Precision {
    /// The dtype a step computes in, `None` for f32 (nothing to cast).
    pub fn compute_dtype(self) -> Option<FloatDType> {
        match self {
            Precision::F32 => None,
            Precision::Bf16 => Some(FloatDType::BF16),
            Precision::F16 => Some(FloatDType::F16),
        }
    }

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// Rejects a precision the device cannot compute in (e.g. bf16 on many Vulkan adapters).
    pub fn check(self, device: &Device) -> Result<()> {
        match self.compute_dtype() {
            Some(dtype) if !device.supports_dtype(dtype) => Err(Error::Config(format!(
                "`precision` = \"{}\": this device ({device:?}) cannot compute in {}; \
                 use \"f32\"{}",
                self.name(),
                self.name(),
                if self == Precision::Bf16 {
                    " or \"f16\""
                } else {
                    ""
                }
            ))),
            _ => Ok(()),
        }
    }
}

/// The model whose matrix products compute in `dtype`, each weight matrix a tracked cast of
/// the f32 one: gradients taken through it land on the f32 parameters.
pub fn compute_copy(model: &Gpt, dtype: FloatDType) -> Gpt {
    model.clone().map(&mut CastFloats(dtype))
}

struct CastFloats(FloatDType);

impl ModuleMapper for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        // Matrices only: biases and norm gains are added, not multiplied, and stay f32.
        if D != 2 {
            return param;
        }
        let dtype = self.0;
        param.map(|w| w.cast(dtype))
    }
}
