//! Float dtype casts shared by the model and training (mixed precision).

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};

/// Casts a tensor to f32 where it is not already (a no-op on the f32 path).
pub(crate) fn to_f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    to_dtype(x, DType::F32)
}

/// Casts a tensor to `dtype` where it differs.
pub(crate) fn to_dtype<const D: usize>(x: Tensor<D>, dtype: DType) -> Tensor<D> {
    if x.dtype() == dtype {
        x
    } else {
        x.cast(FloatDType::from(dtype))
    }
}
