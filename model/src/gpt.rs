//! The whole model: embeddings, blocks (TopK then dense), final norm and unembedding.

use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, LayerNorm, Linear, RotaryEncoding,
    RotaryEncodingConfig,
};
use burn::prelude::*;

use crate::activation::TopK;
pub use crate::attention::KvCache;
use crate::block::{Block, apply_norm, norm_module};
use crate::config::{GptConfig, Positional};
use crate::dtype::{to_dtype, to_f32};
use crate::intervention::Intervention;
use crate::mlp::{INIT_STD, linear, per_token};

/// A GPT-style TopK language model.
#[derive(Module, Debug)]
pub struct Gpt {
    /// Token embedding.
    pub wte: Embedding,
    /// Learned position embedding (`None` with rotary positions).
    pub wpe: Option<Embedding>,
    /// Rotary position embedding (`None` with learned positions).
    pub rope: Option<RotaryEncoding>,
    pub blocks: Vec<Block>,
    pub ln_f: LayerNorm,
    /// Unembedding (`None` when tied to `wte`).
    pub lm_head: Option<Linear>,
    /// The shape the model was built from: the options of each family (norm, MLP, rotary,
    /// residual form) its forward pass follows. Not saved with the weights.
    #[module(skip)]
    pub config: GptConfig,
}

/// What a forward pass returns besides the logits.
#[derive(Debug)]
pub struct GptOutput {
    /// `[B, T, vocab_size]`
    pub logits: Tensor<3>,
    /// Each block's output `[B, T, d_model]` (after TopK and any intervention); empty unless
    /// requested.
    pub hidden: Vec<Tensor<3>>,
}

/// A function that replaces one block's whole output, e.g. by an SAE's reconstruction of it
/// (to measure the loss the reconstruction recovers) or by zeros (the ablation baseline).
#[derive(Clone, Copy)]
pub struct Substitution<'a> {
    /// Block whose output is replaced (0-based).
    pub layer: usize,
    /// `[B, T, d_model]` → `[B, T, d_model]`
    pub replace: &'a dyn Fn(Tensor<3>) -> Tensor<3>,
}

impl std::fmt::Debug for Substitution<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Substitution")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

/// Options of one forward pass, so callers name what they need.
#[derive(Debug, Default)]
pub struct ForwardInput<'a> {
    /// Edits applied to block outputs.
    pub interventions: &'a [Intervention],
    /// A block output replaced before the next block reads it (after any intervention).
    pub substitution: Option<Substitution<'a>>,
    /// Keep every block output in [`GptOutput::hidden`].
    pub capture_hidden: bool,
    /// Cache of earlier positions for generation.
    pub cache: Option<&'a mut KvCache>,
}

impl GptConfig {
    /// Builds a randomly initialised model (seed the device first for reproducibility).
    pub fn init(&self, device: &Device) -> Gpt {
        let emb = |n: usize| {
            EmbeddingConfig::new(n, self.d_model)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: INIT_STD,
                })
                .init(device)
        };
        let blocks = (0..self.n_layers)
            .map(|layer| {
                let topk = self.is_topk_layer(layer).then(|| {
                    TopK::new(self.topk_k, self.topk_by, self.topk_relu, self.topk_select)
                });
                Block::new(self, topk, device)
            })
            .collect();
        Gpt {
            wte: emb(self.vocab_size),
            wpe: (self.positional == Positional::Learned).then(|| emb(self.block_size)),
            rope: (self.positional == Positional::Rope)
                .then(|| RotaryEncodingConfig::new(self.block_size, self.head_dim()).init(device)),
            blocks,
            ln_f: norm_module(self, device),
            lm_head: (!self.tie_embeddings)
                .then(|| linear(self.d_model, self.vocab_size, self.lm_head_bias, device)),
            config: self.clone(),
        }
    }
}

