//! Causal self-attention straight from the packed `[B, T, 3C]` projection (q, k, v side by
//! side, heads contiguous within each), forward and backward, for the CPU.
//!
//! burn's differentiable attention is a chain of full-size operations (scores, scale, mask,
//! softmax as five more, the value product) plus the copies that split and transpose the heads,
//! each kept for autodiff. At the tiny preset's T = 64 and head size 32 the products are small
//! and that bookkeeping is the cost. Here each (sequence, head) is a few loops over rows;
//! the backward pass recomputes the probabilities instead of storing them.

use rayon::prelude::*;

use super::kernels::{dot, exp, row_max, row_sum, simd};

/// Shape of a packed attention input: `[batch, time, 3 · channels]`, `heads` dividing
/// `channels`.
#[derive(Debug, Clone, Copy)]
pub struct Packed {
    pub batch: usize,
    pub time: usize,
    pub channels: usize,
    pub heads: usize,
}

impl Packed {
    fn head_size(&self) -> usize {
        self.channels / self.heads
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_size() as f32).sqrt()
    }
}

/// y += a·x.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// One (sequence, head) of a packed input, with its keys and values transposed to
/// `[head size, T]` so that a query's scores are vector operations along the keys.
struct Head<'a> {
    seq: &'a [f32],
    shape: Packed,
    head: usize,
    keys_t: Vec<f32>,
    values_t: Vec<f32>,
}

impl<'a> Head<'a> {
    fn new(seq: &'a [f32], shape: Packed, head: usize) -> Self {
        let mut h = Self {
            seq,
            shape,
            head,
            keys_t: vec![0.0; seq.len() / 3 / shape.heads],
            values_t: vec![0.0; seq.len() / 3 / shape.heads],
        };
        let (t, hs) = (shape.time, shape.head_size());
        for j in 0..t {
            for d in 0..hs {
                h.keys_t[d * t + j] = h.row(j, 1)[d];
                h.values_t[d * t + j] = h.row(j, 2)[d];
            }
        }
        h
    }

    /// Query (`part` 0), key (1) or value (2) of time step `j`.
    #[inline(always)]
    fn row(&self, j: usize, part: usize) -> &'a [f32] {
        let (c, hs) = (self.shape.channels, self.shape.head_size());
        &self.seq[j * 3 * c + part * c + self.head * hs..][..hs]
    }

    /// The attention probabilities of query `i` over keys `0..=i`, into `p[..=i]`.
    #[inline(always)]
    fn probs(&self, i: usize, p: &mut [f32]) {
        let t = self.shape.time;
        let scale = self.shape.scale();
        let p = &mut p[..=i];
        p.fill(0.0);
        for (d, &q) in self.row(i, 0).iter().enumerate() {
            axpy(p, q * scale, &self.keys_t[d * t..][..=i]);
        }
        let max = row_max(p);
        for s in p.iter_mut() {
            *s = exp(*s - max);
        }
        let inv = 1.0 / row_sum(p);
        for s in p.iter_mut() {
            *s *= inv;
        }
    }
}

/// `out` (`[B, T, C]`): for each head, softmax(q kᵀ / √hs, causal) v.
pub fn causal_attention(qkv: &[f32], shape: Packed, out: &mut [f32]) {
    let Packed {
        time: t,
        channels: c,
        ..
    } = shape;
    assert_eq!(qkv.len(), shape.batch * t * 3 * c);
    assert_eq!(out.len(), shape.batch * t * c);
    let hs = shape.head_size();
    out.par_chunks_mut(t * c)
        .zip(qkv.par_chunks(t * 3 * c))
        .for_each(|(out, seq)| {
            let mut p = vec![0.0; t];
            simd(
                #[inline(always)]
                || {
                    out.fill(0.0);
                    for head in 0..shape.heads {
                        let h = Head::new(seq, shape, head);
                        for i in 0..t {
                            h.probs(i, &mut p);
                            let y = &mut out[i * c + head * hs..][..hs];
                            for (j, &pj) in p[..=i].iter().enumerate() {
                                axpy(y, pj, h.row(j, 2));
                            }
                        }
                    }
                },
            )
        });
}

