//! Text generation: greedy, temperature and nucleus (top-p) sampling, seeded, with a KV cache
//! so each new token costs one position, and with optional interventions (steering).

use burn::prelude::*;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use crate::SplitMix64;
use crate::{ForwardInput, Gpt, Intervention, KvCache};

/// How tokens are drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Tokens to generate (stops earlier at the context length).
    pub max_new_tokens: usize,
    /// 0: greedy (argmax); otherwise softmax(logits / temperature).
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1: all).
    pub top_p: f32,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            max_new_tokens: 40,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// Draws the next token from `logits` (one position).
pub fn sample(logits: &[f32], sampling: &Sampling, rng: &mut SplitMix64) -> u32 {
    if sampling.temperature <= 0.0 {
        let best = logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)));
        return best.map_or(0, |(i, _)| i as u32);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .map(|&l| ((l - max) / sampling.temperature) as f64)
        .map(f64::exp)
        .enumerate()
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= total);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0.0;
    let cut = probs.iter().position(|p| {
        kept += p.1;
        kept >= sampling.top_p as f64
    });
    let probs = &probs[..cut.map_or(probs.len(), |c| c + 1)];
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * mass;
    for &(i, p) in probs {
        if u < p {
            return i as u32;
        }
        u -= p;
    }
    probs.last().map_or(0, |p| p.0 as u32)
}

fn last_logits(logits: Tensor<3>) -> Vec<f32> {
    let [_, t, v] = logits.dims();
    logits
        .narrow(1, t - 1, 1)
        .reshape([v])
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 logits")
}

/// Continues `prompt` (at least one token). With `use_cache` each step feeds one token and
/// reuses earlier keys and values; without it each step re-reads the whole sequence (the
/// reference the cache is tested against). Returns only the new tokens.
pub fn generate(
    model: &Gpt,
    prompt: &[u32],
    block_size: usize,
    sampling: &Sampling,
    interventions: &[Intervention],
    use_cache: bool,
    device: &Device,
) -> Vec<u32> {
    assert!(
        !prompt.is_empty(),
        "generation needs a prompt of at least one token"
    );
    let to_tensor = |ids: &[u32]| {
        Tensor::<2, Int>::from_data(
            TensorData::new(
                ids.iter().map(|&x| x as i64).collect::<Vec<_>>(),
                [1, ids.len()],
            ),
            device,
        )
    };
    let mut rng = SplitMix64::new(sampling.seed, 0);
    let prompt = &prompt[prompt.len().saturating_sub(block_size)..];
    let mut seq = prompt.to_vec();
    let mut cache = KvCache::default();
    let mut out = Vec::new();
    let mut input = prompt.to_vec();
    while out.len() < sampling.max_new_tokens && seq.len() < block_size {
        let logits = if use_cache {
            model
                .forward_with(
                    to_tensor(&input),
                    ForwardInput {
                        interventions,
                        cache: Some(&mut cache),
                        ..Default::default()
                    },
                )
                .logits
        } else {
            model
                .forward_with(
                    to_tensor(&seq),
                    ForwardInput {
                        interventions,
                        ..Default::default()
                    },
                )
                .logits
        };
        let next = sample(&last_logits(logits), sampling, &mut rng);
        out.push(next);
        seq.push(next);
        input = vec![next];
    }
    out
}

