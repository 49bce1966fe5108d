//! Training one SAE on a buffer of hidden states: Adam on the normalised reconstruction error
//! plus the AuxK loss that revives dead latents (Gao et al. 2024, section 2.4), decoder rows
//! projected back to unit norm after every step. Batches are a pure function of (seed, step).

use std::time::Instant;

use burn::module::Param;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use super::{Sae, SaeConfig};
use crate::SplitMix64;
use crate::{Error, Result};

/// Optimisation of one SAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaeTrainingConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Hidden states (tokens) per step.
    pub batch_size: usize,
    /// Adam learning rate (after warm-up; cosine decay to 10% of it).
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Dead latents used by the AuxK loss (0: no auxiliary loss).
    pub aux_k: usize,
    /// Weight α of the AuxK loss (Gao et al. use 1/32).
    pub aux_coef: f32,
    /// A latent that has not fired for this many training tokens counts as dead.
    pub dead_after_tokens: usize,
    /// Seed of initialisation and batch order.
    pub seed: u64,
}

impl SaeTrainingConfig {
    /// Rejects impossible values, naming the key.
    pub fn validate(&self) -> Result<()> {
        for (key, value) in [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("dead_after_tokens", self.dead_after_tokens),
        ] {
            if value == 0 {
                return Err(Error::Config(format!(
                    "`sae.{key}` = 0: must be at least 1"
                )));
            }
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::Config(format!(
                "`sae.lr` = {}: must be a positive number",
                self.lr
            )));
        }
        Ok(())
    }

    fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = (self.steps - self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.lr * (0.1 + 0.9 * cosine)
    }
}

/// Reported after every step.
#[derive(Debug, Clone)]
pub struct SaeProgress {
    pub step: usize,
    pub steps: usize,
    /// Normalised reconstruction error of the batch (its fraction of variance unexplained).
    pub fvu: f32,
}

/// A trained SAE and how training went.
#[derive(Debug)]
pub struct TrainedSae {
    pub sae: Sae,
    /// Batch FVU at every step.
    pub fvu: Vec<f32>,
    /// Share of latents dead at the end (by `dead_after_tokens`).
    pub dead_fraction: f32,
    /// Training tokens per second.
    pub tokens_per_second: f64,
}

/// Trains an SAE of shape `cfg` on `hidden` (`n × cfg.d_in` row-major hidden states).
pub fn train_sae(
    cfg: &SaeConfig,
    tcfg: &SaeTrainingConfig,
    hidden: &[f32],
    device: &Device,
    on_step: &mut dyn FnMut(&SaeProgress),
) -> Result<TrainedSae> {
    train_sae_from(cfg, tcfg, hidden, None, device, on_step)
}

