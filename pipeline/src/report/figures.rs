//! One function per figure: typed rows in, a chart with its title and caption out.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use queries::results::{
    CrossLayer, EntropyDifference, FormationCount, FrequencyBin, LayerEntropy, LayerOverTraining,
    LossPoint, StabilityPoint, Steerability, SteeringDose,
};
use reports::chart::{BarChart, LineChart, Series};
use reports::html::FigureRef;

/// A figure ready to write: `figures/<stem>.{png,svg,csv}`.
pub struct Drawn {
    stem: &'static str,
    title: &'static str,
    caption: &'static str,
    chart: Chart,
}

enum Chart {
    Line(LineChart),
    Bar(BarChart),
}

impl Drawn {
    /// Writes the figure's files and returns how the index page links them.
    pub fn write(&self, dir: &Path) -> Result<FigureRef> {
        let stem = dir.join(self.stem);
        let files = match &self.chart {
            Chart::Line(c) => c.write(&stem)?,
            Chart::Bar(c) => c.write(&stem)?,
        };
        Ok(super::figure_ref(self.title, self.caption, &files))
    }
}

/// One line per key, points in row order, missing values left out.
fn lines<'a>(points: impl Iterator<Item = (String, f64, Option<f64>)> + 'a) -> Vec<Series> {
    let mut by: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (key, x, y) in points {
        let line = by.entry(key).or_default();
        if let Some(y) = y.filter(|y| y.is_finite()) {
            line.push((x, y));
        }
    }
    by.into_iter()
        .map(|(label, points)| Series {
            label,
            points,
            band: vec![],
        })
        .collect()
}

/// Log-scale x axes start at step + 1, so that step 0 is drawn.
fn x_step(step: u32) -> f64 {
    step as f64 + 1.0
}

fn layer_key(model: &str, layer: u16) -> String {
    format!("{model} L{layer}")
}

/// Grouped bars: one group per key, one bar per category, counts summed.
fn bars<C: Ord + Copy>(
    rows: impl Iterator<Item = (String, C, u64)> + Clone,
) -> (Vec<C>, Vec<(String, Vec<f64>)>) {
    let mut categories: Vec<C> = rows.clone().map(|r| r.1).collect();
    categories.sort();
    categories.dedup();
    let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (key, c, n) in rows {
        let group = groups
            .entry(key)
            .or_insert_with(|| vec![0.0; categories.len()]);
        let i = categories.binary_search(&c).unwrap_or_default();
        group[i] += n as f64;
    }
    (categories, groups.into_iter().collect())
}

/// 1. Training curves.
pub fn loss(rows: &[LossPoint]) -> Drawn {
    Drawn {
        stem: "loss",
        title: "Training curves",
        caption: "Validation loss of the TopK model and the dense baseline over tokens seen; markers are checkpoints. The TopK model should track the dense one closely.",
        chart: Chart::Line(LineChart {
            title: "Validation loss during training".into(),
            x_label: "tokens seen".into(),
            y_label: "validation loss (nats/token)".into(),
            log_x: false,
            series: lines(
                rows.iter()
                    .map(|r| (r.model.clone(), r.tokens as f64, Some(r.val_loss))),
            ),
        }),
    }
}