/// The gradient of [`causal_attention`] with respect to the packed input, given the gradient
/// of its output (`grad`, `[B, T, C]`), into `out` (`[B, T, 3C]`). With P the probabilities
/// (recomputed) and dy the upstream gradient: dP = dy vᵀ, dS = P ⊙ (dP - Σ_row P ⊙ dP) / √hs,
/// dq = dS k, dk = dSᵀ q, dv = Pᵀ dy.
pub fn causal_attention_backward(qkv: &[f32], grad: &[f32], shape: Packed, out: &mut [f32]) {
    let Packed {
        time: t,
        channels: c,
        ..
    } = shape;
    assert_eq!(qkv.len(), shape.batch * t * 3 * c);
    assert_eq!(grad.len(), shape.batch * t * c);
    assert_eq!(out.len(), qkv.len());
    let (hs, scale) = (shape.head_size(), shape.scale());
    out.par_chunks_mut(t * 3 * c)
        .zip(qkv.par_chunks(t * 3 * c).zip(grad.par_chunks(t * c)))
        .for_each(|(out, (seq, grad))| {
            let (mut p, mut ds) = (vec![0.0; t], vec![0.0; t]);
            let (mut dk, mut dv) = (vec![0.0; t * hs], vec![0.0; t * hs]);
            simd(
                #[inline(always)]
                || {
                    for head in 0..shape.heads {
                        let h = Head::new(seq, shape, head);
                        dk.fill(0.0);
                        dv.fill(0.0);
                        for i in 0..t {
                            h.probs(i, &mut p);
                            let dy = &grad[i * c + head * hs..][..hs];
                            let ds = &mut ds[..=i];
                            ds.fill(0.0);
                            for (d, &g) in dy.iter().enumerate() {
                                axpy(ds, g, &h.values_t[d * t..][..=i]); // dP row i
                            }
                            let weighted: f32 = dot(&p[..=i], ds);
                            for (s, &pj) in ds.iter_mut().zip(&p[..=i]) {
                                *s = pj * (*s - weighted) * scale;
                            }
                            let dq = &mut out[i * 3 * c + head * hs..][..hs];
                            dq.fill(0.0);
                            for (j, (&s, &pj)) in ds.iter().zip(&p[..=i]).enumerate() {
                                axpy(dq, s, h.row(j, 1));
                                axpy(&mut dk[j * hs..][..hs], s, h.row(i, 0));
                                axpy(&mut dv[j * hs..][..hs], pj, dy);
                            }
                        }
                        for j in 0..t {
                            let at = j * 3 * c + head * hs;
                            out[at + c..][..hs].copy_from_slice(&dk[j * hs..][..hs]);
                            out[at + 2 * c..][..hs].copy_from_slice(&dv[j * hs..][..hs]);
                        }
                    }
                },
            )
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention of one sequence and head the textbook way, in f64: full score matrix,
    /// masked, softmax, times v. Returns (output rows, probabilities).
    fn reference(seq: &[f32], shape: Packed, head: usize) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let (t, c, hs) = (shape.time, shape.channels, shape.head_size());
        let get =
            |j: usize, part: usize, d: usize| seq[j * 3 * c + part * c + head * hs + d] as f64;
        let mut probs = vec![vec![0.0; t]; t];
        let mut out = vec![vec![0.0; hs]; t];
        for i in 0..t {
            let scores: Vec<f64> = (0..t)
                .map(|j| {
                    if j > i {
                        f64::NEG_INFINITY
                    } else {
                        (0..hs).map(|d| get(i, 0, d) * get(j, 1, d)).sum::<f64>()
                            / (hs as f64).sqrt()
                    }
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
            for j in 0..t {
                probs[i][j] = (scores[j] - max).exp() / z;
                for (d, o) in out[i].iter_mut().enumerate() {
                    *o += probs[i][j] * get(j, 2, d);
                }
            }
        }
        (out, probs)
    }

    fn input(shape: Packed, seed: usize) -> Vec<f32> {
        (0..shape.batch * shape.time * 3 * shape.channels)
            .map(|i| (((i + seed) * 2_654_435_761) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    const SHAPE: Packed = Packed {
        batch: 2,
        time: 7,
        channels: 12,
        heads: 2,
    };

    #[test]
    fn forward_matches_a_textbook_f64_attention() {
        let qkv = input(SHAPE, 1);
        let mut out = vec![0.0; SHAPE.batch * SHAPE.time * SHAPE.channels];
        causal_attention(&qkv, SHAPE, &mut out);
        let seq_len = SHAPE.time * 3 * SHAPE.channels;
        for b in 0..SHAPE.batch {
            for head in 0..SHAPE.heads {
                let (want, _) = reference(&qkv[b * seq_len..][..seq_len], SHAPE, head);
                for (i, row) in want.iter().enumerate() {
                    for (d, w) in row.iter().enumerate() {
                        let got = out[(b * SHAPE.time + i) * SHAPE.channels + head * 6 + d];
                        assert!(
                            (got as f64 - w).abs() < 1e-6,
                            "b {b} head {head} t {i} d {d}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn backward_matches_central_differences_of_the_forward() {
        let qkv = input(SHAPE, 2);
        // Loss = Σ out ⊙ w for fixed weights w: its gradient w.r.t. out is w.
        let w: Vec<f32> = input(SHAPE, 3)[..SHAPE.batch * SHAPE.time * SHAPE.channels].to_vec();
        let loss = |x: &[f32]| -> f64 {
            let mut out = vec![0.0; w.len()];
            causal_attention(x, SHAPE, &mut out);
            out.iter()
                .zip(&w)
                .map(|(o, w)| (*o as f64) * (*w as f64))
                .sum()
        };
        let mut grad = vec![0.0; qkv.len()];
        causal_attention_backward(&qkv, &w, SHAPE, &mut grad);
        let h = 1e-2f32;
        for i in (0..qkv.len()).step_by(5) {
            let (mut up, mut down) = (qkv.clone(), qkv.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (loss(&up) - loss(&down)) / (2.0 * h as f64);
            assert!(
                (grad[i] as f64 - numeric).abs() < 2e-3,
                "input {i}: {} vs {numeric}",
                grad[i]
            );
        }
    }
}