impl Gpt {
    /// Next-token logits.
    ///
    /// # Shapes
    /// - tokens: `[B, T]` → logits `[B, T, vocab_size]`
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.forward_with(tokens, ForwardInput::default()).logits
    }

    /// Forward pass with interventions, captured block outputs or a KV cache.
    ///
    /// # Shapes
    /// - tokens: `[B, T]`; with a cache, the positions after those cached
    pub fn forward_with(&self, tokens: Tensor<2, Int>, input: ForwardInput<'_>) -> GptOutput {
        let (x, hidden) = self.run_blocks(tokens, input);
        let x = apply_norm(&self.ln_f, &self.config, x);
        let logits = match &self.lm_head {
            Some(head) => per_token(head, x),
            None => {
                let [b, t, c] = x.dims();
                let wte = self.wte.weight.val();
                let x = to_dtype(x.reshape([b * t, c]), wte.dtype());
                let logits = to_f32(x.matmul(wte.transpose()));
                logits.reshape([b, t, self.wte.weight.dims()[0]])
            }
        };
        GptOutput { logits, hidden }
    }

    /// Embeddings and blocks: the last block's output, and every block's output if asked.
    fn run_blocks(
        &self,
        tokens: Tensor<2, Int>,
        input: ForwardInput<'_>,
    ) -> (Tensor<3>, Vec<Tensor<3>>) {
        let [_, t] = tokens.dims();
        let device = tokens.device();
        let mut cache = input.cache;
        let start = cache.as_ref().map_or(0, |c| c.len());
        if let Some(c) = cache.as_mut() {
            c.layers.resize(self.blocks.len(), None);
        }

        // Embeddings are read in f32 whatever the step's precision (see `train::Precision`).
        let mut x = to_f32(self.wte.forward(tokens)); // [B, T, C]
        if let Some(wpe) = &self.wpe {
            let pos =
                Tensor::<1, Int>::arange(start as i64..(start + t) as i64, &device).reshape([1, t]);
            x = x + to_f32(wpe.forward(pos)); // [1, T, C] broadcast over B
        }
        let mut hidden = Vec::new();
        for (layer, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_mut().map(|c| &mut c.layers[layer]);
            x = block.forward(x, &self.config, self.rope.as_ref(), start, slot);
            for edit in input.interventions.iter().filter(|e| e.layer == layer) {
                x = edit.apply(x, start);
            }
            if let Some(sub) = input.substitution.filter(|s| s.layer == layer) {
                x = (sub.replace)(x);
            }
            if input.capture_hidden {
                hidden.push(x.clone());
            }
        }
        (x, hidden)
    }

    /// Every block's output (after TopK), without interventions: what recording, evaluation and
    /// SAE training read.
    ///
    /// # Shapes
    /// - tokens: `[B, T]` → `n_layers` × `[B, T, d_model]`
    pub fn block_outputs(&self, tokens: Tensor<2, Int>) -> Vec<Tensor<3>> {
        // No logits: the unembedding is the largest product of a big-vocabulary model.
        self.run_blocks(
            tokens,
            ForwardInput {
                capture_hidden: true,
                ..Default::default()
            },
        )
        .1
    }

    /// Mean next-token cross-entropy (nats).
    ///
    /// # Shapes
    /// - tokens, targets: `[B, T]`
    pub fn loss(&self, tokens: Tensor<2, Int>, targets: Tensor<2, Int>) -> Tensor<1> {
        let logits = self.forward(tokens);
        cross_entropy(logits, targets)
    }

    /// The unembedding matrix `[d_model, vocab_size]` (logit lens of each neuron).
    pub fn unembedding(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => head.weight.val(),
            None => self.wte.weight.val().transpose(),
        }
    }

    /// Sets k of every TopK block (used by the k schedule during training).
    pub fn with_topk_k(mut self, k: usize) -> Self {
        for block in &mut self.blocks {
            if let Some(topk) = &mut block.topk {
                topk.k = k;
            }
        }
        self
    }
}

