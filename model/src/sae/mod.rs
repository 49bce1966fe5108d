//! A TopK sparse autoencoder (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"),
//! the post-hoc baseline a TopK LM is compared with: trained after the fact on a dense model's
//! residual stream, its latents are features whose order and identity depend on the run.
//!
//! ```text
//! z     = TopK(W_enc (s·x − b_pre) + b_enc)        s: fixed input scale
//! x̂     = (z W_dec + b_pre) / s                    rows of W_dec have unit norm
//! loss  = ‖s·x − s·x̂‖² / ‖s·x − mean‖²  +  α · AuxK
//! ```
//! TopK uses the same op as the TopK LM (signed value, no ReLU), so exactly `k` latents are
//! active per token and the two kinds of features are read the same way.

mod io;
mod train;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use serde::{Deserialize, Serialize};

pub use io::{load_sae, sae_safetensors_bytes, save_sae};
pub use train::{SaeProgress, SaeTrainingConfig, TrainedSae, train_sae, train_sae_from};

use crate::SplitMix64;

/// Shape of one SAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaeConfig {
    /// Width of the hidden state it reads (the LM's `d_model`).
    pub d_in: usize,
    /// Number of latents (expansion factor × `d_in`).
    pub d_sae: usize,
    /// Active latents per token (the TopK LM's k, so both have the same L0).
    pub k: usize,
}

impl SaeConfig {
    /// Rejects shapes TopK cannot use.
    pub fn validate(&self) -> crate::Result<()> {
        if self.d_in == 0 || self.d_sae == 0 {
            return Err(crate::Error::Config(
                "SAE widths must be at least 1".to_owned(),
            ));
        }
        if self.k == 0 || self.k > self.d_sae {
            return Err(crate::Error::Config(format!(
                "SAE k = {} must be between 1 and the number of latents ({})",
                self.k, self.d_sae
            )));
        }
        if self.d_sae > u16::MAX as usize + 1 {
            return Err(crate::Error::Config(format!(
                "SAE with {} latents: the activations table stores latent ids as u16 (at most 65536)",
                self.d_sae
            )));
        }
        Ok(())
    }

    /// A new SAE: decoder rows drawn uniformly on the unit sphere from `seed`, the encoder its
    /// transpose (Gao et al.'s initialisation), biases zero, input scale 1.
    pub fn init(&self, seed: u64, device: &Device) -> Sae {
        let mut rng = SplitMix64::new(seed, 0x5AE);
        let mut w_dec: Vec<f32> = (0..self.d_sae * self.d_in)
            .map(|_| standard_normal(&mut rng))
            .collect();
        for row in w_dec.chunks_mut(self.d_in) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            row.iter_mut().for_each(|v| *v /= norm);
        }
        let w_enc = transpose(&w_dec, self.d_sae, self.d_in);
        let w_dec = Tensor::<2>::from_data(
            burn::tensor::TensorData::new(w_dec, [self.d_sae, self.d_in]),
            device,
        );
        let w_enc = Tensor::<2>::from_data(
            burn::tensor::TensorData::new(w_enc, [self.d_in, self.d_sae]),
            device,
        );
        Sae {
            w_enc: Param::from_tensor(w_enc),
            b_enc: Param::from_tensor(Tensor::zeros([self.d_sae], device)),
            w_dec: Param::from_tensor(w_dec),
            b_pre: Param::from_tensor(Tensor::zeros([self.d_in], device)),
            k: self.k,
            input_scale: 1.0,
        }
    }
}

/// A row-major `rows × cols` matrix transposed into a new contiguous buffer (a transposed view
/// would take other matmul kernels than the same weights loaded from disk).
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| m[r * cols + c]))
        .collect()
}

