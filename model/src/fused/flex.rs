//! [`FusedOps`] on flex: contiguous f32 tensors go through [`kernels`] and [`attention`];
//! anything else (a half precision, a strided view) takes burn's own or the composed ops of
//! [`stock`], as the trait's defaults do.

use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, ModuleOps};
use burn::backend::{DType, Flex, TensorMetadata};
use burn::tensor::TensorData;

use super::attention::{self, Packed};
use super::{FusedOps, kernels, stock};

impl FusedOps for Flex {
    fn fused_gelu(x: FlexTensor) -> FlexTensor {
        let Some(xs) = f32s(&x) else {
            return Flex::gelu(x);
        };
        let mut out = vec![0.0; xs.len()];
        kernels::gelu(xs, &mut out);
        tensor(out, &x)
    }

    fn fused_gelu_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let (Some(xs), Some(gs)) = (f32s(&x), f32s(&grad)) else {
            return Flex::gelu_backward(x, grad);
        };
        let mut out = vec![0.0; xs.len()];
        kernels::gelu_backward(xs, gs, &mut out);
        tensor(out, &x)
    }

    fn fused_cross_entropy(logits: FlexTensor, targets: FlexTensor) -> FlexTensor {
        let (Some(xs), Some(ids)) = (f32s(&logits), indices(&targets)) else {
            return stock::cross_entropy::<Flex>(logits, targets);
        };
        let mut losses = vec![0.0; ids.len()];
        kernels::cross_entropy(xs, vocab(&logits), &ids, &mut losses);
        FlexTensor::from_data(TensorData::new(losses, [ids.len()]))
    }

    fn fused_cross_entropy_backward(
        logits: FlexTensor,
        targets: FlexTensor,
        grad: FlexTensor,
    ) -> FlexTensor {
        let (Some(xs), Some(ids), Some(gs)) = (f32s(&logits), indices(&targets), f32s(&grad))
        else {
            return stock::cross_entropy_backward::<Flex>(logits, targets, grad);
        };
        let mut out = vec![0.0; xs.len()];
        kernels::cross_entropy_backward(xs, vocab(&logits), &ids, gs, &mut out);
        tensor(out, &logits)
    }

    fn fused_layer_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let (Some(xs), Some(gs), Some(bs)) = (f32s(&x), f32s(&gamma), f32s(&beta)) else {
            return Flex::layer_norm(x, gamma, Some(beta), epsilon);
        };
        let mut out = vec![0.0; xs.len()];
        kernels::layer_norm(xs, gs, bs, epsilon as f32, &mut out);
        tensor(out, &x)
    }

    fn fused_layer_norm_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        grad: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (Some(xs), Some(gs), Some(dy)) = (f32s(&x), f32s(&gamma), f32s(&grad)) else {
            return stock::layer_norm_backward::<Flex>(x, gamma, grad, epsilon);
        };
        let mut dx = vec![0.0; xs.len()];
        let (mut d_gamma, mut d_beta) = (vec![0.0; gs.len()], vec![0.0; gs.len()]);
        kernels::layer_norm_backward(
            xs,
            gs,
            dy,
            epsilon as f32,
            &mut dx,
            &mut d_gamma,
            &mut d_beta,
        );
        (
            tensor(dx, &x),
            tensor(d_gamma, &gamma),
            tensor(d_beta, &gamma),
        )
    }

    fn fused_causal_attention(qkv: FlexTensor, heads: usize) -> FlexTensor {
        let Some(xs) = f32s(&qkv) else {
            return stock::causal_attention::<Flex>(qkv, heads);
        };
        let shape = packed(&qkv, heads);
        let mut out = vec![0.0; shape.batch * shape.time * shape.channels];
        attention::causal_attention(xs, shape, &mut out);
        FlexTensor::from_data(TensorData::new(
            out,
            [shape.batch, shape.time, shape.channels],
        ))
    }

    fn fused_causal_attention_backward(
        qkv: FlexTensor,
        grad: FlexTensor,
        heads: usize,
    ) -> FlexTensor {
        let (Some(xs), Some(gs)) = (f32s(&qkv), f32s(&grad)) else {
            return stock::causal_attention_backward::<Flex>(qkv, grad, heads);
        };
        let mut out = vec![0.0; xs.len()];
        attention::causal_attention_backward(xs, gs, packed(&qkv, heads), &mut out);
        tensor(out, &qkv)
    }
}

fn packed(qkv: &FlexTensor, heads: usize) -> Packed {
    let [batch, time, c3] = qkv.shape().dims();
    Packed {
        batch,
        time,
        channels: c3 / 3,
        heads,
    }
}

/// The elements of a contiguous f32 tensor, in order.
fn f32s(x: &FlexTensor) -> Option<&[f32]> {
    x.as_slice::<f32>()
}

/// Target ids as indices, from whichever integer type the tensor holds.
fn indices(ids: &FlexTensor) -> Option<Vec<usize>> {
    match ids.dtype() {
        DType::I64 => ids
            .as_slice::<i64>()
            .map(|s| s.iter().map(|&i| i as usize).collect()),
        DType::I32 => ids
            .as_slice::<i32>()
            .map(|s| s.iter().map(|&i| i as usize).collect()),
        _ => None,
    }
}

fn vocab(logits: &FlexTensor) -> usize {
    let shape = logits.shape();
    shape[shape.num_dims() - 1]
}

/// `values` in the shape of `like`.
fn tensor(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.shape()))
}
