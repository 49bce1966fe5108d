//! The TopK activation of TopK LMs (arXiv 2506.21468):
//! `TopK(x) = x ⊙ 1[x ∈ top_k(x)]`, applied per token over the last (feature) axis.

use burn::prelude::*;
use burn::tensor::TensorData;
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

/// Where TopK chooses the kept entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TopKSelect {
    /// On the host when the model runs on the CPU, on the device otherwise.
    #[default]
    Auto,
    /// Copy the scores to the host, select in linear time there and multiply by a 0/1 mask.
    Host,
    /// A per-row threshold found by bisection with device ops, then the 0/1 mask, all on the
    /// device: no sort and no copy to the host.
    Device,
}

/// Keeps the `k` largest entries of the last axis and zeroes the rest.
///
/// Exactly `k` entries survive even with ties: equal values are ordered by position (lower
/// index first). Gradients reach the kept entries unchanged and the dropped ones not at all.
#[derive(Module, Debug)]
pub struct TopK {
    /// Entries kept per token.
    pub k: usize,
    /// Select by magnitude instead of signed value.
    pub by_abs: bool,
    /// Apply ReLU to the kept values (a kept negative value becomes zero).
    pub relu: bool,
    /// Choose on the host (true) or on the device.
    pub on_host: Option<bool>,
}

impl TopK {
    /// A TopK activation keeping `k` entries chosen by `by`, selected where `select` says.
    pub fn new(k: usize, by: TopKBy, relu: bool, select: TopKSelect) -> Self {
        Self {
            k,
            by_abs: by == TopKBy::Abs,
            relu,
            on_host: match select {
                TopKSelect::Auto => None,
                TopKSelect::Host => Some(true),
                TopKSelect::Device => Some(false),
            },
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
        let kept = if self.on_host.unwrap_or_else(|| on_cpu(&x)) {
            self.keep_by_mask(x)
        } else {
            self.keep_by_threshold(x)
        };
        if self.relu {
            burn::tensor::activation::relu(kept)
        } else {
            kept
        }
    }

    fn scores<const D: usize>(&self, x: &Tensor<D>) -> Tensor<D> {
        let scores = if self.by_abs {
            x.clone().abs()
        } else {
            x.clone()
        };
        scores.detach()
    }

    /// On the CPU: choose the kept entries of each row with a linear-time selection on the host
    /// and multiply by the 0/1 mask, whose gradient is the mask itself. A sort of every row, as
    /// `topk_with_indices` does, cost more than the rest of the activation.
    fn keep_by_mask<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let shape = x.shape();
        let d = x.dims()[D - 1];
        let scores = self
            .scores(&x)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 after convert");
        let mut mask = vec![0.0f32; scores.len()];
        let mut order: Vec<usize> = Vec::with_capacity(d);
        for (row, out) in scores.chunks(d).zip(mask.chunks_mut(d)) {
            for &i in select_top(row, self.k, &mut order).iter() {
                out[i] = 1.0;
            }
        }
        let mask = Tensor::<D>::from_data(TensorData::new(mask, shape), &x.device());
        x * mask
    }

    /// On other devices: per row, bisect for a threshold between the k-th and the (k+1)-th
    /// largest score, keep what is above it and, of the entries left inside the final interval
    /// (ties, or values closer than 2^-32 of the row's range), the first by position. With a
    /// sort of every row (burn's `topk_with_indices`) 8 training steps at d_model 1024 did not
    /// finish in 80 s on an H200; this takes 6.5% of a step there.
    fn keep_by_threshold<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let shape = x.shape();
        let d = x.dims()[D - 1];
        let n = shape.num_elements() / d;
        let scores: Tensor<2> = self.scores(&x).reshape([n, d]);
        // Invariant: at least k scores ≥ lo, fewer than k ≥ hi.
        let mut lo = scores.clone().min_dim(1);
        let max = scores.clone().max_dim(1);
        let mut hi = max.clone() + (max - lo.clone()) + 1.0;
        let at_least = |t: &Tensor<2>| {
            scores
                .clone()
                .greater_equal(t.clone().expand([n, d]))
                .int()
                .sum_dim(1)
        };
        for _ in 0..BISECTION_STEPS {
            let mid = (lo.clone() + hi.clone()) / 2.0;
            let enough = at_least(&mid).greater_equal_elem(self.k as i64);
            lo = lo.mask_where(enough.clone(), mid.clone());
            hi = mid.mask_where(enough, hi);
        }
        let above = scores.clone().greater_equal(hi.clone().expand([n, d]));
        let room = at_least(&hi).neg() + self.k as i64;
        let inside = scores
            .clone()
            .greater_equal(lo.expand([n, d]))
            .bool_and(above.clone().bool_not());
        let first = inside
            .clone()
            .int()
            .cumsum(1)
            .lower_equal(room.expand([n, d]));
        let mask = above.bool_or(inside.bool_and(first));
        x * mask.float().reshape(shape)
    }
}