/// Mean cross-entropy of logits `[B, T, V]` against targets `[B, T]`.
pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [b, t, v] = logits.dims();
    crate::fused::cross_entropy_rows(logits.reshape([b * t, v]), targets.reshape([b * t])).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervention::InterventionMode;
    use burn::tensor::{Distribution, TensorData};

    fn tiny() -> GptConfig {
        GptConfig {
            n_heads: 4,
            topk_k: 4,
            ..GptConfig::micro(50)
        }
    }

    fn tokens(device: &Device, b: usize, t: usize) -> Tensor<2, Int> {
        let ids: Vec<i64> = (0..b * t).map(|i| ((i * 7 + 3) % 50) as i64).collect();
        Tensor::from_data(TensorData::new(ids, [b, t]), device)
    }

    fn nonzeros_per_token(x: &Tensor<3>) -> Vec<usize> {
        let d = x.dims()[2];
        let v = x.to_data().try_into_vec::<f32>().unwrap();
        v.chunks(d)
            .map(|r| r.iter().filter(|x| **x != 0.0).count())
            .collect()
    }

    #[test]
    fn topk_blocks_are_sparse_and_dense_blocks_are_not() {
        let device = Device::flex();
        device.seed(1);
        let model = tiny().init(&device);
        let out = model.forward_with(
            tokens(&device, 2, 16),
            ForwardInput {
                capture_hidden: true,
                ..Default::default()
            },
        );
        assert_eq!(out.logits.dims(), [2, 16, 50]);
        for layer in 0..2 {
            assert!(
                nonzeros_per_token(&out.hidden[layer])
                    .iter()
                    .all(|&n| n == 4)
            );
        }
        assert!(nonzeros_per_token(&out.hidden[2]).iter().all(|&n| n > 4));
    }

    #[test]
    fn intervention_changes_exactly_one_neuron_of_one_layer() {
        let device = Device::flex();
        device.seed(2);
        let model = tiny().init(&device);
        let capture = |edits: &[Intervention]| {
            model.forward_with(
                tokens(&device, 1, 8),
                ForwardInput {
                    interventions: edits,
                    capture_hidden: true,
                    ..Default::default()
                },
            )
        };
        let plain = capture(&[]);
        let edit = Intervention {
            layer: 1,
            neuron: 5,
            mode: InterventionMode::Set,
            value: 7.5,
            from_position: 0,
            until_position: None,
        };
        let steered = capture(std::slice::from_ref(&edit));
        // Layer 0 identical; layer 1 differs only at neuron 5, which is 7.5 everywhere.
        assert_eq!(plain.hidden[0].to_data(), steered.hidden[0].to_data());
        let a = plain.hidden[1].to_data().try_into_vec::<f32>().unwrap();
        let b = steered.hidden[1].to_data().try_into_vec::<f32>().unwrap();
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            if i % 32 == 5 {
                assert_eq!(*y, 7.5);
            } else {
                assert_eq!(x, y, "entry {i} changed");
            }
        }
    }

    #[test]
    fn substitution_replaces_one_block_output_and_later_blocks_read_it() {
        let device = Device::flex();
        device.seed(5);
        let model = tiny().init(&device);
        let zeros = |h: Tensor<3>| h.zeros_like();
        let out = model.forward_with(
            tokens(&device, 1, 8),
            ForwardInput {
                capture_hidden: true,
                substitution: Some(Substitution {
                    layer: 1,
                    replace: &zeros,
                }),
                ..Default::default()
            },
        );
        let plain = model.forward_with(
            tokens(&device, 1, 8),
            ForwardInput {
                capture_hidden: true,
                ..Default::default()
            },
        );
        assert_eq!(out.hidden[0].to_data(), plain.hidden[0].to_data());
        assert!(nonzeros_per_token(&out.hidden[1]).iter().all(|&n| n == 0));
        // Block 2 reads only the zeroed stream: its output is the same for every position
        // whose attention sees only zeros (all of them), i.e. the MLP/attention biases.
        let h2 = out.hidden[2].to_data().try_into_vec::<f32>().unwrap();
        for row in h2.chunks(32).skip(1) {
            for (a, b) in row.iter().zip(&h2[..32]) {
                assert!((a - b).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn kv_cache_matches_full_forward() {
        let device = Device::flex();
        device.seed(3);
        for positional in [Positional::Learned, Positional::Rope] {
            let model = GptConfig {
                positional,
                ..tiny()
            }
            .init(&device);
            let toks = tokens(&device, 1, 10);
            let full = model
                .forward(toks.clone())
                .to_data()
                .try_into_vec::<f32>()
                .unwrap();
            let mut cache = KvCache::default();
            let mut stepped = Vec::new();
            // Prompt of 6, then one token at a time.
            let run = |slice: Tensor<2, Int>, cache: &mut KvCache| {
                model
                    .forward_with(
                        slice,
                        ForwardInput {
                            cache: Some(cache),
                            ..Default::default()
                        },
                    )
                    .logits
            };
            stepped.extend(
                run(toks.clone().narrow(1, 0, 6), &mut cache)
                    .to_data()
                    .try_into_vec::<f32>()
                    .unwrap(),
            );
            for i in 6..10 {
                stepped.extend(
                    run(toks.clone().narrow(1, i, 1), &mut cache)
                        .to_data()
                        .try_into_vec::<f32>()
                        .unwrap(),
                );
            }
            assert_eq!(full.len(), stepped.len());
            for (a, b) in full.iter().zip(&stepped) {
                assert!((a - b).abs() < 1e-4, "{positional:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn causal_later_tokens_do_not_change_earlier_logits() {
        let device = Device::flex();
        device.seed(4);
        let model = tiny().init(&device);
        let a = tokens(&device, 1, 8);
        let noise = Tensor::<2>::random([1, 8], Distribution::Uniform(0.0, 49.0), &device).int();
        let b = Tensor::cat(vec![a.clone().narrow(1, 0, 4), noise.narrow(1, 4, 4)], 1);
        let la = model
            .forward(a)
            .narrow(1, 0, 4)
            .to_data()
            .try_into_vec::<f32>()
            .unwrap();
        let lb = model
            .forward(b)
            .narrow(1, 0, 4)
            .to_data()
            .try_into_vec::<f32>()
            .unwrap();
        for (x, y) in la.iter().zip(&lb) {
            assert!((x - y).abs() < 1e-5);
        }
    }
}
