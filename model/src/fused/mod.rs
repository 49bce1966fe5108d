//! The element-wise and row-wise work of a training step as single operations with their own
//! backward pass: GELU, the cross-entropy of the logits, causal attention and layer norm.
//!
//! On burn's CPU backend (flex) the stock versions cost a scalar libm call per element (erf,
//! exp) and chains of full-size temporaries (the loss's shift, exp, sum, log and gather; the
//! attention's scores, mask, softmax and head-splitting copies; layer norm's mean, variance and
//! scaling), each kept for autodiff: about half of a tiny-preset training step. Here each is one
//! pass of vectorised [`kernels`] (or [`attention`]) forward and one backward. Other backends
//! (wgpu) keep burn's own ops: the trait's default bodies compose them, so the results agree
//! within rounding.
//!
//! The mechanism is burn's backend extension: a backend trait, implemented for each backend,
//! with a hand-written backward pass for `Autodiff`, reached from a `Tensor` through `Dispatch`.

pub mod attention;
mod autodiff;
mod flex;
pub mod kernels;
mod stock;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::prelude::*;

/// The fused operations, one method per direction.
#[backend_extension(
    Flex,
    Autodiff,
    Cube: cfg(feature = "wgpu"),
    NdArray: cfg(feature = "ndarray")
)]
pub trait FusedOps: Backend {
    /// GELU, exact (erf) form.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu(x)
    }

    /// `grad` through GELU at `x`.
    fn fused_gelu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::gelu_backward(x, grad)
    }

    /// Cross-entropy of each row of `logits` (`[rows, vocab]`) against `targets` (`[rows]`):
    /// `[rows]` losses.
    fn fused_cross_entropy(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        stock::cross_entropy::<Self>(logits, targets)
    }

    /// The gradient of [`FusedOps::fused_cross_entropy`] with respect to the logits, given
    /// the gradient of each row's loss: `grad_row · (softmax(row) - onehot(target))`.
    fn fused_cross_entropy_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        stock::cross_entropy_backward::<Self>(logits, targets, grad)
    }

    /// Layer normalisation over the last dimension: `(x - mean) / √(var + eps) · gamma + beta`.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        Self::layer_norm(x, gamma, Some(beta), epsilon)
    }

    /// The gradients of [`FusedOps::fused_layer_norm`] with respect to `x`, `gamma` and
    /// `beta`, given the gradient of its output.
    fn fused_layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        stock::layer_norm_backward::<Self>(x, gamma, grad, epsilon)
    }

    /// Causal self-attention of the packed projection `qkv` (`[B, T, 3C]`: q, k, v side by
    /// side, each `heads` heads wide): `[B, T, C]`, heads side by side.
    fn fused_causal_attention(qkv: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        stock::causal_attention::<Self>(qkv, heads)
    }

    /// The gradient of [`FusedOps::fused_causal_attention`] with respect to `qkv`, given the
    /// gradient of its output.
    fn fused_causal_attention_backward(
        qkv: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self> {
        stock::causal_attention_backward::<Self>(qkv, grad, heads)
    }
}

#[cfg(feature = "wgpu")]
impl FusedOps for burn::backend::Cube {}

#[cfg(feature = "ndarray")]
impl FusedOps for burn::backend::NdArray {}

/// GELU (exact, erf form) of every element.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(Dispatch::fused_gelu(x.into_dispatch()))
}

/// The ε of every layer norm of the model (burn's default, set explicitly where the modules
/// are made so that [`layer_norm`] and the modules agree).
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

/// `norm` (a layer norm made with [`LAYER_NORM_EPSILON`] and a bias) applied to `x`.
pub fn layer_norm<const D: usize>(norm: &burn::nn::LayerNorm, x: Tensor<D>) -> Tensor<D> {
    let beta = norm
        .beta
        .as_ref()
        .expect("the model's layer norms have a bias");
    Tensor::from_dispatch(Dispatch::fused_layer_norm(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        beta.val().into_dispatch(),
        LAYER_NORM_EPSILON,
    ))
}

/// Causal self-attention from the packed projection `qkv` (`[B, T, 3C]`, q, k and v side by
/// side): `[B, T, C]`, the heads side by side, ready for the output projection.
pub fn causal_attention(qkv: Tensor<3>, heads: usize) -> Tensor<3> {
    Tensor::from_dispatch(Dispatch::fused_causal_attention(qkv.into_dispatch(), heads))
}