/// Halvings of each row's score range in [`TopK::keep_by_threshold`]: 2^-32 of the range is
/// below f32's resolution for all but the smallest entries.
const BISECTION_STEPS: usize = 32;

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
    if on_cpu(&h) {
        top_entries_on_host(h, k, by_abs)
    } else {
        top_entries_on_device(h, k, by_abs)
    }
}

/// [`top_entries`] with burn's sort-based `topk_with_indices`, which stays on the device.
fn top_entries_on_device<const D: usize>(
    h: Tensor<D>,
    k: usize,
    by_abs: bool,
) -> (Tensor<D>, Tensor<D, Int>) {
    let score = if by_abs { h.clone().abs() } else { h.clone() };
    let (_, idx) = score.topk_with_indices(k, D - 1);
    (h.gather(D - 1, idx.clone()), idx)
}

/// [`top_entries`] on the host, larger score first and ties by lower index (a stable sort's
/// order), without sorting whole rows.
fn top_entries_on_host<const D: usize>(
    h: Tensor<D>,
    k: usize,
    by_abs: bool,
) -> (Tensor<D>, Tensor<D, Int>) {
    let mut dims = h.dims();
    let d = dims[D - 1];
    let device = h.device();
    let values = h
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 after convert");
    let scores: Vec<f32> = if by_abs {
        values.iter().map(|v| v.abs()).collect()
    } else {
        values.clone()
    };
    let rows = values.len() / d;
    let (mut kept, mut idx) = (Vec::with_capacity(rows * k), Vec::with_capacity(rows * k));
    let mut order: Vec<usize> = Vec::with_capacity(d);
    for (row, score) in values.chunks(d).zip(scores.chunks(d)) {
        let top = select_top(score, k, &mut order);
        top.sort_unstable_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
        kept.extend(top.iter().map(|&i| row[i]));
        idx.extend(top.iter().map(|&i| i as i64));
    }
    dims[D - 1] = k;
    (
        Tensor::from_data(TensorData::new(kept, dims), &device),
        Tensor::from_data(TensorData::new(idx, dims), &device),
    )
}

/// Whether `x` lives in host memory (burn's flex backend), where a selection on the host is
/// cheaper than burn's sort-based `topk_with_indices`.
fn on_cpu<const D: usize>(x: &Tensor<D>) -> bool {
    x.device().inner() == Device::flex()
}

