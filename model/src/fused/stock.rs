//! The fused operations composed of burn's own backend ops: the default for backends without
//! a kernel of their own, and flex's path for tensors its kernels do not take.

use burn::backend::ops::AttentionModuleOptions;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::{IndexingUpdateOp, Slice, TensorData};

/// `[rows]` losses: `-log_softmax(logits)[row, target]`.
pub fn cross_entropy<B: Backend>(logits: FloatTensor<B>, targets: IntTensor<B>) -> FloatTensor<B> {
    let [rows, _] = logits.shape().dims();
    let log_p = B::log_softmax(logits, 1);
    let targets = B::int_reshape(targets, [rows, 1].into());
    let picked = B::float_gather(1, log_p, targets);
    B::float_neg(B::float_reshape(picked, [rows].into()))
}

/// `grad_row · (softmax(row) - onehot(target))`.
pub fn cross_entropy_backward<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let [rows, vocab] = logits.shape().dims();
    let p = B::softmax(logits, 1);
    let targets = B::int_reshape(targets, [rows, 1].into());
    let grad = B::float_reshape(grad, [rows, 1].into());
    let scaled = B::float_mul(p, B::float_expand(grad.clone(), [rows, vocab].into()));
    B::float_scatter(
        1,
        scaled,
        targets,
        B::float_neg(grad),
        IndexingUpdateOp::Add,
    )
}

/// q, k or v (`part` 0, 1, 2) of a packed `[B, T, 3C]` projection as `[B, heads, T, C/heads]`.
fn head_view<B: Backend>(qkv: &FloatTensor<B>, part: usize, heads: usize) -> FloatTensor<B> {
    let [b, t, c3] = qkv.shape().dims();
    let c = c3 / 3;
    let ranges = [
        Slice::from(0..b),
        Slice::from(0..t),
        Slice::from(part * c..(part + 1) * c),
    ];
    let x = B::float_slice(qkv.clone(), &ranges);
    B::float_swap_dims(B::float_reshape(x, [b, t, heads, c / heads].into()), 1, 2)
}

/// `[B, heads, T, hs]` back to `[B, T, heads · hs]`.
fn merge_heads<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let [b, h, t, hs] = x.shape().dims();
    B::float_reshape(B::float_swap_dims(x, 1, 2), [b, t, h * hs].into())
}

/// burn's attention on the heads of the packed projection.
pub fn causal_attention<B: Backend>(qkv: FloatTensor<B>, heads: usize) -> FloatTensor<B> {
    let [q, k, v] = [0, 1, 2].map(|part| head_view::<B>(&qkv, part, heads));
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    merge_heads::<B>(B::attention(q, k, v, None, None, options))
}

/// The softmax attention's gradient, from recomputed probabilities: with S = q kᵀ / √hs
/// (masked), P = softmax(S) and upstream dO: dV = Pᵀ dO, dP = dO Vᵀ,
/// dS = P ⊙ (dP - Σ_row P ⊙ dP), dQ = dS K / √hs, dK = dSᵀ Q / √hs.
pub fn causal_attention_backward<B: Backend>(
    qkv: FloatTensor<B>,
    grad: FloatTensor<B>,
    heads: usize,
) -> FloatTensor<B> {
    let [q, k, v] = [0, 1, 2].map(|part| head_view::<B>(&qkv, part, heads));
    let [b, h, t, hs] = q.shape().dims();
    let d_out = B::float_swap_dims(B::float_reshape(grad, [b, t, h, hs].into()), 1, 2);
    let scale = 1.0 / (hs as f32).sqrt();
    let mask: Vec<f32> = (0..t * t)
        .map(|n| {
            if n % t > n / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let mask = B::float_from_data(TensorData::new(mask, [1, 1, t, t]), &q.device());
    let scores = B::float_mul_scalar(
        B::float_matmul(q.clone(), B::float_swap_dims(k.clone(), 2, 3)),
        scale.into(),
    );
    let scores = B::float_add(scores, B::float_expand(mask, [b, h, t, t].into()));
    let p = B::softmax(scores, 3);
    let d_v = B::float_matmul(B::float_swap_dims(p.clone(), 2, 3), d_out.clone());
    let d_p = B::float_matmul(d_out, B::float_swap_dims(v, 2, 3));
    let row = B::float_sum_dim(B::float_mul(p.clone(), d_p.clone()), 3);
    let d_s = B::float_mul(
        p,
        B::float_sub(d_p, B::float_expand(row, [b, h, t, t].into())),
    );
    let d_q = B::float_mul_scalar(B::float_matmul(d_s.clone(), k), scale.into());
    let d_k = B::float_mul_scalar(
        B::float_matmul(B::float_swap_dims(d_s, 2, 3), q),
        scale.into(),
    );
    B::float_cat([d_q, d_k, d_v].map(merge_heads::<B>).into(), 2)
}

/// Layer norm's gradients from its definition: with x̂ the normalised rows, rstd = 1/√(var + ε)
/// and g = grad · gamma: dx = rstd (g - mean(g) - x̂ mean(g x̂)), dgamma = Σ grad x̂,
/// dbeta = Σ grad.
pub fn layer_norm_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    grad: FloatTensor<B>,
    epsilon: f64,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let d = shape[shape.num_dims() - 1];
    let rows = shape.num_elements() / d;
    let full = |t: FloatTensor<B>| B::float_expand(t, [rows, d].into());
    let x = B::float_reshape(x, [rows, d].into());
    let grad = B::float_reshape(grad, [rows, d].into());
    let mean = B::float_mean_dim(x.clone(), 1);
    let centered = B::float_sub(x, full(mean));
    let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), 1);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, epsilon.into())));
    let x_hat = B::float_mul(centered, full(rstd.clone()));
    let g = B::float_mul(grad.clone(), full(B::float_reshape(gamma, [1, d].into())));
    let g_mean = B::float_mean_dim(g.clone(), 1);
    let gx_mean = B::float_mean_dim(B::float_mul(g.clone(), x_hat.clone()), 1);
    let inner = B::float_sub(
        B::float_sub(g, full(g_mean)),
        B::float_mul(x_hat.clone(), full(gx_mean)),
    );
    let dx = B::float_reshape(B::float_mul(full(rstd), inner), shape);
    let d_gamma = B::float_reshape(
        B::float_sum_dim(B::float_mul(grad.clone(), x_hat), 0),
        [d].into(),
    );
    let d_beta = B::float_reshape(B::float_sum_dim(grad, 0), [d].into());
    (dx, d_gamma, d_beta)
}
