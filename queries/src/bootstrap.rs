//! Bootstrap intervals for the headline comparison: the median normalised token and semantic
//! entropy of each layer at each model's last checkpoint, and the difference between a model
//! and a baseline (TopK against dense), resampling evaluation documents.
//!
//! A resample draws as many documents as the evaluation set has, with replacement (seeded);
//! a neuron's weight on a category is then the sum over documents of its weight in each
//! document times how often that document was drawn, and its entropy is computed as
//! `token_entropy.sql` / `semantic_entropy.sql` compute it. Both models of a difference see the
//! same resamples (a paired bootstrap), so the shared variation of the text cancels.
//!
//! Intervals are basic (pivotal) bootstrap intervals, `[2θ̂ − q₉₇.₅, 2θ̂ − q₂.₅]` with q the
//! quantiles of the resampled statistic: a resample repeats some documents and drops others,
//! so a neuron sees fewer distinct tokens and its normalised entropy shifts upwards; the
//! percentile interval would inherit that shift (on the default run it often excluded the
//! estimate itself), the basic interval reflects it back.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::datatypes::{Float64Type, Int64Type, UInt16Type, UInt32Type};
use datafusion::prelude::SessionContext;

use crate::Result;
use crate::parquet_io::write_parquet;
use crate::session::{collect, derived_path, register};
use crate::sql::AnalysisParams;
use crate::sql::literal::{Literal, fill};
use crate::tables::columns::{required, text};
use crate::tables::intervals::{self, DifferenceRow, IntervalRow};

/// One neuron's activation weight on one category within one document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub neuron: u16,
    pub category: i64,
    pub doc: u32,
    pub w: f64,
    pub n: u64,
}

/// How often each document is drawn, per resample: row 0 is the observed data (each document
/// once), rows 1..=`resamples` are bootstrap draws.
pub fn draws(n_docs: usize, resamples: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut state = seed ^ 0x6a09_e667_f3bc_c909;
    // SplitMix64: a fixed, documented generator, so intervals are the same on every machine.
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut out = vec![vec![1u32; n_docs]];
    for _ in 0..resamples {
        let mut m = vec![0u32; n_docs];
        for _ in 0..n_docs {
            m[(next() % n_docs as u64) as usize] += 1;
        }
        out.push(m);
    }
    out
}

/// The median normalised entropy over the neurons of one slice with at least `min_count`
/// observations, under document multiplicities `mult`; `None` when no neuron qualifies.
/// `cells` are sorted by (neuron, category).
pub fn median_entropy(cells: &[Cell], mult: &[u32], min_count: u64) -> Option<f64> {
    let mut values = Vec::new();
    for neuron in cells.chunk_by(|a, b| a.neuron == b.neuron) {
        let (mut total, mut sum_wlogw, mut categories, mut n_obs) = (0.0, 0.0, 0usize, 0u64);
        for category in neuron.chunk_by(|a, b| a.category == b.category) {
            let (mut w, mut n) = (0.0, 0u64);
            for c in category {
                let m = mult[c.doc as usize];
                w += m as f64 * c.w;
                n += m as u64 * c.n;
            }
            if w > 0.0 {
                total += w;
                sum_wlogw += w * w.log2();
                categories += 1;
                n_obs += n;
            }
        }
        if categories == 0 || n_obs < min_count {
            continue;
        }
        let h = total.log2() - sum_wlogw / total;
        values.push(if categories > 1 {
            h / (categories as f64).log2()
        } else {
            0.0
        });
    }
    percentile(&mut values, 0.5)
}

/// The `p`-quantile with linear interpolation between order statistics (SQL's
/// `PERCENTILE_CONT`); `None` for no values.
pub fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let pos = p * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(values[lo] + (values[hi] - values[lo]) * (pos - lo as f64))
}

/// An estimate and its 95% percentile interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
}

/// The basic bootstrap interval of a statistic from its value on the observed data
/// (`values[0]`) and on each resample (`values[1..]`); resamples where it is undefined are left
/// out.
pub fn interval(values: &[Option<f64>]) -> Option<Interval> {
    let estimate = values.first().copied().flatten()?;
    let mut resampled: Vec<f64> = values[1..].iter().flatten().copied().collect();
    let (q_lo, q_hi) = (
        percentile(&mut resampled, 0.025)?,
        percentile(&mut resampled, 0.975)?,
    );
    Some(Interval {
        estimate,
        lo: 2.0 * estimate - q_hi,
        hi: 2.0 * estimate - q_lo,
    })
}