/// 2. Entropy per layer at the last checkpoint, median with the inter-quartile band.
pub fn entropy_by_layer(rows: &[LayerEntropy]) -> Drawn {
    let mut series = Vec::new();
    type Quartiles = fn(&LayerEntropy) -> (Option<f64>, Option<f64>, Option<f64>);
    let kinds: [(&str, Quartiles); 2] = [
        ("semantic", |r| {
            (
                r.semantic_entropy_median,
                r.semantic_entropy_q1,
                r.semantic_entropy_q3,
            )
        }),
        ("token", |r| {
            (
                r.token_entropy_median,
                r.token_entropy_q1,
                r.token_entropy_q3,
            )
        }),
    ];
    for (kind, quartiles) in kinds {
        let mut by: BTreeMap<&str, Series> = BTreeMap::new();
        for r in rows {
            let line = by.entry(&r.model).or_insert_with(|| Series {
                label: format!("{} ({kind})", r.model),
                ..Default::default()
            });
            if let (Some(median), Some(q1), Some(q3)) = quartiles(r) {
                let x = r.layer as f64;
                line.points.push((x, median));
                line.band.push((x, q1, q3));
            }
        }
        series.extend(by.into_values());
    }
    Drawn {
        stem: "entropy_by_layer",
        title: "Entropy per layer",
        caption: "Median normalised token and semantic entropy of neurons per layer, with the inter-quartile range. Lower semantic entropy means more concept-specific neurons; the paper finds TopK layers lower than dense ones.",
        chart: Chart::Line(LineChart {
            title: "Neuron entropy per layer (last checkpoint)".into(),
            x_label: "layer".into(),
            y_label: "normalised entropy (median, IQR band)".into(),
            log_x: false,
            series,
        }),
    }
}

/// 3. Semantic entropy of each layer over training.
pub fn entropy_over_training(rows: &[LayerOverTraining]) -> Drawn {
    let mut by: BTreeMap<String, Series> = BTreeMap::new();
    for r in rows {
        let key = layer_key(&r.model, r.layer);
        let line = by.entry(key.clone()).or_insert_with(|| Series {
            label: key,
            ..Default::default()
        });
        if let (Some(median), Some(q1), Some(q3)) = (
            r.semantic_entropy_median,
            r.semantic_entropy_q1,
            r.semantic_entropy_q3,
        ) {
            line.points.push((x_step(r.step), median));
            line.band.push((x_step(r.step), q1, q3));
        }
    }
    Drawn {
        stem: "entropy_over_training",
        title: "Entropy over training",
        caption: "Median normalised semantic entropy of each layer's neurons at every checkpoint (IQR shaded). A fall marks neurons becoming concept-specific.",
        chart: Chart::Line(LineChart {
            title: "Semantic entropy over training".into(),
            x_label: "step + 1".into(),
            y_label: "normalised semantic entropy (median)".into(),
            log_x: true,
            series: by.into_values().collect(),
        }),
    }
}

/// 3b. Lineage: neurons whose activation pattern survives from one checkpoint to the next.
pub fn stable_share(rows: &[LayerOverTraining]) -> Drawn {
    Drawn {
        stem: "stable_share",
        title: "Lineage",
        caption: "Share of neurons whose activation pattern over the evaluation tokens keeps cosine similarity at or above the threshold from one checkpoint to the next. In a TopK LM a neuron keeps its index, so this measures identity directly.",
        chart: Chart::Line(LineChart {
            title: "Share of neurons stable since the previous checkpoint".into(),
            x_label: "step + 1".into(),
            y_label: "stable share (cosine ≥ threshold)".into(),
            log_x: true,
            series: lines(
                rows.iter()
                    .map(|r| (layer_key(&r.model, r.layer), x_step(r.step), r.stable_share)),
            ),
        }),
    }
}

/// 4. When neurons form.
pub fn formation(rows: &[FormationCount]) -> Drawn {
    let (steps, groups) = bars(
        rows.iter()
            .map(|r| (layer_key(&r.model, r.layer), r.formation_step, r.n)),
    );
    Drawn {
        stem: "formation",
        title: "Neuron formation",
        caption: "Number of neurons per layer that form at each checkpoint: from then on their top concept stays fixed and their normalised semantic entropy stays below the threshold.",
        chart: Chart::Bar(BarChart {
            title: "When neurons form".into(),
            x_label: "formation step".into(),
            y_label: "neurons".into(),
            categories: steps.iter().map(u32::to_string).collect(),
            groups,
        }),
    }
}

/// 6. Activation frequency at the last checkpoint, by decade.
pub fn frequency(rows: &[FrequencyBin]) -> Drawn {
    let (decades, groups) = bars(rows.iter().map(|r| (r.model.clone(), r.decade, r.n)));
    let label = |d: &i64| {
        if *d == -9 {
            "dead".to_owned()
        } else {
            format!("1e{d}")
        }
    };
    Drawn {
        stem: "frequency",
        title: "Activation frequency",
        caption: "Neurons by how often they are among a token's top-k, on a log scale; `dead` neurons never are.",
        chart: Chart::Bar(BarChart {
            title: "Activation frequency of neurons (last checkpoint)".into(),
            x_label: "share of tokens where active (decade)".into(),
            y_label: "neurons".into(),
            categories: decades.iter().map(label).collect(),
            groups,
        }),
    }
}

