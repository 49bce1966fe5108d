//! Feature stability across checkpoints and seeds: for every pair of recordings to compare,
//! the activation-cosine matrix of their features (one layer at a time), the optimal
//! one-to-one matching (Hungarian algorithm) and, from it and `lineage`, the share of features
//! that survive (`stability.sql`). Written to `analyze/matching.parquet` and
//! `analyze/stability.parquet`.
//!
//! The similarity matrix is computed here rather than by a SQL self-join: the join makes k²
//! rows per token (1024 at k = 32) for every pair, while a merge over token-sorted rows does
//! the same sums in memory at a small fraction of the cost.

use arrow::datatypes::{UInt16Type, UInt32Type, UInt64Type};
use datafusion::prelude::SessionContext;
use std::collections::BTreeMap;
use std::path::Path;

use crate::Result;
use crate::matching::optimal_matching;
use crate::session::{collect, derived_path, register};
use crate::sql::{AnalysisParams, render};
use crate::tables::activations::{self, ActivationRow};
use crate::tables::columns::{required, text};
use crate::tables::matching::{self, MatchingRow};

/// Two recordings whose features are matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub model_prev: String,
    pub step_prev: u32,
    pub model: String,
    pub step: u32,
    /// `checkpoints` (consecutive steps of one model) or `seeds` (two SAEs of one checkpoint).
    pub comparison: &'static str,
}

/// Every consecutive pair of checkpoints of every recorded model, plus, for each
/// `(model, reseeded)` in `seed_pairs`, `reseeded`'s steps against the same steps of `model`.
pub async fn pairs(ctx: &SessionContext, seed_pairs: &[(String, String)]) -> Result<Vec<Pair>> {
    let rows = collect(ctx, include_str!("../sql/model_steps.sql")).await?;
    let (models, steps) = (
        text(&rows, "model")?,
        required::<UInt32Type>(&rows, "step")?,
    );
    let mut by_model: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (m, s) in models.into_iter().zip(steps) {
        by_model.entry(m).or_default().push(s);
    }
    let mut out = Vec::new();
    for (model, steps) in &by_model {
        for w in steps.windows(2) {
            out.push(Pair {
                model_prev: model.clone(),
                step_prev: w[0],
                model: model.clone(),
                step: w[1],
                comparison: "checkpoints",
            });
        }
    }
    for (model, reseeded) in seed_pairs {
        let (Some(a), Some(b)) = (by_model.get(model), by_model.get(reseeded)) else {
            continue;
        };
        for step in b.iter().filter(|s| a.contains(s)) {
            out.push(Pair {
                model_prev: model.clone(),
                step_prev: *step,
                model: reseeded.clone(),
                step: *step,
                comparison: "seeds",
            });
        }
    }
    Ok(out)
}

/// One layer's recorded features, sorted by token.
type Rows = Vec<ActivationRow>;

async fn layer_rows(ctx: &SessionContext, model: &str, step: u32, layer: u16) -> Result<Rows> {
    let sql = render(
        include_str!("../sql/layer_activations.sql"),
        &[
            ("model", model.to_owned()),
            ("step", step.to_string()),
            ("layer", layer.to_string()),
        ],
    );
    activations::decode(&collect(ctx, &sql).await?)
}

/// Cosine similarity of every feature of `a` with every feature of `b` over their activation
/// vectors (0 where a feature is not recorded at a token), `n × n`.
pub fn cosine_matrix(a: &Rows, b: &Rows, n: usize) -> Vec<Vec<f64>> {
    let norms = |rows: &Rows| {
        let mut sq = vec![0.0f64; n];
        for r in rows {
            sq[r.neuron as usize] += (r.value as f64).powi(2);
        }
        sq.into_iter().map(f64::sqrt).collect::<Vec<_>>()
    };
    let (na, nb) = (norms(a), norms(b));
    let mut dot = vec![vec![0.0f64; n]; n];
    let (mut i, mut j) = (0, 0);
    // Merge the two token-sorted lists, one token at a time.
    while i < a.len() && j < b.len() {
        let (ta, tb) = (a[i].token_index, b[j].token_index);
        if ta < tb {
            i += 1;
        } else if tb < ta {
            j += 1;
        } else {
            let i_end = i + a[i..].iter().take_while(|r| r.token_index == ta).count();
            let j_end = j + b[j..].iter().take_while(|r| r.token_index == ta).count();
            for ra in &a[i..i_end] {
                for rb in &b[j..j_end] {
                    dot[ra.neuron as usize][rb.neuron as usize] +=
                        ra.value as f64 * rb.value as f64;
                }
            }
            (i, j) = (i_end, j_end);
        }
    }
    for (fa, row) in dot.iter_mut().enumerate() {
        for (fb, d) in row.iter_mut().enumerate() {
            let denom = na[fa] * nb[fb];
            *d = if denom > 0.0 { *d / denom } else { 0.0 };
        }
    }
    dot
}

