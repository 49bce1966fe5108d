//! The `neurons` table: what the weights say about each neuron of a block output (how the next
//! block reads it, how this block writes it, which tokens it promotes), or about each SAE latent.

use anyhow::Result;
use burn::prelude::*;
use model::sae::{Sae, SaeConfig};
use model::{Gpt, GptConfig};
use queries::tables::neurons::NeuronRow;
use tokenizers::Tokenizer;

/// Promoted/suppressed tokens listed per neuron.
const LOGIT_LENS_TOKENS: usize = 5;

/// The tokens with the largest and the smallest logit-lens scores (one score per vocabulary
/// entry), each list joined by " | "; ties by token id.
pub fn logit_lens_tokens(scores: &[f32], tokenizer: &Tokenizer) -> (String, String) {
    let vocab = scores.len().min(tokenizer.get_vocab_size(true));
    let text = |id: usize| tokenizer.decode(&[id as u32], false).unwrap_or_default();
    let mut order: Vec<usize> = (0..vocab).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let list = |ids: &mut dyn Iterator<Item = &usize>| {
        ids.take(LOGIT_LENS_TOKENS)
            .map(|&t| text(t))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    (list(&mut order.iter()), list(&mut order.iter().rev()))
}

/// What the weights say about each neuron of block `layer`'s output.
///
/// - read_norm: ‖how the next block reads coordinate i‖ (row i of its attention and MLP input
///   matrices; for the last block, row i of the unembedding).
/// - write_norm: ‖how this block writes coordinate i‖ (column i of its attention and MLP
///   output matrices).
/// - read_cos_prev / write_cos_prev: cosine of those vectors with the previous checkpoint's
///   (`prev`), the weight side of lineage.
/// - top_promoted / top_suppressed: tokens with the largest / smallest `γ_i · W_U[i, :]`
///   (logit lens through the final norm's scale).
pub fn neuron_table(
    model: &Gpt,
    prev: Option<&Gpt>,
    cfg: &GptConfig,
    layer: usize,
    tokenizer: &Tokenizer,
) -> Result<Vec<NeuronRow>> {
    let d = cfg.d_model;
    let vec_of = |t: Tensor<2>| -> Result<(Vec<f32>, [usize; 2])> {
        let dims = t.dims();
        Ok((
            t.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?,
            dims,
        ))
    };
    let unembed = vec_of(model.unembedding())?; // [d, V]
    let (read, write) = neuron_vectors(model, layer)?;
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let prev_vectors = prev.map(|p| neuron_vectors(p, layer)).transpose()?;
    let cosine = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        dot / (norm(a) * norm(b)).max(f32::MIN_POSITIVE)
    };
    let read_cos: Vec<Option<f32>> = (0..d)
        .map(|i| prev_vectors.as_ref().map(|(r, _)| cosine(&read[i], &r[i])))
        .collect();
    let write_cos: Vec<Option<f32>> = (0..d)
        .map(|i| prev_vectors.as_ref().map(|(_, w)| cosine(&write[i], &w[i])))
        .collect();
    let gamma = model
        .ln_f
        .gamma
        .val()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let width = unembed.1[1];
    let (mut promoted, mut suppressed) = (Vec::with_capacity(d), Vec::with_capacity(d));
    for (i, g) in gamma.iter().enumerate().take(d) {
        let scores: Vec<f32> = unembed.0[i * width..(i + 1) * width]
            .iter()
            .map(|w| g * w)
            .collect();
        let (p, s) = logit_lens_tokens(&scores, tokenizer);
        promoted.push(p);
        suppressed.push(s);
    }
    Ok(promoted
        .into_iter()
        .zip(suppressed)
        .enumerate()
        .map(|(i, (top_promoted, top_suppressed))| NeuronRow {
            neuron: i as u16,
            read_norm: norm(&read[i]),
            write_norm: norm(&write[i]),
            top_promoted,
            top_suppressed,
            read_cos_prev: read_cos[i],
            write_cos_prev: write_cos[i],
        })
        .collect())
}
/// (read vectors, write vectors), one of each per neuron.
type NeuronVectors = (Vec<Vec<f32>>, Vec<Vec<f32>>);

/// Per neuron of block `layer`'s output: its read vector (row i of the next block's attention
/// and MLP input matrices, or of the unembedding after the last block) and its write vector
/// (column i of this block's attention and MLP output matrices).
fn neuron_vectors(model: &Gpt, layer: usize) -> Result<NeuronVectors> {
    let matrix = |t: Tensor<2>| -> Result<(Vec<f32>, usize, usize)> {
        let [r, c] = t.dims();
        let v = t
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok((v, r, c))
    };
    let rows = |m: &(Vec<f32>, usize, usize), i: usize| m.0[i * m.2..(i + 1) * m.2].to_vec();
    let col = |m: &(Vec<f32>, usize, usize), i: usize| {
        (0..m.1).map(|r| m.0[r * m.2 + i]).collect::<Vec<f32>>()
    };
    let readers: Vec<_> = match model.blocks.get(layer + 1) {
        Some(next) => vec![
            matrix(next.attn.c_attn.weight.val())?,
            matrix(next.mlp.c_fc.weight.val())?,
        ],
        None => vec![matrix(model.unembedding())?],
    };
    let block = &model.blocks[layer];
    let writers = [
        matrix(block.attn.c_proj.weight.val())?,
        matrix(block.mlp.c_proj.weight.val())?,
    ];
    let d = writers[0].2;
    let read = (0..d)
        .map(|i| readers.iter().flat_map(|m| rows(m, i)).collect())
        .collect();
    let write = (0..d)
        .map(|i| writers.iter().flat_map(|m| col(m, i)).collect())
        .collect();
    Ok((read, write))
}

/// The `neurons` rows of an SAE's latents: read vector = encoder column, write vector = decoder
/// row (unit norm), promoted/suppressed tokens = logit lens of the decoder direction through
/// the LM's final norm scale, `(W_dec[i] ⊙ γ) · W_U`. No `*_cos_prev`: a latent's index
/// carries no identity from one checkpoint's SAE to the next.
pub fn latent_table(lm: &Gpt, sae: &Sae, tokenizer: &Tokenizer) -> Result<Vec<NeuronRow>> {
    let SaeConfig { d_in, d_sae, .. } = sae.config();
    let gamma = lm.ln_f.gamma.val().reshape([1, d_in]);
    let lens = (sae.w_dec.val() * gamma).matmul(lm.unembedding()); // [d_sae, V]
    let vocab = lens.dims()[1];
    let lens = floats(lens)?;
    let enc = floats(sae.w_enc.val())?; // [d_in, d_sae]
    let dec = floats(sae.w_dec.val())?; // [d_sae, d_in]
    let read_norm = |i: usize| {
        (0..d_in)
            .map(|r| enc[r * d_sae + i].powi(2))
            .sum::<f32>()
            .sqrt()
    };
    Ok(lens
        .chunks(vocab)
        .zip(dec.chunks(d_in))
        .enumerate()
        .map(|(i, (scores, row))| {
            let (top_promoted, top_suppressed) = logit_lens_tokens(scores, tokenizer);
            NeuronRow {
                neuron: i as u16,
                read_norm: read_norm(i),
                write_norm: row.iter().map(|v| v * v).sum::<f32>().sqrt(),
                top_promoted,
                top_suppressed,
                read_cos_prev: None,
                write_cos_prev: None,
            }
        })
        .collect())
}
/// A tensor's values as f32, row-major.
pub(crate) fn floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}
