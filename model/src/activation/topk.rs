//! The TopK activation of TopK LMs (arXiv 2506.21468):
//! `TopK(x) = x ⊙ 1[x ∈ top_k(x)]`, applied per token over the last (feature) axis.

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use serde::{Deserialize, Serialize};

/// What "largest" means when choosing the k kept entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TopKBy {
    /// The k largest signed values (the default: a neuron is "on" when it is large and positive).
    #[default]
    Value,
    /// The k largest magnitudes; kept entries keep their sign.
    Abs,
}

/// Keeps the `k` largest entries of the last axis and zeroes the rest.
///
/// Exactly `k` entries survive even with ties: the kept set is the positions returned by
/// `topk_with_indices`, which orders equal values by position (lower index first). Gradients
/// reach the kept entries unchanged and the dropped ones not at all, because the output is a
/// scatter of a gather of the input.
#[derive(Module, Debug)]
pub struct TopK {
    /// Entries kept per token.
    pub k: usize,
    /// Select by magnitude instead of signed value.
    pub by_abs: bool,
    /// Apply ReLU to the kept values (a kept negative value becomes zero).
    pub relu: bool,
}

impl TopK {
    /// A TopK activation keeping `k` entries chosen by `by`.
    pub fn new(k: usize, by: TopKBy, relu: bool) -> Self {
        Self {
            k,
            by_abs: by == TopKBy::Abs,
            relu,
        }
    }

    /// # Shapes
    /// - x: `[..., d]` with `k <= d`
    /// - output: `[..., d]`, with at most `k` non-zero entries along the last axis
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let d = x.dims()[D - 1];
        assert!(
            self.k <= d,
            "TopK k = {} exceeds the feature size {d}",
            self.k
        );
        if self.k == d && !self.relu {
            return x;
        }
        let scores = if self.by_abs {
            x.clone().abs()
        } else {
            x.clone()
        };
        let (_, idx) = scores.detach().topk_with_indices(self.k, D - 1);
        // The kept values come from `x` itself, so gradients reach exactly the kept entries.
        let kept = x.clone().gather(D - 1, idx.clone());
        let kept = if self.relu {
            burn::tensor::activation::relu(kept)
        } else {
            kept
        };
        x.zeros_like()
            .scatter(D - 1, idx, kept, IndexingUpdateOp::Add)
    }
}

/// The `k` entries of each token's hidden state that describe it as features: by magnitude in a
/// TopK layer (so exactly its kept, non-zero entries, even negative ones) or when `by_abs`;
/// otherwise by signed value (a dense layer read as if it had a TopK).
///
/// # Shapes
/// - h: `[..., d]` → (values, indices): `[..., k]`
pub fn top_entries<const D: usize>(
    h: Tensor<D>,
    k: usize,
    by_abs: bool,
) -> (Tensor<D>, Tensor<D, Int>) {
    let score = if by_abs { h.clone().abs() } else { h.clone() };
    let (_, idx) = score.topk_with_indices(k, D - 1);
    (h.gather(D - 1, idx.clone()), idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn rows(t: Tensor<2>) -> Vec<Vec<f32>> {
        let [n, d] = t.dims();
        let v = t
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        (0..n).map(|i| v[i * d..(i + 1) * d].to_vec()).collect()
    }

    #[test]
    fn keeps_exactly_the_k_largest_values_unchanged() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(
            TensorData::from([[0.5, -3.0, 2.0, 1.0, -0.1], [4.0, 3.0, -5.0, 0.0, 2.5]]),
            &device,
        );
        let y = rows(TopK::new(2, TopKBy::Value, false).forward(x.clone()));
        assert_eq!(y[0], vec![0.0, 0.0, 2.0, 1.0, 0.0]);
        assert_eq!(y[1], vec![4.0, 3.0, 0.0, 0.0, 0.0]);
        let y = rows(TopK::new(2, TopKBy::Abs, false).forward(x));
        assert_eq!(y[0], vec![0.0, -3.0, 2.0, 0.0, 0.0]);
        assert_eq!(y[1], vec![4.0, 0.0, -5.0, 0.0, 0.0]);
    }

    #[test]
    fn exactly_k_nonzeros_on_random_input_match_a_sort() {
        let device = Device::flex();
        device.seed(7);
        let x = Tensor::<3>::random(
            [4, 8, 64],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let k = 5;
        let y = TopK::new(k, TopKBy::Value, false).forward(x.clone());
        let xs = x.into_data().try_into_vec::<f32>().unwrap();
        let ys = y.into_data().try_into_vec::<f32>().unwrap();
        for (xr, yr) in xs.chunks(64).zip(ys.chunks(64)) {
            let mut sorted = xr.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let kept: Vec<f32> = yr.iter().copied().filter(|v| *v != 0.0).collect();
            assert_eq!(kept.len(), k);
            let mut kept_sorted = kept.clone();
            kept_sorted.sort_by(|a, b| b.total_cmp(a));
            assert_eq!(kept_sorted, sorted[..k].to_vec());
        }
    }

    #[test]
    fn ties_are_broken_by_position_and_keep_exactly_k() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::from([[1.0, 2.0, 2.0, 2.0, 0.0]]), &device);
        let a = rows(TopK::new(2, TopKBy::Value, false).forward(x.clone()));
        let b = rows(TopK::new(2, TopKBy::Value, false).forward(x));
        assert_eq!(a, b, "deterministic");
        assert_eq!(a[0].iter().filter(|v| **v != 0.0).count(), 2);
        assert_eq!(a[0], vec![0.0, 2.0, 2.0, 0.0, 0.0]);
    }

    #[test]
    fn relu_zeroes_kept_negatives() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::from([[-1.0, -2.0, 3.0, -4.0]]), &device);
        let y = rows(TopK::new(2, TopKBy::Value, true).forward(x));
        assert_eq!(y[0], vec![0.0, 0.0, 3.0, 0.0]);
    }

    #[test]
    fn gradient_is_identity_on_kept_entries_and_zero_elsewhere() {
        let device = Device::flex().autodiff();
        let values = [[0.3f32, -1.2, 2.0, 0.9, 1.5, -0.4]];
        let w = [[0.7f32, 1.1, -2.0, 0.5, 3.0, 0.25]];
        let x = Tensor::<2>::from_data(TensorData::from(values), &device).require_grad();
        let weights = Tensor::<2>::from_data(TensorData::from(w), &device);
        let topk = TopK::new(3, TopKBy::Value, false);
        let loss = (topk.forward(x.clone()) * weights).sum();
        let grads = loss.backward();
        let g = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();

        // Finite differences of the same function, computed independently in plain Rust.
        let f = |v: &[f32]| -> f32 {
            let mut idx: Vec<usize> = (0..v.len()).collect();
            idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
            idx[..3].iter().map(|&i| v[i] * w[0][i]).sum()
        };
        let eps = 1e-3f32;
        for i in 0..6 {
            let mut up = values[0];
            let mut down = values[0];
            up[i] += eps;
            down[i] -= eps;
            let fd = (f(&up) - f(&down)) / (2.0 * eps);
            assert!(
                (g[i] - fd).abs() < 1e-2,
                "grad[{i}] = {} vs finite difference {fd}",
                g[i]
            );
        }
        assert_eq!(g, vec![0.0, 0.0, -2.0, 0.5, 3.0, 0.0]);
    }
}