/// One matched pair of features.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMatch {
    pub prev: usize,
    pub next: usize,
    pub cosine: f64,
    /// The earlier feature was active at some token.
    pub alive_prev: bool,
}

/// The optimal one-to-one matching of the `n` features of `a` to those of `b`. Only features
/// alive in either recording enter the Hungarian algorithm (O(m³) in their number m); the rest
/// are paired by index with cosine 0.
pub fn match_features(a: &Rows, b: &Rows, n: usize) -> Vec<FeatureMatch> {
    let alive = |rows: &Rows| {
        let mut on = vec![false; n];
        rows.iter().for_each(|r| on[r.neuron as usize] = true);
        on
    };
    let (alive_a, alive_b) = (alive(a), alive(b));
    let cos = cosine_matrix(a, b, n);
    // Features alive in either: a square sub-problem over the larger of the two lists.
    let list = |on: &[bool], other: &[bool]| -> Vec<usize> {
        let mut ids: Vec<usize> = (0..n).filter(|&f| on[f]).collect();
        let want = on
            .iter()
            .filter(|x| **x)
            .count()
            .max(other.iter().filter(|x| **x).count());
        ids.extend((0..n).filter(|&f| !on[f]).take(want - ids.len()));
        ids
    };
    let (ids_a, ids_b) = (list(&alive_a, &alive_b), list(&alive_b, &alive_a));
    let sub: Vec<Vec<f64>> = ids_a
        .iter()
        .map(|&fa| ids_b.iter().map(|&fb| cos[fa][fb]).collect())
        .collect();
    let mut taken_b = vec![false; n];
    let mut out: Vec<FeatureMatch> = optimal_matching(&sub)
        .into_iter()
        .map(|m| {
            let (prev, next) = (ids_a[m.a], ids_b[m.b]);
            taken_b[next] = true;
            FeatureMatch {
                prev,
                next,
                cosine: m.score,
                alive_prev: alive_a[prev],
            }
        })
        .collect();
    // The features outside the sub-problem (dead in both), paired in index order.
    let mut rest_b = (0..n).filter(|&f| !taken_b[f]);
    let taken_a: Vec<bool> = {
        let mut t = vec![false; n];
        out.iter().for_each(|m| t[m.prev] = true);
        t
    };
    for prev in (0..n).filter(|&f| !taken_a[f]) {
        if let Some(next) = rest_b.next() {
            out.push(FeatureMatch {
                prev,
                next,
                cosine: cos[prev][next],
                alive_prev: alive_a[prev],
            });
        }
    }
    out.sort_by_key(|m| m.prev);
    out
}

