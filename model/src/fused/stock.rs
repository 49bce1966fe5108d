//! The cross-entropy composed of burn's own backend ops: the default for backends without a
//! kernel of their own, and flex's path for tensors its kernels do not take.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::IndexingUpdateOp;

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