/// A standard normal sample (Box–Muller), so initialisation depends only on the seed and not
/// on the backend's global generator.
fn standard_normal(rng: &mut SplitMix64) -> f32 {
    let u1 = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// A TopK sparse autoencoder.
#[derive(Module, Debug)]
pub struct Sae {
    /// `[d_in, d_sae]`
    pub w_enc: Param<Tensor<2>>,
    /// `[d_sae]`
    pub b_enc: Param<Tensor<1>>,
    /// `[d_sae, d_in]`, unit-norm rows: latent i's direction in the (scaled) residual stream.
    pub w_dec: Param<Tensor<2>>,
    /// `[d_in]`, subtracted before encoding and added back after decoding.
    pub b_pre: Param<Tensor<1>>,
    /// Active latents per token.
    pub k: usize,
    /// Fixed factor that brings inputs to mean squared norm `d_in` (set from the data before
    /// training), so one learning rate suits every layer and checkpoint.
    pub input_scale: f32,
}

/// The active latents of a batch of hidden states.
#[derive(Debug, Clone)]
pub struct Latents {
    /// `[N, k]` activation of each active latent.
    pub values: Tensor<2>,
    /// `[N, k]` its index.
    pub indices: Tensor<2, Int>,
    /// `[N, d_sae]` encoder pre-activations (the AuxK loss picks dead latents from them).
    pub pre: Tensor<2>,
}

impl Sae {
    /// The shape of this SAE.
    pub fn config(&self) -> SaeConfig {
        let [d_sae, d_in] = self.w_dec.dims();
        SaeConfig {
            d_in,
            d_sae,
            k: self.k,
        }
    }

    /// Encodes hidden states: the k largest pre-activations per token (ties by position).
    ///
    /// # Shapes
    /// - x: `[N, d_in]` (unscaled)
    pub fn encode(&self, x: Tensor<2>) -> Latents {
        let centred = x.mul_scalar(self.input_scale) - self.b_pre.val().unsqueeze::<2>();
        let pre = centred.matmul(self.w_enc.val()) + self.b_enc.val().unsqueeze::<2>();
        let (_, indices) = crate::top_entries(pre.clone().detach(), self.k, false);
        // Gathered from `pre`, so gradients reach exactly the active latents.
        let values = pre.clone().gather(1, indices.clone());
        Latents {
            values,
            indices,
            pre,
        }
    }

    /// `Σ_j values_j · W_dec[indices_j]` in the scaled space, without `b_pre`. The latents are
    /// scattered into a dense `[N, d_sae]` code and multiplied by W_dec: on CPU backends a
    /// matmul and its backward are several times faster than gathering k rows per token and
    /// scatter-adding their gradients (measured by `model/examples/sae_ops.rs`).
    ///
    /// # Shapes
    /// - values, indices: `[N, m]` → `[N, d_in]`
    pub fn decode_sparse(&self, values: Tensor<2>, indices: Tensor<2, Int>) -> Tensor<2> {
        let [n, _] = values.dims();
        let d_sae = self.w_dec.dims()[0];
        let code = Tensor::<2>::zeros([n, d_sae], &values.device()).scatter(
            1,
            indices,
            values,
            IndexingUpdateOp::Add,
        );
        code.matmul(self.w_dec.val())
    }

    /// Reconstruction in the scaled space (what the loss compares with `s·x`).
    pub fn reconstruct_scaled(&self, latents: &Latents) -> Tensor<2> {
        self.decode_sparse(latents.values.clone(), latents.indices.clone())
            + self.b_pre.val().unsqueeze::<2>()
    }

    /// Encodes and decodes: `x̂` in the input's own units.
    ///
    /// # Shapes
    /// - x: `[N, d_in]` → `[N, d_in]`
    pub fn reconstruct(&self, x: Tensor<2>) -> Tensor<2> {
        let latents = self.encode(x);
        self.reconstruct_scaled(&latents)
            .div_scalar(self.input_scale)
    }

    /// Same, for a `[B, T, d_in]` block output (the LM's hidden state).
    pub fn reconstruct_hidden(&self, h: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = h.dims();
        self.reconstruct(h.reshape([b * t, d])).reshape([b, t, d])
    }

    /// Projects the decoder rows back onto the unit sphere (after each optimizer step).
    pub fn normalize_decoder(mut self) -> Self {
        self.w_dec = self.w_dec.map(|w| {
            let w = w.detach();
            let norms = (w.clone() * w.clone()).sum_dim(1).sqrt().clamp_min(1e-12);
            // A fresh leaf, so the optimizer keeps tracking it under the same parameter id.
            (w / norms).detach().require_grad()
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn vecs(t: Tensor<2>) -> Vec<Vec<f32>> {
        let [n, d] = t.dims();
        let v = t.into_data().try_into_vec::<f32>().unwrap();
        (0..n).map(|i| v[i * d..(i + 1) * d].to_vec()).collect()
    }

    #[test]
    fn exactly_k_latents_and_sparse_decode_equals_dense_product() {
        let device = Device::flex();
        let cfg = SaeConfig {
            d_in: 6,
            d_sae: 20,
            k: 3,
        };
        let sae = cfg.init(9, &device);
        let x = Tensor::<2>::from_data(
            TensorData::new(
                (0..24).map(|i| ((i * 37) % 11) as f32 - 5.0).collect(),
                [4, 6],
            ),
            &device,
        );
        let z = sae.encode(x);
        let idx = z
            .indices
            .clone()
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap();
        let pre = vecs(z.pre.clone());
        let values = vecs(z.values.clone());
        for (row, p) in pre.iter().enumerate() {
            let mut chosen: Vec<i64> = idx[row * 3..row * 3 + 3].to_vec();
            chosen.sort();
            chosen.dedup();
            assert_eq!(chosen.len(), 3, "three distinct latents");
            // They are the three largest pre-activations, computed by sorting here.
            let mut order: Vec<usize> = (0..20).collect();
            order.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
            let mut top: Vec<i64> = order[..3].iter().map(|&i| i as i64).collect();
            top.sort();
            assert_eq!(chosen, top);
            for j in 0..3 {
                assert_eq!(values[row][j], p[idx[row * 3 + j] as usize]);
            }
        }
        // Sparse decode = dense z · W_dec with z scattered to d_sae.
        let sparse = vecs(sae.decode_sparse(z.values.clone(), z.indices.clone()));
        let w = vecs(sae.w_dec.val());
        for row in 0..4 {
            for c in 0..6 {
                let dense: f32 = (0..3)
                    .map(|j| values[row][j] * w[idx[row * 3 + j] as usize][c])
                    .sum();
                assert!((sparse[row][c] - dense).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn init_has_unit_decoder_rows_and_tied_encoder() {
        let device = Device::flex();
        let sae = SaeConfig {
            d_in: 8,
            d_sae: 16,
            k: 2,
        }
        .init(1, &device);
        for row in vecs(sae.w_dec.val()) {
            let n: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5);
        }
        assert_eq!(
            sae.w_enc.val().transpose().into_data(),
            sae.w_dec.val().into_data()
        );
        let again = SaeConfig {
            d_in: 8,
            d_sae: 16,
            k: 2,
        }
        .init(1, &device);
        assert_eq!(again.w_dec.val().into_data(), sae.w_dec.val().into_data());
    }
}
