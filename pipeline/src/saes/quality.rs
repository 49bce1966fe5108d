//! The hidden states SAEs are trained on, and the quality of an SAE on validation tokens.

use anyhow::Result;
use burn::prelude::*;
use model::sae::Sae;
use model::train::Batches;
use model::{ForwardInput, Gpt, GptConfig, Substitution, cross_entropy};

use crate::recording::neurons::floats;

/// Sequences per forward pass when collecting hidden states.
const BATCH_SEQUENCES: usize = 16;

/// Quality of one SAE on the validation tokens.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Quality {
    /// Fraction of variance unexplained: Σ‖x − x̂‖² / Σ‖x − x̄‖².
    pub fvu: f64,
    /// Mean non-zero latents per token.
    pub l0: f64,
    /// Share of latents that never fire on the validation tokens.
    pub dead_fraction: f64,
    /// LM loss (nats) as it is, with the SAE's reconstruction in place of the block output,
    /// and with the block output zeroed.
    pub ce_clean: f64,
    pub ce_sae: f64,
    pub ce_zero: f64,
}

impl Quality {
    /// Share of the loss gap between zero-ablation and the clean model that the reconstruction
    /// recovers: (ce_zero − ce_sae) / (ce_zero − ce_clean).
    pub fn loss_recovered(&self) -> f64 {
        (self.ce_zero - self.ce_sae) / (self.ce_zero - self.ce_clean)
    }
}

/// Block outputs at `layers` of `n_tokens` tokens of seeded random windows, one row-major
/// `[n, d_model]` buffer per layer.
pub fn collect_hidden(
    model: &Gpt,
    cfg: &GptConfig,
    tokens: &[u32],
    layers: &[usize],
    n_tokens: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let batches = Batches {
        tokens,
        block_size: cfg.block_size,
        batch_size: BATCH_SEQUENCES,
    };
    anyhow::ensure!(
        batches.fits(),
        "the training split is shorter than one window"
    );
    let per_batch = BATCH_SEQUENCES * cfg.block_size;
    let mut out = vec![
        Vec::with_capacity(n_tokens.div_ceil(per_batch) * per_batch * cfg.d_model);
        layers.len()
    ];
    for i in 0..n_tokens.div_ceil(per_batch) {
        let (x, _) = batches.random(seed, i, 0, device);
        let hidden = model.block_outputs(x);
        for (buf, &layer) in out.iter_mut().zip(layers) {
            buf.extend(floats(hidden[layer].clone())?);
        }
    }
    Ok(out)
}

/// Measures each SAE on `eval_tokens` validation tokens (consecutive windows).
pub fn evaluate(
    model: &Gpt,
    cfg: &GptConfig,
    saes: &[(usize, Sae)],
    val: &[u32],
    eval_tokens: usize,
    device: &Device,
) -> Result<Vec<Quality>> {
    let batches = Batches {
        tokens: val,
        block_size: cfg.block_size,
        batch_size: BATCH_SEQUENCES,
    };
    anyhow::ensure!(
        batches.fits(),
        "the validation split is shorter than one window"
    );
    let n_batches = eval_tokens.div_ceil(BATCH_SEQUENCES * cfg.block_size);
    let d = cfg.d_model;
    struct Acc {
        sse: f64,
        sum: Vec<f64>,
        sum_sq: f64,
        n: f64,
        nonzero: f64,
        fired: Vec<bool>,
        ce_sae: f64,
        ce_zero: f64,
    }
    let mut acc: Vec<Acc> = saes
        .iter()
        .map(|(_, s)| Acc {
            sse: 0.0,
            sum: vec![0.0; d],
            sum_sq: 0.0,
            n: 0.0,
            nonzero: 0.0,
            fired: vec![false; s.config().d_sae],
            ce_sae: 0.0,
            ce_zero: 0.0,
        })
        .collect();
    let mut ce_clean = 0.0;
    let zeros = |h: Tensor<3>| h.zeros_like();
    let ce = |x: Tensor<2, Int>, y: Tensor<2, Int>, substitution: Option<Substitution>| -> f64 {
        let logits = model
            .forward_with(
                x,
                ForwardInput {
                    substitution,
                    ..Default::default()
                },
            )
            .logits;
        cross_entropy(logits, y).into_scalar::<f32>() as f64
    };
    for i in 0..n_batches {
        let (x, y) = batches.sequential(i, device);
        let out = model.forward_with(
            x.clone(),
            ForwardInput {
                capture_hidden: true,
                ..Default::default()
            },
        );
        ce_clean += cross_entropy(out.logits, y.clone()).into_scalar::<f32>() as f64;
        for ((layer, sae), a) in saes.iter().zip(&mut acc) {
            let h = out.hidden[*layer].clone();
            let [b, t, _] = h.dims();
            let flat = h.reshape([b * t, d]);
            let latents = sae.encode(flat.clone());
            let recon = sae.reconstruct_scaled(&latents).div_scalar(sae.input_scale);
            a.sse += (flat.clone() - recon)
                .powi_scalar(2)
                .sum()
                .into_scalar::<f32>() as f64;
            let xs = floats(flat)?;
            for row in xs.chunks(d) {
                for (s, v) in a.sum.iter_mut().zip(row) {
                    *s += *v as f64;
                }
                a.sum_sq += row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
            }
            a.n += (b * t) as f64;
            let values = floats(latents.values)?;
            a.nonzero += values.iter().filter(|v| **v != 0.0).count() as f64;
            let idx = latents
                .indices
                .into_data()
                .convert::<i64>()
                .try_into_vec::<i64>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            for (j, v) in idx.iter().zip(&values) {
                if *v != 0.0 {
                    a.fired[*j as usize] = true;
                }
            }
            let reconstruct = |h: Tensor<3>| sae.reconstruct_hidden(h);
            a.ce_sae += ce(
                x.clone(),
                y.clone(),
                Some(Substitution {
                    layer: *layer,
                    replace: &reconstruct,
                }),
            );
            a.ce_zero += ce(
                x.clone(),
                y.clone(),
                Some(Substitution {
                    layer: *layer,
                    replace: &zeros,
                }),
            );
        }
    }
    let nb = n_batches as f64;
    Ok(acc
        .into_iter()
        .map(|a| {
            let mean_sq: f64 = a.sum.iter().map(|s| (s / a.n).powi(2)).sum();
            Quality {
                fvu: a.sse / (a.sum_sq - a.n * mean_sq).max(f64::MIN_POSITIVE),
                l0: a.nonzero / a.n,
                dead_fraction: a.fired.iter().filter(|f| !**f).count() as f64
                    / a.fired.len() as f64,
                ce_clean: ce_clean / nb,
                ce_sae: a.ce_sae / nb,
                ce_zero: a.ce_zero / nb,
            }
        })
        .collect())
}
