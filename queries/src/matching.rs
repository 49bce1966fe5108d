//! Optimal one-to-one matching of neurons between two checkpoints (or runs) by activation
//! similarity: the Hungarian algorithm (Kuhn–Munkres) over a cosine matrix. In a TopK LM
//! neurons keep their index, so the matching mostly confirms identity; it finds neurons whose
//! role moved to another index, and matches features that have no fixed order (SAEs).

use pathfinding::prelude::{Matrix, kuhn_munkres};

/// Cosines are scaled to integers for the exact integer algorithm.
const SCALE: f64 = 1e6;

/// A matched pair and its similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    pub a: usize,
    pub b: usize,
    pub score: f64,
}

/// Maximum-total-similarity one-to-one matching of the `n` neurons of `a` to those of `b`.
/// `similarity[i][j]` is the similarity of `a`'s neuron `i` and `b`'s neuron `j` (missing
/// pairs are 0).
pub fn optimal_matching(similarity: &[Vec<f64>]) -> Vec<Match> {
    let n = similarity.len();
    if n == 0 {
        return vec![];
    }
    let weights = Matrix::from_fn(n, n, |(i, j)| {
        (similarity[i][j].clamp(-1.0, 1.0) * SCALE).round() as i64
    });
    let (_, assignment) = kuhn_munkres(&weights);
    assignment
        .into_iter()
        .enumerate()
        .map(|(a, b)| Match {
            a,
            b,
            score: similarity[a][b],
        })
        .collect()
}

/// A dense `n × n` matrix from sparse (i, j, value) entries.
pub fn dense_matrix(
    n: usize,
    entries: impl IntoIterator<Item = (usize, usize, f64)>,
) -> Vec<Vec<f64>> {
    let mut m = vec![vec![0.0; n]; n];
    for (i, j, v) in entries {
        if i < n && j < n && v.is_finite() {
            m[i][j] = v;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_permutation_exactly() {
        // Neuron i of checkpoint a became neuron perm[i] of checkpoint b; other pairs are
        // noisy but weaker (a greedy row-wise choice would be fooled in row 0).
        let perm = [3, 0, 4, 1, 2];
        let n = perm.len();
        let mut sim = vec![vec![0.0; n]; n];
        for (i, row) in sim.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                *cell = ((i * 7 + j * 3) % 5) as f64 * 0.1;
            }
            row[perm[i]] = 0.9;
        }
        sim[0][1] = 0.95; // tempting for neuron 0, but neuron 3 needs column 1 more
        sim[3][1] = 0.99;
        let m = optimal_matching(&sim);
        let found: Vec<usize> = m.iter().map(|m| m.b).collect();
        assert_eq!(found, perm.to_vec());
    }
}