/// The positions of the `k` largest `scores`, ties by lower position: the same set as a sort,
/// found in linear time. Returns them (unordered) as the start of `order`.
fn select_top<'a>(scores: &[f32], k: usize, order: &'a mut Vec<usize>) -> &'a mut [usize] {
    order.clear();
    order.extend(0..scores.len());
    if k == 0 {
        return &mut order[..0];
    }
    order.select_nth_unstable_by(k - 1, |&a, &b| {
        scores[b].total_cmp(&scores[a]).then(a.cmp(&b))
    });
    &mut order[..k]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard normal entries from the device's seeded generator.
    fn normal(shape: [usize; 3], device: &Device) -> Tensor<3> {
        Tensor::random(shape, burn::tensor::Distribution::Normal(0.0, 1.0), device)
    }

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
        let y = rows(TopK::new(2, TopKBy::Value, false, TopKSelect::Auto).forward(x.clone()));
        assert_eq!(y[0], vec![0.0, 0.0, 2.0, 1.0, 0.0]);
        assert_eq!(y[1], vec![4.0, 3.0, 0.0, 0.0, 0.0]);
        let y = rows(TopK::new(2, TopKBy::Abs, false, TopKSelect::Auto).forward(x));
        assert_eq!(y[0], vec![0.0, -3.0, 2.0, 0.0, 0.0]);
        assert_eq!(y[1], vec![4.0, 0.0, -5.0, 0.0, 0.0]);
    }

    #[test]
    fn exactly_k_nonzeros_on_random_input_match_a_sort() {
        let device = Device::flex();
        device.seed(7);
        let x = normal([4, 8, 64], &device);
        let k = 5;
        let xs = x.clone().into_data().try_into_vec::<f32>().unwrap();
        for select in [TopKSelect::Host, TopKSelect::Device] {
            let y = TopK::new(k, TopKBy::Value, false, select).forward(x.clone());
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
    }

    #[test]
    fn ties_are_broken_by_position_and_keep_exactly_k() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(
            TensorData::from([[1.0, 2.0, 2.0, 2.0, 0.0], [3.0, 3.0, 3.0, 3.0, 3.0]]),
            &device,
        );
        for select in [TopKSelect::Host, TopKSelect::Device] {
            let a = rows(TopK::new(2, TopKBy::Value, false, select).forward(x.clone()));
            let b = rows(TopK::new(2, TopKBy::Value, false, select).forward(x.clone()));
            assert_eq!(a, b, "deterministic");
            assert_eq!(a[0], vec![0.0, 2.0, 2.0, 0.0, 0.0], "{select:?}");
            assert_eq!(a[1], vec![3.0, 3.0, 0.0, 0.0, 0.0], "{select:?}");
        }
    }

    #[test]
    fn relu_zeroes_kept_negatives() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(TensorData::from([[-1.0, -2.0, 3.0, -4.0]]), &device);
        let y = rows(TopK::new(2, TopKBy::Value, true, TopKSelect::Auto).forward(x));
        assert_eq!(y[0], vec![0.0, 0.0, 3.0, 0.0]);
    }

    #[test]
    fn gradient_is_identity_on_kept_entries_and_zero_elsewhere() {
        let device = Device::flex().autodiff();
        let values = [[0.3f32, -1.2, 2.0, 0.9, 1.5, -0.4]];
        let w = [[0.7f32, 1.1, -2.0, 0.5, 3.0, 0.25]];
        let x = Tensor::<2>::from_data(TensorData::from(values), &device).require_grad();
        let weights = Tensor::<2>::from_data(TensorData::from(w), &device);
        let topk = TopK::new(3, TopKBy::Value, false, TopKSelect::Auto);
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

    #[test]
    fn host_and_device_selection_keep_the_same_entries_and_gradients() {
        let device = Device::flex().autodiff();
        device.seed(11);
        // Continuous values, and values rounded to tenths: ties, also at the k-th entry.
        let continuous = normal([3, 5, 32], &device);
        let rounded = (continuous.clone() * 10.0).round() / 10.0;
        let w = normal([3, 5, 32], &device);
        for (x, by, relu) in [
            (&continuous, TopKBy::Value, false),
            (&continuous, TopKBy::Abs, false),
            (&continuous, TopKBy::Value, true),
            (&rounded, TopKBy::Value, false),
            (&rounded, TopKBy::Abs, false),
        ] {
            let run = |select: TopKSelect| {
                let x = x.clone().detach().require_grad();
                let y = TopK::new(7, by, relu, select).forward(x.clone());
                let grads = (y.clone() * w.clone()).sum().backward();
                let g = x
                    .grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_into_vec::<f32>()
                    .unwrap();
                (y.into_data().try_into_vec::<f32>().unwrap(), g)
            };
            let host = run(TopKSelect::Host);
            assert_eq!(host, run(TopKSelect::Device), "{by:?}, relu {relu}");
            assert_eq!(host, run(TopKSelect::Auto), "{by:?}, relu {relu}");
        }
    }

    /// Per row, the (index, value) pairs in the order given.
    fn entries(k: usize, (v, i): (Tensor<3>, Tensor<3, Int>)) -> Vec<Vec<(i64, f32)>> {
        let v = v.into_data().try_into_vec::<f32>().unwrap();
        let i = i
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap();
        i.chunks(k)
            .zip(v.chunks(k))
            .map(|(i, v)| i.iter().copied().zip(v.iter().copied()).collect())
            .collect()
    }

    #[test]
    fn top_entries_on_the_host_match_the_device_sort() {
        let device = Device::flex();
        device.seed(13);
        let h = normal([2, 6, 40], &device);
        for by_abs in [false, true] {
            assert_eq!(
                entries(9, top_entries_on_host(h.clone(), 9, by_abs)),
                entries(9, top_entries_on_device(h.clone(), 9, by_abs)),
                "by_abs {by_abs}"
            );
        }
    }

    #[test]
    fn top_entries_on_the_host_break_ties_by_position() {
        // Rounded to tenths: many ties, also at the k-th entry, where burn's sort-based
        // `topk_with_indices` may keep either; the host keeps the lower index, as a stable sort.
        let device = Device::flex();
        device.seed(17);
        let h = (normal([2, 6, 40], &device) * 10.0).round() / 10.0;
        let values = h.clone().into_data().try_into_vec::<f32>().unwrap();
        for by_abs in [false, true] {
            let score = |v: f32| if by_abs { v.abs() } else { v };
            let expected: Vec<Vec<(i64, f32)>> = values
                .chunks(40)
                .map(|row| {
                    let mut idx: Vec<usize> = (0..40).collect();
                    idx.sort_by(|&a, &b| score(row[b]).total_cmp(&score(row[a])));
                    idx[..9].iter().map(|&i| (i as i64, row[i])).collect()
                })
                .collect();
            assert_eq!(
                entries(9, top_entries_on_host(h.clone(), 9, by_abs)),
                expected,
                "by_abs {by_abs}"
            );
        }
    }
}