/// The cells of one slice, as `bootstrap_cells.sql` returns them.
fn cells(batches: &[arrow::array::RecordBatch]) -> Result<Vec<Cell>> {
    let neurons = required::<UInt16Type>(batches, "neuron")?;
    let categories = required::<Int64Type>(batches, "category")?;
    let docs = required::<UInt32Type>(batches, "doc_id")?;
    let ws = required::<Float64Type>(batches, "w")?;
    let ns = required::<Int64Type>(batches, "n")?;
    Ok((0..neurons.len())
        .map(|i| Cell {
            neuron: neurons[i],
            category: categories[i],
            doc: docs[i],
            w: ws[i],
            n: ns[i] as u64,
        })
        .collect())
}

/// The two measures: which category an activation counts for.
const MEASURES: [(&str, &str, &str); 2] = [
    ("token", "CAST(t.token_id AS BIGINT)", "TRUE"),
    (
        "semantic",
        "CAST(COALESCE(t.concept_id, 0) AS BIGINT)",
        "{{concept_filter}}",
    ),
];

/// Computes `entropy_intervals` (each model's layers at its last checkpoint) and
/// `entropy_differences` (each `(model, baseline)` pair at their shared last checkpoint) and
/// writes them to `analyze/`. Returns the rows of each.
pub async fn write_intervals(
    ctx: &SessionContext,
    run_dir: &Path,
    params: &AnalysisParams,
    pairs: &[(String, String)],
    metadata: &[(&str, String)],
) -> Result<(usize, usize)> {
    let n_docs = required::<UInt32Type>(
        &collect(
            ctx,
            "SELECT CAST(COUNT(DISTINCT doc_id) AS INT UNSIGNED) AS n FROM tokens",
        )
        .await?,
        "n",
    )?[0] as usize;
    let draws = draws(n_docs, params.bootstrap_resamples, params.bootstrap_seed);
    let min_count = params.min_count as u64;
    let mut interval_rows = Vec::new();
    // (measure, model, step, layer) → the statistic under every draw.
    let mut medians: BTreeMap<(String, String, u32, u16), Vec<Option<f64>>> = BTreeMap::new();
    let slices = collect(ctx, include_str!("../sql/bootstrap_slices.sql")).await?;
    let slices: Vec<(String, u32, u16)> = {
        let models = text(&slices, "model")?;
        let steps = required::<UInt32Type>(&slices, "step")?;
        let layers = required::<UInt16Type>(&slices, "layer")?;
        (0..models.len())
            .map(|i| (models[i].clone(), steps[i], layers[i]))
            .collect()
    };
    for (measure, category, filter) in MEASURES {
        for (model, step, layer) in &slices {
            let cells_sql = include_str!("../sql/bootstrap_cells.sql")
                .replace("{{category}}", category)
                .replace("{{filter}}", filter);
            let slice = [
                ("model", Literal::from(model.as_str())),
                ("step", Literal::Int(*step as i64)),
                ("layer", Literal::Int(*layer as i64)),
            ];
            let sql = params.render(&fill(&cells_sql, &slice));
            let cells = cells(&collect(ctx, &sql).await?)?;
            let values: Vec<Option<f64>> = {
                use rayon::prelude::*;
                draws
                    .par_iter()
                    .map(|m| median_entropy(&cells, m, min_count))
                    .collect()
            };
            if let Some(i) = interval(&values) {
                interval_rows.push(IntervalRow {
                    model: model.clone(),
                    step: *step,
                    layer: *layer,
                    measure: measure.to_owned(),
                    median: i.estimate,
                    lo: i.lo,
                    hi: i.hi,
                    resamples: params.bootstrap_resamples as u32,
                });
            }
            medians.insert((measure.to_owned(), model.clone(), *step, *layer), values);
        }
    }
    let mut difference_rows = Vec::new();
    for (model, baseline) in pairs {
        for ((measure, m, step, layer), values) in &medians {
            if m != model {
                continue;
            }
            let Some(base) = medians.get(&(measure.clone(), baseline.clone(), *step, *layer))
            else {
                continue;
            };
            let diffs: Vec<Option<f64>> = values
                .iter()
                .zip(base)
                .map(|(a, b)| Some((*a)? - (*b)?))
                .collect();
            if let Some(i) = interval(&diffs) {
                difference_rows.push(DifferenceRow {
                    model: model.clone(),
                    baseline: baseline.clone(),
                    step: *step,
                    layer: *layer,
                    measure: measure.clone(),
                    difference: i.estimate,
                    lo: i.lo,
                    hi: i.hi,
                    excludes_zero: i.lo > 0.0 || i.hi < 0.0,
                });
            }
        }
    }
    for (name, batch, schema) in [
        (
            "entropy_intervals",
            intervals::encode_intervals(&interval_rows)?,
            intervals::intervals_schema(),
        ),
        (
            "entropy_differences",
            intervals::encode_differences(&difference_rows)?,
            intervals::differences_schema(),
        ),
    ] {
        let path = derived_path(run_dir, name);
        write_parquet(&path, schema, &[batch], metadata)?;
        if ctx.table_exist(name)? {
            ctx.deregister_table(name)?;
        }
        register(ctx, name, &path, false).await?;
    }
    Ok((interval_rows.len(), difference_rows.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cells where every neuron's weights are spread over `docs` documents: neuron 0 on one
    /// category (entropy 0), neuron 1 evenly on two (entropy 1) with noise by document.
    fn cells(docs: u32, noise: f64) -> Vec<Cell> {
        let mut out = Vec::new();
        for d in 0..docs {
            let jitter = noise * (((d * 7919) % 13) as f64 / 13.0 - 0.5);
            out.push(Cell {
                neuron: 0,
                category: 5,
                doc: d,
                w: 1.0,
                n: 3,
            });
            out.push(Cell {
                neuron: 1,
                category: 1,
                doc: d,
                w: 1.0 + jitter,
                n: 3,
            });
            out.push(Cell {
                neuron: 1,
                category: 2,
                doc: d,
                w: 1.0 - jitter,
                n: 3,
            });
            out.push(Cell {
                neuron: 2,
                category: (d % 4) as i64,
                doc: d,
                w: 2.0,
                n: 3,
            });
        }
        out.sort_by_key(|c| (c.neuron, c.category, c.doc));
        out
    }

    #[test]
    fn entropies_match_a_hand_computed_example() {
        // Neuron 0: one category → 0. Neuron 1: two equal → 1. Neuron 2: four equal → 1.
        let c = cells(8, 0.0);
        let ones = vec![1; 8];
        assert_eq!(median_entropy(&c, &ones, 1), Some(1.0));
        // With neuron 2 gone by min_count (it has 24 observations, the others 24 and 48).
        assert_eq!(median_entropy(&c, &ones, 25), Some(1.0));
        assert_eq!(median_entropy(&c, &ones, 49), None);
        // Median of {0, 1, 1} is 1; of {0, 1} (drop neuron 2's documents) it is 0.5.
        let only_first = vec![1, 0, 0, 0, 1, 0, 0, 0]; // neuron 2 sees category 0 only
        assert_eq!(median_entropy(&c, &only_first, 1), Some(0.0));
        let mut v = vec![3.0, 1.0, 2.0, 4.0];
        assert_eq!(percentile(&mut v, 0.5), Some(2.5));
        assert_eq!(percentile(&mut v, 0.0), Some(1.0));
    }

    #[test]
    fn the_basic_interval_reflects_the_resampled_quantiles_about_the_estimate() {
        // Resampled values 1..=41 around an estimate of 10: quantiles 2 and 40, so the basic
        // interval is [2·10 − 40, 2·10 − 2] = [−20, 18].
        let mut v = vec![Some(10.0)];
        v.extend((1..=41).map(|x| Some(x as f64)));
        let i = interval(&v).unwrap();
        assert_eq!((i.estimate, i.lo, i.hi), (10.0, -20.0, 18.0));
        assert_eq!(interval(&[None, Some(1.0)]), None);
    }

    #[test]
    fn intervals_narrow_with_more_documents_and_an_identical_pair_differs_by_zero() {
        let width = |docs: u32| {
            let c = cells(docs, 1.5);
            let d = draws(docs as usize, 400, 11);
            let v: Vec<Option<f64>> = d.iter().map(|m| median_entropy(&c, m, 1)).collect();
            let i = interval(&v).unwrap();
            assert!(
                i.lo <= i.estimate + 1e-12 && i.estimate <= i.hi + 1e-12,
                "{i:?}"
            );
            i.hi - i.lo
        };
        let (small, large) = (width(10), width(400));
        assert!(
            large < small / 2.0,
            "width {small} with 10 documents, {large} with 400"
        );
        // The same model against itself: every resample's difference is exactly zero.
        let c = cells(50, 1.5);
        let d = draws(50, 200, 3);
        let diffs: Vec<Option<f64>> = d
            .iter()
            .map(|m| Some(median_entropy(&c, m, 1)? - median_entropy(&c, m, 1)?))
            .collect();
        let i = interval(&diffs).unwrap();
        assert_eq!((i.estimate, i.lo, i.hi), (0.0, 0.0, 0.0));
        // Seeded: the same draws again, other draws with another seed.
        assert_eq!(draws(50, 5, 3), draws(50, 5, 3));
        assert_ne!(draws(50, 5, 3), draws(50, 5, 4));
        assert!(
            draws(50, 5, 3)[1..]
                .iter()
                .all(|m| m.iter().sum::<u32>() == 50)
        );
    }
}