/// 5b. Same-index neurons across adjacent layers.
pub fn cross_layer(rows: &[CrossLayer]) -> Drawn {
    Drawn {
        stem: "cross_layer",
        title: "Cross-layer consistency",
        caption: "How much neuron i of layer l and neuron i of layer l + 1 fire on the same tokens (the paper's consistent neurons across layers).",
        chart: Chart::Line(LineChart {
            title: "Same-index neurons across adjacent layers".into(),
            x_label: "step + 1".into(),
            y_label: "mean cosine of neuron i in layers l and l+1".into(),
            log_x: true,
            series: lines(rows.iter().map(|r| {
                (
                    format!("{} L{}→L{}", r.model, r.layer, r.layer + 1),
                    x_step(r.step),
                    r.mean_cosine,
                )
            })),
        }),
    }
}

/// 6b. Dead neurons over training.
pub fn dead(rows: &[LayerOverTraining]) -> Drawn {
    Drawn {
        stem: "dead",
        title: "Dead neurons",
        caption: "Share of each layer's neurons that are never among a token's recorded top-k on the evaluation set, at every checkpoint.",
        chart: Chart::Line(LineChart {
            title: "Dead neurons over training".into(),
            x_label: "step + 1".into(),
            y_label: "share of neurons never active".into(),
            log_x: true,
            series: lines(
                rows.iter()
                    .map(|r| (layer_key(&r.model, r.layer), x_step(r.step), r.dead_share)),
            ),
        }),
    }
}

/// 7. Steering: the concept's share of generated words, and the fluency cost, per strength.
pub fn steering(rows: &[SteeringDose]) -> [Drawn; 2] {
    let curve = |value: fn(&SteeringDose) -> f64| {
        lines(rows.iter().map(move |r| {
            (
                format!("{} {}", r.model, r.concept),
                r.strength,
                Some(value(r)),
            )
        }))
    };
    let chart = |title: &str, y: &str, series| {
        Chart::Line(LineChart {
            title: title.into(),
            x_label: "strength (× max activation)".into(),
            y_label: y.into(),
            log_x: false,
            series,
        })
    };
    [
        Drawn {
            stem: "steering_share",
            title: "Steering: share of concept words",
            caption: "Mean share of generated words that belong to the target concept when the concept's most specific neuron of each TopK layer is set to a multiple of its largest observed activation (0: unsteered).",
            chart: chart(
                "Steering: share of concept words",
                "share of generated words in the concept",
                curve(|r| r.concept_share),
            ),
        },
        Drawn {
            stem: "steering_perplexity",
            title: "Steering: fluency cost",
            caption: "Perplexity of the steered continuations under the unsteered model: the price of the intervention in fluency.",
            chart: chart(
                "Steering: fluency cost",
                "perplexity under the unsteered model",
                curve(|r| r.perplexity),
            ),
        },
    ]
}

/// TopK minus dense, per layer, with the bootstrap interval as a band: the differences that
/// hold are those whose band stays off zero.
pub fn entropy_differences(rows: &[EntropyDifference]) -> Drawn {
    let mut by: BTreeMap<String, Series> = BTreeMap::new();
    for r in rows {
        let line = by
            .entry(format!("{} − {} ({})", r.model, r.baseline, r.measure))
            .or_insert_with_key(|label| Series {
                label: label.clone(),
                ..Default::default()
            });
        line.points.push((r.layer as f64, r.difference));
        line.band.push((r.layer as f64, r.lo, r.hi));
    }
    Drawn {
        stem: "entropy_differences",
        title: "Entropy differences with intervals",
        caption: "Median normalised entropy of each TopK model's neurons minus the dense baseline's, per layer at the last checkpoint, with a 95% bootstrap interval over evaluation documents (paired: both models see the same resampled text; `analyze.bootstrap_resamples`). A difference holds where its band stays clear of zero (`entropy_differences.excludes_zero`).",
        chart: Chart::Line(LineChart {
            title: "TopK minus dense: median entropy per layer".into(),
            x_label: "layer".into(),
            y_label: "difference in normalised entropy".into(),
            log_x: false,
            series: by.into_values().collect(),
        }),
    }
}