/// Cross-entropy of each row of `logits` (`[rows, vocab]`) against its target id: `[rows]`.
pub fn cross_entropy_rows(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    Tensor::from_dispatch(Dispatch::fused_cross_entropy(
        logits.into_dispatch(),
        targets.into_dispatch(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{TensorData, activation};

    /// Deterministic values in [-scale, scale).
    fn values(n: usize, seed: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 2_654_435_761 + seed * 40_503) % 10_007) as f32 / 10_007.0)
            .map(|u| (2.0 * u - 1.0) * scale)
            .collect()
    }

    fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(v, shape), device)
    }

    fn assert_close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>, tol: f32) {
        let floats = |t: Tensor<D>| t.into_data().try_into_vec::<f32>().expect("f32");
        let (a, b) = (floats(a), floats(b));
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= tol, "{what}[{i}]: {x} vs {y}");
        }
    }

    /// Value and input gradient of `f(x) · w` summed, for a fresh leaf `x`.
    fn value_and_grad<const D: usize>(
        f: impl Fn(Tensor<D>) -> Tensor<D>,
        x: &Tensor<D>,
        w: &Tensor<D>,
    ) -> (Tensor<D>, Tensor<D>) {
        let x = x.clone().require_grad();
        let y = f(x.clone());
        let grads = (y.clone() * w.clone()).sum().backward();
        (y.inner(), x.grad(&grads).expect("x is a leaf"))
    }

    #[test]
    fn fused_gelu_matches_burns_gelu_in_value_and_gradient() {
        let device = Device::flex().autodiff();
        let x = tensor(values(6 * 70, 1, 6.0), [6, 70], &device);
        let w = tensor(values(6 * 70, 2, 1.0), [6, 70], &device);
        let (y, dx) = value_and_grad(gelu, &x, &w);
        let (y_ref, dx_ref) = value_and_grad(activation::gelu, &x, &w);
        assert_close("gelu", y, y_ref, 2e-6);
        assert_close("d gelu", dx, dx_ref, 2e-6);
    }

    /// The cross-entropy as the model computed it before this module: log-softmax and gather.
    fn stock_rows(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
        let [rows, _] = logits.dims();
        let log_p = activation::log_softmax(logits, 1);
        log_p
            .gather(1, targets.reshape([rows, 1]))
            .reshape([rows])
            .neg()
    }

    #[test]
    fn fused_cross_entropy_matches_log_softmax_and_gather_in_value_and_gradient() {
        let device = Device::flex().autodiff();
        let (rows, vocab) = (12, 301);
        let ids: Vec<i64> = (0..rows as i64).map(|r| (r * 97) % vocab as i64).collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(ids, [rows]), &device);
        let logits = tensor(values(rows * vocab, 3, 8.0), [rows, vocab], &device);
        let weights = tensor(values(rows, 4, 1.0), [rows], &device);
        let run = |f: &dyn Fn(Tensor<2>) -> Tensor<1>| {
            let x = logits.clone().require_grad();
            let losses = f(x.clone());
            let grads = (losses.clone() * weights.clone()).sum().backward();
            (losses.inner(), x.grad(&grads).expect("leaf"))
        };
        let (loss, grad) = run(&|x| cross_entropy_rows(x, targets.clone()));
        let (loss_ref, grad_ref) = run(&|x| stock_rows(x, targets.clone()));
        assert_close("loss", loss, loss_ref, 2e-6);
        assert_close("d loss", grad, grad_ref, 1e-7);

        // A transposed (strided) view takes the composed path: the same results.
        let stored = logits.clone().transpose().into_data(); // [vocab, rows], contiguous
        let x = Tensor::<2>::from_data(stored, &device).require_grad();
        let losses = cross_entropy_rows(x.clone().transpose(), targets.clone());
        let grads = (losses.clone() * weights.clone()).sum().backward();
        let grad_of_view = x.grad(&grads).expect("leaf").transpose();
        let (loss, grad) = run(&|x| cross_entropy_rows(x, targets.clone()));
        assert_close("loss of a view", losses.inner(), loss, 2e-6);
        assert_close("d loss of a view", grad_of_view, grad, 1e-7);
    }

    /// Attention as the model computed it before this module: split the heads, burn's
    /// attention, merge the heads.
    fn stock_attention(qkv: Tensor<3>, heads: usize) -> Tensor<3> {
        let [b, t, c3] = qkv.dims();
        let c = c3 / 3;
        let part = |i: usize| {
            qkv.clone()
                .narrow(2, i * c, c)
                .reshape([b, t, heads, c / heads])
                .swap_dims(1, 2)
        };
        let options = burn::tensor::ops::AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: true,
        };
        let y = burn::tensor::module::attention(part(0), part(1), part(2), None, None, options);
        y.swap_dims(1, 2).reshape([b, t, c])
    }

    #[test]
    fn fused_attention_matches_burns_attention_in_value_and_gradient() {
        let device = Device::flex().autodiff();
        let (b, t, c, heads) = (3, 10, 16, 2);
        let qkv = tensor(values(b * t * 3 * c, 6, 2.0), [b, t, 3 * c], &device);
        let w = tensor(values(b * t * c, 7, 1.0), [b, t, c], &device);
        let run = |f: &dyn Fn(Tensor<3>) -> Tensor<3>, x: Tensor<3>| {
            let x = x.require_grad();
            let y = f(x.clone());
            let grads = (y.clone() * w.clone()).sum().backward();
            (y.inner(), x.grad(&grads).expect("leaf"))
        };
        let (y, dx) = run(&|x| causal_attention(x, heads), qkv.clone());
        let (y_ref, dx_ref) = run(&|x| stock_attention(x, heads), qkv.clone());
        assert_close("attention", y.clone(), y_ref, 1e-6);
        assert_close("d attention", dx.clone(), dx_ref, 1e-6);

        // A strided input takes the composed forward and backward (stock.rs): the same.
        let stored = qkv.clone().swap_dims(0, 1).into_data(); // [T, B, 3C]
        let x = Tensor::<3>::from_data(stored, &device).require_grad();
        let y_view = causal_attention(x.clone().swap_dims(0, 1), heads);
        let grads = (y_view.clone() * w.clone()).sum().backward();
        let dx_view = x.grad(&grads).expect("leaf").swap_dims(0, 1);
        assert_close("attention of a view", y_view.inner(), y, 1e-6);
        assert_close("d attention of a view", dx_view, dx, 1e-6);
    }

    #[test]
    fn fused_layer_norm_matches_burns_layer_norm_in_value_and_gradients() {
        use burn::module::Param;
        let device = Device::flex().autodiff();
        let (rows, d) = (6, 24);
        let mut norm = burn::nn::LayerNormConfig::new(d)
            .with_epsilon(LAYER_NORM_EPSILON)
            .init(&device);
        norm.gamma = Param::from_tensor(tensor(values(d, 8, 1.0), [d], &device).add_scalar(1.0));
        norm.beta = Some(Param::from_tensor(tensor(values(d, 9, 0.5), [d], &device)));
        let x = tensor(values(rows * d, 10, 3.0), [2, rows / 2, d], &device);
        let w = tensor(values(rows * d, 11, 1.0), [2, rows / 2, d], &device);
        let run = |f: &dyn Fn(Tensor<3>) -> Tensor<3>, x: Tensor<3>| {
            let x = x.require_grad();
            let y = f(x.clone());
            let grads = (y.clone() * w.clone()).sum().backward();
            let beta = norm.beta.as_ref().expect("bias");
            let (dg, db) = (norm.gamma.grad(&grads), beta.grad(&grads));
            (
                y.inner(),
                x.grad(&grads).expect("leaf"),
                dg.expect("gamma"),
                db.expect("beta"),
            )
        };
        let (y, dx, dg, db) = run(&|x| layer_norm(&norm, x), x.clone());
        let (y_ref, dx_ref, dg_ref, db_ref) = run(&|x| norm.forward(x), x.clone());
        assert_close("layer norm", y.clone(), y_ref, 2e-6);
        assert_close("d x", dx.clone(), dx_ref, 2e-5);
        assert_close("d gamma", dg.clone(), dg_ref, 2e-5);
        assert_close("d beta", db.clone(), db_ref, 2e-5);

        // A strided input takes the composed path: the same.
        let stored = x.clone().swap_dims(0, 1).into_data();
        let (y_view, dx_view, dg_view, db_view) = run(
            &|x| layer_norm(&norm, x.swap_dims(0, 1)),
            Tensor::from_data(stored, &device),
        );
        assert_close("layer norm of a view", y_view, y, 2e-6);
        assert_close("d x of a view", dx_view.swap_dims(0, 1), dx, 2e-5);
        assert_close("d gamma of a view", dg_view, dg, 2e-5);
        assert_close("d beta of a view", db_view, db, 2e-5);
    }

    #[test]
    fn fused_ops_run_without_autodiff_too() {
        let device = Device::flex();
        let x = tensor(values(50, 5, 3.0), [5, 10], &device);
        assert_close("gelu", gelu(x.clone()), activation::gelu(x.clone()), 2e-6);
        let targets =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 9, 3, 3, 7], [5]), &device);
        assert_close(
            "loss",
            cross_entropy_rows(x.clone(), targets.clone()),
            stock_rows(x, targets),
            2e-6,
        );
    }
}