/// Writes `matching` (every pair, every layer both recordings share) and then `stability`
/// (`stability.sql` over `matching` and `lineage`), registering both. `on_pair` is called as
/// each pair starts. Returns the row counts.
pub async fn write_stability(
    ctx: &SessionContext,
    run_dir: &Path,
    params: &AnalysisParams,
    seed_pairs: &[(String, String)],
    metadata: &[(&str, String)],
    on_pair: &mut dyn FnMut(&Pair, usize, usize),
) -> Result<(usize, usize)> {
    let sizes = collect(ctx, include_str!("../sql/feature_counts.sql")).await?;
    let (sm, ss, sl, sn) = (
        text(&sizes, "model")?,
        required::<UInt32Type>(&sizes, "step")?,
        required::<UInt16Type>(&sizes, "layer")?,
        required::<UInt64Type>(&sizes, "n_features")?,
    );
    let size: BTreeMap<(String, u32, u16), usize> = sm
        .into_iter()
        .enumerate()
        .map(|(i, m)| ((m, ss[i], sl[i]), sn[i] as usize))
        .collect();
    let all = pairs(ctx, seed_pairs).await?;
    let mut batches = Vec::new();
    for (i, pair) in all.iter().enumerate() {
        on_pair(pair, i, all.len());
        let layers: Vec<(u16, usize)> = size
            .iter()
            .filter(|((m, s, _), _)| *m == pair.model && *s == pair.step)
            .filter_map(|((_, _, l), n)| {
                size.get(&(pair.model_prev.clone(), pair.step_prev, *l))
                    .map(|np| (*l, (*n).max(*np)))
            })
            .collect();
        for (layer, n) in layers {
            let a = layer_rows(ctx, &pair.model_prev, pair.step_prev, layer).await?;
            let b = layer_rows(ctx, &pair.model, pair.step, layer).await?;
            let matches = match_features(&a, &b, n);
            let rows: Vec<MatchingRow> = matches
                .iter()
                .map(|m| MatchingRow {
                    model: pair.model.clone(),
                    model_prev: pair.model_prev.clone(),
                    comparison: pair.comparison.to_owned(),
                    layer,
                    step_prev: pair.step_prev,
                    step: pair.step,
                    neuron_prev: m.prev as u16,
                    neuron: m.next as u16,
                    cosine: m.cosine,
                    alive_prev: m.alive_prev,
                })
                .collect();
            batches.push(matching::encode(&rows)?);
        }
    }
    let path = derived_path(run_dir, "matching");
    let matched = crate::parquet_io::write_parquet(&path, matching::schema(), &batches, metadata)?;
    ctx.deregister_table("matching")?;
    register(ctx, "matching", &path, false).await?;

    let path = derived_path(run_dir, "stability");
    let sql = params.render(include_str!("../sql/stability.sql"));
    let rows = crate::analysis::write_sliced(ctx, &[sql], &path, metadata).await?;
    ctx.deregister_table("stability")?;
    register(ctx, "stability", &path, false).await?;
    Ok((matched, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows from (token, feature, value) triples.
    fn rows(triples: &[(u32, u16, f32)]) -> Rows {
        triples
            .iter()
            .map(|&(token_index, neuron, value)| ActivationRow {
                neuron,
                token_index,
                value,
            })
            .collect()
    }

    #[test]
    fn cosine_matrix_equals_dense_vectors() {
        // Two features over 3 tokens; b is a with the features swapped and token 2 changed.
        let a = rows(&[(0, 0, 1.0), (0, 1, 2.0), (1, 0, 3.0), (2, 1, 1.0)]);
        let b = rows(&[(0, 1, 1.0), (0, 0, 2.0), (1, 1, 3.0), (2, 0, 4.0)]);
        let m = cosine_matrix(&a, &b, 2);
        // Dense: a0 = [1,3,0], a1 = [2,0,1]; b0 = [2,0,4], b1 = [1,3,0].
        let cos = |x: [f64; 3], y: [f64; 3]| {
            let d: f64 = x.iter().zip(&y).map(|(p, q)| p * q).sum();
            d / (x.iter().map(|v| v * v).sum::<f64>().sqrt()
                * y.iter().map(|v| v * v).sum::<f64>().sqrt())
        };
        let (a0, a1, b0, b1) = (
            [1.0, 3.0, 0.0],
            [2.0, 0.0, 1.0],
            [2.0, 0.0, 4.0],
            [1.0, 3.0, 0.0],
        );
        for (got, want) in [
            (m[0][0], cos(a0, b0)),
            (m[0][1], cos(a0, b1)),
            (m[1][0], cos(a1, b0)),
            (m[1][1], cos(a1, b1)),
        ] {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        // The matching recovers the swap: a0 ↔ b1 exactly.
        let matches = match_features(&a, &b, 2);
        assert_eq!((matches[0].prev, matches[0].next), (0, 1));
        assert!((matches[0].cosine - 1.0).abs() < 1e-12);
    }

    #[test]
    fn dead_features_are_paired_outside_the_hungarian_problem() {
        // 5 features; only 0 and 3 alive in a, only 2 alive in b.
        let a = rows(&[(0, 0, 1.0), (1, 3, 1.0)]);
        let b = rows(&[(1, 2, 5.0)]);
        let m = match_features(&a, &b, 5);
        assert_eq!(m.len(), 5, "every feature of a paired once");
        let mut nexts: Vec<usize> = m.iter().map(|x| x.next).collect();
        nexts.sort();
        assert_eq!(nexts, vec![0, 1, 2, 3, 4], "one-to-one");
        let three = m.iter().find(|x| x.prev == 3).unwrap();
        assert_eq!(three.next, 2);
        assert!((three.cosine - 1.0).abs() < 1e-12);
        assert_eq!(m.iter().filter(|x| x.alive_prev).count(), 2);
    }

    #[test]
    fn a_copy_with_permuted_neurons_is_matched_back_exactly() {
        // A "second seed" that is the first model with its 64 neurons renamed: matching must
        // find the renaming, every pair at cosine 1, whatever the permutation.
        let n = 64usize;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut perm: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            perm.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        let mut a = Vec::new();
        for token in 0..400u32 {
            for _ in 0..6 {
                let f = (next() % n as u64) as u16;
                if !a
                    .iter()
                    .any(|r: &ActivationRow| r.token_index == token && r.neuron == f)
                {
                    a.push(ActivationRow {
                        neuron: f,
                        token_index: token,
                        value: 0.5 + (next() % 1000) as f32 / 100.0,
                    });
                }
            }
        }
        let mut b: Rows = a
            .iter()
            .map(|r| ActivationRow {
                neuron: perm[r.neuron as usize] as u16,
                ..*r
            })
            .collect();
        b.sort_by_key(|r| (r.token_index, r.neuron));
        let matches = match_features(&a, &b, n);
        assert_eq!(matches.len(), n);
        for m in &matches {
            assert_eq!(m.next, perm[m.prev], "neuron {}", m.prev);
            assert!((m.cosine - 1.0).abs() < 1e-9, "{}", m.cosine);
            assert!(m.alive_prev);
        }
    }
}