/// Steerability over training: from which checkpoint setting a concept's neurons raises the
/// share of its words.
pub fn steerability(rows: &[Steerability]) -> Drawn {
    Drawn {
        stem: "steerability",
        title: "Steerability over training",
        caption: "At each checkpoint, the concept's most specific neuron of each TopK layer (chosen at that checkpoint) is set to a multiple of its largest activation; the curve is the largest gain in the share of concept words over the unsteered text among the strengths tried. A concept is steerable from the step where the gain rises clear of zero.",
        chart: Chart::Line(LineChart {
            title: "Gain in concept share from steering, by checkpoint".into(),
            x_label: "step + 1".into(),
            y_label: "best gain in share of concept words".into(),
            log_x: true,
            series: lines(rows.iter().map(|r| {
                (
                    format!("{} {}", r.model, r.concept),
                    x_step(r.step),
                    Some(r.gain),
                )
            })),
        }),
    }
}

/// Stability of TopK-LM neurons against post-hoc SAE latents.
pub fn stability(rows: &[StabilityPoint]) -> Drawn {
    let key = |r: &StabilityPoint| match r.comparison.as_str() {
        "seeds" => format!("{} vs other seed", r.model),
        _ => format!("{} ({})", r.model, r.method),
    };
    Drawn {
        stem: "stability",
        title: "Stability: TopK LM against SAE",
        caption: "Share of features alive at a checkpoint that have a one-to-one match at the next checkpoint with activation cosine at or above the threshold (mean over layers). TopK-LM neurons by index and by optimal matching; SAE latents (trained after the fact on the dense baseline, same k) by optimal matching only, since their order is arbitrary; and two SAEs of the last checkpoint trained with different seeds. A `-sae-warm` series (`sae.warm_start`) starts each checkpoint's SAE from the previous one's, which favours its stability by construction; a `-seed2` model is the same model trained with another seed, matched at the same step.",
        chart: Chart::Line(LineChart {
            title: "Features surviving from one checkpoint to the next".into(),
            x_label: "step + 1".into(),
            y_label: "share with a match at cosine ≥ threshold".into(),
            log_x: true,
            series: lines(
                rows.iter()
                    .map(|r| (key(r), x_step(r.step), Some(r.share_stable))),
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_group_by_key_keep_row_order_and_leave_out_missing_values() {
        let series = lines(
            [
                ("b".to_owned(), 1.0, Some(1.0)),
                ("a".to_owned(), 2.0, None),
                ("b".to_owned(), 0.5, Some(f64::NAN)),
                ("a".to_owned(), 3.0, Some(4.0)),
                ("b".to_owned(), 2.0, Some(3.0)),
            ]
            .into_iter(),
        );
        let got: Vec<(&str, &[(f64, f64)])> = series
            .iter()
            .map(|s| (s.label.as_str(), s.points.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", &[(3.0, 4.0)][..]),
                ("b", &[(1.0, 1.0), (2.0, 3.0)][..])
            ]
        );
    }

    #[test]
    fn bars_sum_counts_per_group_and_category() {
        let rows = [
            ("x".to_owned(), 600u32, 2u64),
            ("y".to_owned(), 0, 1),
            ("x".to_owned(), 0, 3),
            ("x".to_owned(), 600, 1),
        ];
        let (categories, groups) = bars(rows.iter().cloned());
        assert_eq!(categories, vec![0, 600]);
        assert_eq!(
            groups,
            vec![
                ("x".to_owned(), vec![3.0, 3.0]),
                ("y".to_owned(), vec![1.0, 0.0])
            ]
        );
    }
}
