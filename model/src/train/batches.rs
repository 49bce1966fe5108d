//! Training batches as a pure function of (seed, step), so a resumed run sees the same data.

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::SplitMix64;

/// Windows of `block_size + 1` tokens cut from one token stream.
#[derive(Debug, Clone, Copy)]
pub struct Batches<'a> {
    pub tokens: &'a [u32],
    pub block_size: usize,
    pub batch_size: usize,
}

impl Batches<'_> {
    /// Random windows for micro-batch `micro` of optimizer step `step`.
    ///
    /// # Shapes
    /// - returns (inputs, targets): `[batch_size, block_size]` each
    pub fn random(
        &self,
        seed: u64,
        step: usize,
        micro: usize,
        device: &Device,
    ) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let mut rng = SplitMix64::new(seed, ((step as u64) << 16) | micro as u64);
        let span = self.tokens.len() - self.block_size - 1;
        let starts: Vec<usize> = (0..self.batch_size).map(|_| rng.below(span + 1)).collect();
        self.windows(&starts, device)
    }

    /// The `i`-th batch of consecutive, non-overlapping windows (validation).
    pub fn sequential(&self, i: usize, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let n_windows = (self.tokens.len() - 1) / self.block_size;
        let starts: Vec<usize> = (0..self.batch_size)
            .map(|j| ((i * self.batch_size + j) % n_windows.max(1)) * self.block_size)
            .collect();
        self.windows(&starts, device)
    }

    /// Whether the stream is long enough for one window.
    pub fn fits(&self) -> bool {
        self.tokens.len() > self.block_size + 1
    }

    fn windows(&self, starts: &[usize], device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let t = self.block_size;
        let mut x = Vec::with_capacity(starts.len() * t);
        let mut y = Vec::with_capacity(starts.len() * t);
        for &s in starts {
            x.extend(self.tokens[s..s + t].iter().map(|&v| v as i64));
            y.extend(self.tokens[s + 1..s + t + 1].iter().map(|&v| v as i64));
        }
        let shape = [starts.len(), t];
        (
            Tensor::from_data(TensorData::new(x, shape), device),
            Tensor::from_data(TensorData::new(y, shape), device),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_batches_depend_only_on_seed_and_step() {
        let device = Device::flex();
        let tokens: Vec<u32> = (0..1000).collect();
        let b = Batches {
            tokens: &tokens,
            block_size: 8,
            batch_size: 4,
        };
        let (x1, y1) = b.random(9, 5, 0, &device);
        let (x2, _) = b.random(9, 5, 0, &device);
        let (x3, _) = b.random(9, 6, 0, &device);
        assert_eq!(x1.to_data(), x2.to_data());
        assert_ne!(x1.to_data(), x3.to_data());
        // Targets are inputs shifted by one.
        let x: Vec<i64> = x1.into_data().convert::<i64>().try_into_vec().unwrap();
        let y: Vec<i64> = y1.into_data().convert::<i64>().try_into_vec().unwrap();
        for (a, b) in x.iter().zip(&y) {
            assert_eq!(a + 1, *b);
        }
    }

    #[test]
    fn splitmix_below_is_in_range_and_roughly_uniform() {
        let mut rng = SplitMix64::new(1, 2);
        let mut counts = [0usize; 4];
        for _ in 0..40_000 {
            counts[rng.below(4)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }
}
