//! Next-token cross-entropy: the plain one, and the one training differentiates.

use burn::prelude::*;
use burn::tensor::TensorData;

/// Mean cross-entropy of logits `[B, T, V]` against targets `[B, T]`.
pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [b, t, v] = logits.dims();
    let logp = burn::tensor::activation::log_softmax(logits.reshape([b * t, v]), 1);
    let picked = logp.gather(1, targets.reshape([b * t, 1])); // [B*T, 1]
    picked.mean().neg()
}

/// A loss to differentiate: `backward` on `tensor` gives the gradient of the mean
/// cross-entropy, whose value is `value` (the tensor's own value may differ).
#[derive(Debug)]
pub struct TrainingLoss {
    pub value: f32,
    pub tensor: Tensor<1>,
}

/// The mean cross-entropy of logits `[B, T, V]` against targets `[B, T]`, to differentiate.
///
/// On the CPU its gradient with respect to the logits, (softmax − one-hot) / N, is computed on
/// the host in one pass over each row and attached as the weight of the linear surrogate
/// Σ logits ⊙ W, whose gradient is exactly W: burn's log-softmax, gather and their backward
/// pass go over the `[N, V]` logits about a dozen times and take every exponential twice.
/// Other devices keep [`cross_entropy`].
pub fn training_cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> TrainingLoss {
    if logits.device().inner() != Device::flex() {
        let tensor = cross_entropy(logits, targets);
        return TrainingLoss {
            value: tensor.clone().into_scalar::<f32>(),
            tensor,
        };
    }
    let [b, t, v] = logits.dims();
    let logits = logits.reshape([b * t, v]);
    let z = logits
        .clone()
        .detach()
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 after convert");
    let targets = targets
        .into_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .expect("i64 after convert");
    let (value, grad) = softmax_cross_entropy(&z, &targets, v);
    let w = Tensor::<2>::from_data(TensorData::new(grad, [b * t, v]), &logits.device());
    TrainingLoss {
        value,
        tensor: (logits * w).sum(),
    }
}

/// Mean cross-entropy of the rows of `logits` (`V` wide) against `targets`, and its gradient
/// with respect to the logits.
fn softmax_cross_entropy(logits: &[f32], targets: &[i64], v: usize) -> (f32, Vec<f32>) {
    let n = targets.len();
    let inv_n = 1.0 / n as f32;
    let mut grad = vec![0.0f32; logits.len()];
    let mut total = 0.0f64;
    for ((row, g), &target) in logits.chunks(v).zip(grad.chunks_mut(v)).zip(targets) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for (g, &x) in g.iter_mut().zip(row) {
            let e = (x - max).exp();
            *g = e;
            sum += e;
        }
        let scale = inv_n / sum;
        for g in g.iter_mut() {
            *g *= scale;
        }
        let target = target as usize;
        g[target] -= inv_n;
        // −log softmax(row)[target]
        total += (max + sum.ln() - row[target]) as f64;
    }
    ((total / n as f64) as f32, grad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn a_hand_worked_row() {
        // logits (0, ln 3): softmax (1/4, 3/4); target 1: loss −ln(3/4).
        let (loss, grad) = softmax_cross_entropy(&[0.0, 3f32.ln()], &[1], 2);
        assert!((loss - (4.0f32 / 3.0).ln()).abs() < 1e-6, "{loss}");
        assert!((grad[0] - 0.25).abs() < 1e-6 && (grad[1] + 0.25).abs() < 1e-6);
    }

    #[test]
    fn host_loss_and_gradient_equal_burns() {
        let device = Device::flex().autodiff();
        device.seed(9);
        let (b, t, v) = (3, 5, 40);
        let logits =
            Tensor::<3>::random([b, t, v], Distribution::Normal(0.0, 3.0), &device).require_grad();
        let targets =
            Tensor::<2, Int>::random([b, t], Distribution::Uniform(0.0, v as f64), &device);
        let grad_of = |loss: Tensor<1>| {
            let grads = loss.backward();
            logits
                .grad(&grads)
                .unwrap()
                .into_data()
                .into_vec::<f32>()
                .unwrap()
        };
        let reference = cross_entropy(logits.clone(), targets.clone());
        let expected_value = reference.clone().into_scalar::<f32>();
        let expected = grad_of(reference);
        let host = training_cross_entropy(logits.clone(), targets);
        assert!(
            (host.value - expected_value).abs() < 1e-5 * expected_value,
            "{} vs {expected_value}",
            host.value
        );
        let got = grad_of(host.tensor);
        let largest = expected.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() <= 1e-6 * largest.max(1e-3), "{g} vs {e}");
        }
    }
}