/// Perplexity of `continuation` given `prompt` under `model` (no interventions): how fluent a
/// steered text is to the unsteered model.
pub fn perplexity(model: &Gpt, prompt: &[u32], continuation: &[u32], device: &Device) -> f64 {
    if continuation.is_empty() {
        return f64::NAN;
    }
    let seq: Vec<i64> = prompt
        .iter()
        .chain(continuation)
        .map(|&x| x as i64)
        .collect();
    let n = seq.len();
    let x = Tensor::<2, Int>::from_data(TensorData::new(seq[..n - 1].to_vec(), [1, n - 1]), device);
    let y = Tensor::<2, Int>::from_data(TensorData::new(seq[1..].to_vec(), [1, n - 1]), device);
    let logits = model
        .forward(x)
        .narrow(1, prompt.len() - 1, continuation.len());
    let y = y.narrow(1, prompt.len() - 1, continuation.len());
    (crate::cross_entropy(logits, y).into_scalar::<f32>() as f64).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GptConfig, InterventionMode};

    fn model(device: &Device) -> (Gpt, GptConfig) {
        device.seed(9);
        let cfg = GptConfig {
            block_size: 32,
            ..GptConfig::micro(30)
        };
        (cfg.init(device), cfg)
    }

    #[test]
    fn cached_generation_equals_uncached_greedy_and_sampled() {
        let device = Device::flex();
        let (m, cfg) = model(&device);
        for sampling in [
            Sampling {
                max_new_tokens: 12,
                ..Default::default()
            },
            Sampling {
                max_new_tokens: 12,
                temperature: 1.0,
                top_p: 0.9,
                seed: 3,
            },
        ] {
            let a = generate(
                &m,
                &[1, 2, 3],
                cfg.block_size,
                &sampling,
                &[],
                true,
                &device,
            );
            let b = generate(
                &m,
                &[1, 2, 3],
                cfg.block_size,
                &sampling,
                &[],
                false,
                &device,
            );
            assert_eq!(a, b);
            assert_eq!(a.len(), 12);
        }
    }

    #[test]
    fn same_seed_same_text_other_seed_other_text() {
        let device = Device::flex();
        let (m, cfg) = model(&device);
        let s = |seed| Sampling {
            max_new_tokens: 20,
            temperature: 1.5,
            top_p: 1.0,
            seed,
        };
        let a = generate(&m, &[4], cfg.block_size, &s(1), &[], true, &device);
        assert_eq!(
            a,
            generate(&m, &[4], cfg.block_size, &s(1), &[], true, &device)
        );
        assert_ne!(
            a,
            generate(&m, &[4], cfg.block_size, &s(2), &[], true, &device)
        );
    }

    #[test]
    fn boosting_a_neuron_raises_the_share_of_the_token_it_promotes() {
        let device = Device::flex();
        let (m, cfg) = model(&device);
        // The neuron whose unembedding row has the clearest winner (logit lens), and that
        // token: boosting the neuron should make the model say it.
        let w = m
            .unembedding()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let v = cfg.vocab_size;
        let best = |n: usize| {
            let row = &w[n * v..(n + 1) * v];
            let mut order: Vec<usize> = (0..v).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            (row[order[0]] - row[order[1]], order[0] as u32)
        };
        let sampling = Sampling {
            max_new_tokens: 20,
            ..Default::default()
        };
        let plain = generate(&m, &[1, 2], cfg.block_size, &sampling, &[], true, &device);
        let share_of = |toks: &[u32], token: u32| {
            toks.iter().filter(|&&t| t == token).count() as f64 / toks.len() as f64
        };
        // The init is random (and burn's generator is shared by parallel tests), so pick among
        // the neurons whose token the plain model does not already repeat.
        let neuron = (0..cfg.d_model)
            .filter(|&n| share_of(&plain, best(n).1) < 0.5)
            .max_by(|&a, &b| best(a).0.total_cmp(&best(b).0))
            .unwrap();
        let target = best(neuron).1;
        let row = &w[neuron * v..(neuron + 1) * v];
        let share = |toks: &[u32]| share_of(toks, target);
        let edit = Intervention {
            layer: 2,
            neuron,
            mode: InterventionMode::Set,
            value: 50.0,
            from_position: 0,
            until_position: None,
        };
        let steered = generate(
            &m,
            &[1, 2],
            cfg.block_size,
            &sampling,
            &[edit],
            true,
            &device,
        );
        assert!(
            share(&steered) >= 0.9,
            "steered share {} of token {target}: plain {plain:?} steered {steered:?} row {row:?}",
            share(&steered)
        );
        assert!(share(&plain) < 0.5, "plain share {}", share(&plain));
        // Fluency cost: the steered text is less likely under the plain model.
        assert!(
            perplexity(&m, &[1, 2], &steered, &device) > perplexity(&m, &[1, 2], &plain, &device)
        );
    }

    #[test]
    fn top_p_keeps_only_the_nucleus() {
        let mut rng = SplitMix64::new(1, 1);
        let logits = [10.0, 9.0, -10.0, -10.0];
        let s = Sampling {
            temperature: 1.0,
            top_p: 0.5,
            ..Default::default()
        };
        for _ in 0..200 {
            assert_eq!(sample(&logits, &s, &mut rng), 0);
        }
    }
}