/// [`train_sae`], starting from `start`'s encoder, decoder and encoder bias instead of the
/// seed's initialisation (a warm start from the previous checkpoint's SAE). The input scale and
/// `b_pre` are set from `hidden` either way: they follow the new checkpoint's residual stream.
pub fn train_sae_from(
    cfg: &SaeConfig,
    tcfg: &SaeTrainingConfig,
    hidden: &[f32],
    start: Option<&Sae>,
    device: &Device,
    on_step: &mut dyn FnMut(&SaeProgress),
) -> Result<TrainedSae> {
    cfg.validate()?;
    tcfg.validate()?;
    let d = cfg.d_in;
    let n = hidden.len() / d;
    if n == 0 || !hidden.len().is_multiple_of(d) {
        return Err(Error::Training(format!(
            "SAE training needs whole hidden states of width {d}; got {} values",
            hidden.len()
        )));
    }
    let ad = device.clone().autodiff();
    let mut sae = cfg.init(tcfg.seed, &ad);
    if let Some(start) = start {
        if (start.w_enc.dims(), start.k) != ([d, cfg.d_sae], cfg.k) {
            return Err(Error::Training(format!(
                "a warm start needs an SAE of the same shape ({d} → {} latents, k {}); got {:?}, k {}",
                cfg.d_sae,
                cfg.k,
                start.w_enc.dims(),
                start.k
            )));
        }
        let copy2 =
            |p: &Param<Tensor<2>>| Param::from_tensor(Tensor::from_data(p.val().into_data(), &ad));
        sae.w_enc = copy2(&start.w_enc);
        sae.w_dec = copy2(&start.w_dec);
        sae.b_enc = Param::from_tensor(Tensor::from_data(start.b_enc.val().into_data(), &ad));
    }
    // Scale to mean squared norm d, and start b_pre at the (scaled) mean.
    let mean_sq = hidden.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n as f64;
    sae.input_scale = (d as f64 / mean_sq.max(1e-30)).sqrt() as f32;
    let mean: Vec<f32> = (0..d)
        .map(|c| {
            (hidden
                .iter()
                .skip(c)
                .step_by(d)
                .map(|v| *v as f64)
                .sum::<f64>()
                / n as f64) as f32
                * sae.input_scale
        })
        .collect();
    sae.b_pre = sae
        .b_pre
        .map(|b| Tensor::from_data(TensorData::new(mean, [d]), &b.device()).require_grad());

    let mut optim = AdamWConfig::new().with_weight_decay(0.0).init();
    let mut since_fired = vec![0usize; cfg.d_sae];
    let mut fvus = Vec::with_capacity(tcfg.steps);
    let started = Instant::now();
    for step in 0..tcfg.steps {
        // forward: a seeded batch of rows
        let mut rng = SplitMix64::new(tcfg.seed, step as u64);
        let mut rows = Vec::with_capacity(tcfg.batch_size * d);
        for _ in 0..tcfg.batch_size {
            let r = rng.below(n);
            rows.extend_from_slice(&hidden[r * d..(r + 1) * d]);
        }
        let x = Tensor::<2>::from_data(TensorData::new(rows, [tcfg.batch_size, d]), &ad);
        let target = x.clone().mul_scalar(sae.input_scale);
        let variance = (target.clone() - target.clone().mean_dim(0))
            .powi_scalar(2)
            .sum()
            .clamp_min(1e-12)
            .detach();
        let latents = sae.encode(x);
        let error = target - sae.reconstruct_scaled(&latents);
        let fvu = error.clone().powi_scalar(2).sum() / variance.clone();
        let fvu_value = fvu.clone().into_scalar::<f32>();
        if !fvu_value.is_finite() {
            return Err(Error::Training(format!(
                "SAE loss is {fvu_value} at step {step}; lower `sae.lr`"
            )));
        }

        // dead latents: not among any token's k for `dead_after_tokens` tokens
        let fired = latents
            .indices
            .clone()
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .map_err(|e| Error::Training(format!("{e:?}")))?;
        since_fired.iter_mut().for_each(|s| *s += tcfg.batch_size);
        for i in fired {
            since_fired[i as usize] = 0;
        }
        let dead: Vec<bool> = since_fired
            .iter()
            .map(|&s| s >= tcfg.dead_after_tokens)
            .collect();
        let n_dead = dead.iter().filter(|d| **d).count();

        // AuxK: the k_aux largest dead pre-activations reconstruct the remaining error
        let loss = if tcfg.aux_k > 0 && n_dead > 0 {
            let k_aux = tcfg.aux_k.min(n_dead);
            let penalty: Vec<f32> = dead.iter().map(|&d| if d { 0.0 } else { -1e30 }).collect();
            let penalty = Tensor::<2>::from_data(TensorData::new(penalty, [1, cfg.d_sae]), &ad);
            let (_, idx) = crate::top_entries(latents.pre.clone().detach() + penalty, k_aux, false);
            let values = latents.pre.clone().gather(1, idx.clone());
            let aux_error = error.detach() - sae.decode_sparse(values, idx);
            let aux = aux_error.powi_scalar(2).sum() / variance;
            fvu + aux.mul_scalar(tcfg.aux_coef)
        } else {
            fvu
        };

        // backward and update, then back onto the unit sphere
        let grads = GradientsParams::from_grads(loss.backward(), &sae);
        sae = optim.step(tcfg.lr_at(step), sae, grads).normalize_decoder();
        fvus.push(fvu_value);
        on_step(&SaeProgress {
            step: step + 1,
            steps: tcfg.steps,
            fvu: fvu_value,
        });
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let dead_fraction = since_fired
        .iter()
        .filter(|&&s| s >= tcfg.dead_after_tokens)
        .count() as f32
        / cfg.d_sae as f32;
    Ok(TrainedSae {
        sae: sae.valid(),
        fvu: fvus,
        dead_fraction,
        tokens_per_second: (tcfg.steps * tcfg.batch_size) as f64 / seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hidden states made of known sparse sources: each token is the sum of 2 of 12 random
    /// unit directions in 16 dimensions, with positive coefficients.
    fn synthetic(n: usize) -> (Vec<f32>, Vec<Vec<f32>>) {
        let (d, m) = (16, 12);
        let mut rng = SplitMix64::new(42, 1);
        let mut sources = Vec::new();
        for _ in 0..m {
            let v: Vec<f32> = (0..d)
                .map(|_| super::super::standard_normal(&mut rng))
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            sources.push(v.iter().map(|x| x / norm).collect::<Vec<f32>>());
        }
        let mut hidden = Vec::with_capacity(n * d);
        for _ in 0..n {
            let a = rng.below(m);
            let b = (a + 1 + rng.below(m - 1)) % m;
            let (ca, cb) = (
                1.0 + rng.below(1000) as f32 / 1000.0,
                1.0 + rng.below(1000) as f32 / 1000.0,
            );
            hidden.extend((0..d).map(|c| ca * sources[a][c] + cb * sources[b][c]));
        }
        (hidden, sources)
    }

    fn config() -> (SaeConfig, SaeTrainingConfig) {
        (
            SaeConfig {
                d_in: 16,
                d_sae: 24,
                k: 2,
            },
            SaeTrainingConfig {
                steps: 600,
                batch_size: 128,
                lr: 1e-2,
                warmup_steps: 20,
                aux_k: 8,
                aux_coef: 1.0 / 32.0,
                dead_after_tokens: 2048,
                seed: 3,
            },
        )
    }

    #[test]
    fn recovers_known_sparse_sources_with_unit_decoder_rows() {
        let device = Device::flex();
        let (hidden, sources) = synthetic(4096);
        let (cfg, tcfg) = config();
        let trained = train_sae(&cfg, &tcfg, &hidden, &device, &mut |_| {}).unwrap();

        // The loss falls: the last 50 steps average well under the first 10.
        let head = trained.fvu[..10].iter().sum::<f32>() / 10.0;
        let tail = trained.fvu[tcfg.steps - 50..].iter().sum::<f32>() / 50.0;
        assert!(tail < 0.25 * head, "FVU {head} → {tail}");

        let w = trained
            .sae
            .w_dec
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let rows: Vec<&[f32]> = w.chunks(16).collect();
        for row in &rows {
            let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-4, "decoder row norm {n}");
        }
        // Every source has a decoder row pointing at it (cosine above 0.9).
        for (s, source) in sources.iter().enumerate() {
            let best = rows
                .iter()
                .map(|r| r.iter().zip(source).map(|(a, b)| a * b).sum::<f32>())
                .fold(f32::MIN, f32::max);
            assert!(best > 0.9, "source {s}: best decoder cosine {best}");
        }
    }

    #[test]
    fn a_warm_start_begins_from_the_given_sae() {
        let device = Device::flex();
        let (hidden, _) = synthetic(2048);
        let (cfg, mut tcfg) = config();
        tcfg.steps = 200;
        let first = train_sae(&cfg, &tcfg, &hidden, &device, &mut |_| {}).unwrap();
        // One more step from the trained SAE lands near it; from the seed it does not.
        tcfg.steps = 1;
        let warm =
            train_sae_from(&cfg, &tcfg, &hidden, Some(&first.sae), &device, &mut |_| {}).unwrap();
        let cold = train_sae(&cfg, &tcfg, &hidden, &device, &mut |_| {}).unwrap();
        let w = |s: &Sae| s.w_dec.val().into_data().try_into_vec::<f32>().unwrap();
        let dist = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f32>()
                .sqrt()
        };
        let (to_warm, to_cold) = (
            dist(&w(&first.sae), &w(&warm.sae)),
            dist(&w(&first.sae), &w(&cold.sae)),
        );
        assert!(to_warm < 0.1 * to_cold, "warm {to_warm}, cold {to_cold}");
        assert!(
            warm.fvu[0] < cold.fvu[0],
            "{} vs {}",
            warm.fvu[0],
            cold.fvu[0]
        );
        // A start of another shape is refused.
        let other = SaeConfig {
            d_sae: cfg.d_sae * 2,
            ..cfg.clone()
        }
        .init(1, &device);
        assert!(train_sae_from(&cfg, &tcfg, &hidden, Some(&other), &device, &mut |_| {}).is_err());
    }

    #[test]
    fn same_seed_same_sae_different_seed_different_sae() {
        let device = Device::flex();
        let (hidden, _) = synthetic(512);
        let (cfg, mut tcfg) = config();
        tcfg.steps = 5;
        let a = train_sae(&cfg, &tcfg, &hidden, &device, &mut |_| {}).unwrap();
        let b = train_sae(&cfg, &tcfg, &hidden, &device, &mut |_| {}).unwrap();
        assert_eq!(a.sae.w_dec.val().into_data(), b.sae.w_dec.val().into_data());
        tcfg.seed += 1;
        let c = train_sae(&cfg, &tcfg, &hidden, &device, &mut |_| {}).unwrap();
        assert_ne!(a.sae.w_dec.val().into_data(), c.sae.w_dec.val().into_data());
    }
}
