//! One function per figure: typed rows in, a chart with its title and caption out. Every
//! series of a model takes that model's colour ([`Colours`]); figures with a line per model and
//! layer are small multiples, one panel per layer.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use queries::results::{
    CrossLayer, EntropyDifference, FormationCount, FrequencyBin, LayerEntropy, LayerOverTraining,
    LossPoint, StabilityPoint, Steerability, SteeringDose,
};
use reports::chart::{
    Axis, BarChart, BarGroup, Colours, Intervals, LineChart, Marker, Panel, Series, Style,
};
use reports::html::FigureRef;
use reports::style::family_and_seed;

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

/// Points sorted into panels and, within each, into labelled series; panels and series in
/// key order, points in row order, missing values left out.
struct Grid<K> {
    panels: BTreeMap<K, BTreeMap<String, Series>>,
}

impl<K: Ord> Grid<K> {
    fn new() -> Self {
        Self {
            panels: BTreeMap::new(),
        }
    }

    fn series(&mut self, panel: K, label: String, style: Style) -> &mut Series {
        self.panels
            .entry(panel)
            .or_default()
            .entry(label)
            .or_insert_with_key(|label| Series {
                label: label.clone(),
                style: Some(style),
                ..Default::default()
            })
    }

    /// Adds (x, y) to a series; a missing or non-finite y adds nothing.
    fn point(&mut self, panel: K, label: String, style: Style, x: f64, y: Option<f64>) {
        let line = self.series(panel, label, style);
        if let Some(y) = y.filter(|y| y.is_finite()) {
            line.points.push((x, y));
        }
    }

    /// Adds (x, y) with its interval (low, high).
    fn point_with_interval(
        &mut self,
        panel: K,
        label: String,
        style: Style,
        x: f64,
        (y, lo, hi): (f64, f64, f64),
    ) {
        let line = self.series(panel, label, style);
        line.points.push((x, y));
        line.band.push((x, lo, hi));
    }

    /// The panels, each's series in the models' colour order.
    fn into_panels(self, colours: &Colours, title: impl Fn(&K) -> String) -> Vec<Panel> {
        self.panels
            .into_iter()
            .map(|(k, series)| {
                let mut series: Vec<Series> = series.into_values().collect();
                series.sort_by_key(|s| colours.rank(&s.label));
                Panel {
                    title: title(&k),
                    series,
                }
            })
            .collect()
    }
}

fn layer_title(layer: &u16) -> String {
    format!("layer {layer}")
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

/// A line chart over training steps (log axis labelled in steps).
fn over_steps(title: &str, y_label: &str, panels: Vec<Panel>) -> Chart {
    Chart::Line(LineChart {
        title: title.into(),
        x_label: "training step (log scale)".into(),
        y_label: y_label.into(),
        x_axis: Axis::Steps,
        panels,
        ..Default::default()
    })
}

/// One value of each model per layer and step: a panel per layer, a line per model.
fn per_layer_over_steps<R>(
    rows: &[R],
    colours: &Colours,
    row: impl Fn(&R) -> (&str, u16, u32, Option<f64>),
) -> Vec<Panel> {
    let mut grid = Grid::new();
    for r in rows {
        let (model, layer, step, y) = row(r);
        grid.point(
            layer,
            model.to_owned(),
            colours.model(model),
            step as f64,
            y,
        );
    }
    grid.into_panels(colours, layer_title)
}

/// 1. Training curves.
pub fn loss(rows: &[LossPoint], colours: &Colours) -> Drawn {
    let mut grid = Grid::new();
    for r in rows {
        let style = colours.model(&r.model);
        grid.point(
            (),
            r.model.clone(),
            style,
            r.tokens as f64,
            Some(r.val_loss),
        );
    }
    Drawn {
        stem: "loss",
        title: "Training curves",
        caption: "Validation loss of each model over tokens seen; markers are checkpoints. The TopK model should track the dense one closely.",
        chart: Chart::Line(LineChart {
            title: "Validation loss during training".into(),
            x_label: "tokens seen".into(),
            y_label: "validation loss (nats/token)".into(),
            panels: grid.into_panels(colours, |_| String::new()),
            ..Default::default()
        }),
    }
}

/// 2. Entropy per layer at the last checkpoint: a panel per kind, the median with the
///    inter-quartile range as error bars.
pub fn entropy_by_layer(rows: &[LayerEntropy], colours: &Colours) -> Drawn {
    type Quartiles = fn(&LayerEntropy) -> (Option<f64>, Option<f64>, Option<f64>);
    let kinds: [(&str, Quartiles); 2] = [
        ("token entropy", |r| {
            (
                r.token_entropy_median,
                r.token_entropy_q1,
                r.token_entropy_q3,
            )
        }),
        ("semantic entropy", |r| {
            (
                r.semantic_entropy_median,
                r.semantic_entropy_q1,
                r.semantic_entropy_q3,
            )
        }),
    ];
    let mut grid = Grid::new();
    for (i, (kind, quartiles)) in kinds.iter().enumerate() {
        for r in rows {
            if let (Some(median), Some(q1), Some(q3)) = quartiles(r) {
                let style = colours.model(&r.model);
                let x = r.layer as f64;
                grid.point_with_interval((i, *kind), r.model.clone(), style, x, (median, q1, q3));
            }
        }
    }
    Drawn {
        stem: "entropy_by_layer",
        title: "Entropy per layer",
        caption: "Median normalised token and semantic entropy of each layer's neurons at the last checkpoint; bars span the inter-quartile range (the spread over neurons, not an interval: see the differences figure for that). Lower semantic entropy means more concept-specific neurons; the paper finds TopK layers lower than dense ones.",
        chart: Chart::Line(LineChart {
            title: "Neuron entropy per layer (last checkpoint)".into(),
            x_label: "layer".into(),
            y_label: "normalised entropy (median and IQR)".into(),
            x_axis: Axis::Integer,
            intervals: Intervals::ErrorBars,
            panels: grid.into_panels(colours, |k| k.1.to_owned()),
            ..Default::default()
        }),
    }
}

/// 3. Semantic entropy of each layer over training.
pub fn entropy_over_training(rows: &[LayerOverTraining], colours: &Colours) -> Drawn {
    Drawn {
        stem: "entropy_over_training",
        title: "Entropy over training",
        caption: "Median normalised semantic entropy of each layer's neurons at every checkpoint, one panel per layer. A fall marks neurons becoming concept-specific.",
        chart: over_steps(
            "Semantic entropy over training",
            "normalised semantic entropy (median)",
            per_layer_over_steps(rows, colours, |r| {
                (&r.model, r.layer, r.step, r.semantic_entropy_median)
            }),
        ),
    }
}

/// 3b. Lineage: neurons whose activation pattern survives from one checkpoint to the next.
pub fn stable_share(rows: &[LayerOverTraining], colours: &Colours) -> Drawn {
    Drawn {
        stem: "stable_share",
        title: "Lineage",
        caption: "Share of neurons whose activation pattern over the evaluation tokens keeps cosine similarity at or above the threshold from one checkpoint to the next, one panel per layer. In a TopK LM a neuron keeps its index, so this measures identity directly.",
        chart: over_steps(
            "Share of neurons stable since the previous checkpoint",
            "stable share (cosine ≥ threshold)",
            per_layer_over_steps(rows, colours, |r| {
                (&r.model, r.layer, r.step, r.stable_share)
            }),
        ),
    }
}

/// 4. When neurons form: how many of a layer's neurons have formed by each checkpoint.
pub fn formation(rows: &[FormationCount], colours: &Colours) -> Drawn {
    let mut steps: Vec<u32> = rows.iter().map(|r| r.formation_step).collect();
    steps.sort_unstable();
    steps.dedup();
    let mut grid = Grid::new();
    let mut by: BTreeMap<(u16, &str), BTreeMap<u32, u64>> = BTreeMap::new();
    for r in rows {
        *by.entry((r.layer, &r.model))
            .or_default()
            .entry(r.formation_step)
            .or_default() += r.n;
    }
    for ((layer, model), counts) in by {
        // From the first checkpoint at which any of this layer's neurons formed.
        let first = counts.keys().next().copied().unwrap_or_default();
        let mut formed = 0;
        for &step in steps.iter().filter(|&&s| s >= first) {
            formed += counts.get(&step).copied().unwrap_or(0);
            let y = Some(formed as f64);
            grid.point(
                layer,
                model.to_owned(),
                colours.model(model),
                step as f64,
                y,
            );
        }
    }
    let mut chart = over_steps(
        "When neurons form",
        "neurons formed (cumulative)",
        grid.into_panels(colours, layer_title),
    );
    if let Chart::Line(c) = &mut chart {
        c.y_axis = Axis::Integer;
    }
    Drawn {
        stem: "formation",
        title: "Neuron formation",
        caption: "Neurons of each layer formed by each checkpoint (cumulative, from the first checkpoint at which one formed): a neuron forms at the checkpoint from which its top concept stays fixed and its normalised semantic entropy stays below the threshold.",
        chart,
    }
}

/// 6. Activation frequency at the last checkpoint, by decade.
pub fn frequency(rows: &[FrequencyBin], colours: &Colours) -> Drawn {
    let (decades, mut groups) = bars(rows.iter().map(|r| (r.model.clone(), r.decade, r.n)));
    groups.sort_by_key(|g| colours.rank(&g.0));
    let label = |d: &i64| match *d {
        -9 => "dead".to_owned(),
        0 => "1".to_owned(),
        d => format!("1e{d}"),
    };
    Drawn {
        stem: "frequency",
        title: "Activation frequency",
        caption: "Neurons by how often they are among a token's top-k, in decades (1e-2: active on 1% to 10% of tokens); `dead` neurons never are.",
        chart: Chart::Bar(BarChart {
            title: "Activation frequency of neurons (last checkpoint)".into(),
            x_label: "share of tokens where active (decade)".into(),
            y_label: "neurons".into(),
            categories: decades.iter().map(label).collect(),
            groups: groups
                .into_iter()
                .map(|(model, values)| BarGroup {
                    style: Some(colours.model(&model)),
                    label: model,
                    values,
                })
                .collect(),
        }),
    }
}

/// 5b. Same-index neurons across adjacent layers.
pub fn cross_layer(rows: &[CrossLayer], colours: &Colours) -> Drawn {
    let mut grid = Grid::new();
    for r in rows {
        let style = colours.model(&r.model);
        grid.point(
            r.layer,
            r.model.clone(),
            style,
            r.step as f64,
            r.mean_cosine,
        );
    }
    Drawn {
        stem: "cross_layer",
        title: "Cross-layer consistency",
        caption: "How much neuron i of layer l and neuron i of layer l + 1 fire on the same tokens (the paper's consistent neurons across layers), one panel per pair of layers.",
        chart: over_steps(
            "Same-index neurons across adjacent layers",
            "mean cosine of neuron i in layers l and l + 1",
            grid.into_panels(colours, |l| format!("layer {l} → {}", l + 1)),
        ),
    }
}

/// 6b. Dead neurons over training.
pub fn dead(rows: &[LayerOverTraining], colours: &Colours) -> Drawn {
    Drawn {
        stem: "dead",
        title: "Dead neurons",
        caption: "Share of each layer's neurons that are never among a token's recorded top-k on the evaluation set, at every checkpoint, one panel per layer.",
        chart: over_steps(
            "Dead neurons over training",
            "share of neurons never active",
            per_layer_over_steps(rows, colours, |r| (&r.model, r.layer, r.step, r.dead_share)),
        ),
    }
}

/// 7. Steering: the concept's share of generated words, and the fluency cost, per strength;
///    a panel per concept.
pub fn steering(rows: &[SteeringDose], colours: &Colours) -> [Drawn; 2] {
    let chart = |title: &str, y: &str, value: fn(&SteeringDose) -> f64| {
        let mut grid = Grid::new();
        for r in rows {
            let style = colours.model(&r.model);
            grid.point(
                &r.concept,
                r.model.clone(),
                style,
                r.strength,
                Some(value(r)),
            );
        }
        Chart::Line(LineChart {
            title: title.into(),
            x_label: "strength (× max activation)".into(),
            y_label: y.into(),
            panels: grid.into_panels(colours, |c| c.to_string()),
            ..Default::default()
        })
    };
    [
        Drawn {
            stem: "steering_share",
            title: "Steering: share of concept words",
            caption: "Mean share of generated words that belong to the target concept (one panel per concept) when the concept's most specific neuron of each TopK layer is set to a multiple of its largest observed activation (0: unsteered).",
            chart: chart(
                "Steering: share of concept words",
                "share of generated words in the concept",
                |r| r.concept_share,
            ),
        },
        Drawn {
            stem: "steering_perplexity",
            title: "Steering: fluency cost",
            caption: "Perplexity of the steered continuations under the unsteered model, one panel per concept: the price of the intervention in fluency.",
            chart: chart(
                "Steering: fluency cost",
                "perplexity under the unsteered model",
                |r| r.perplexity,
            ),
        },
    ]
}

/// TopK minus dense, per layer, with the bootstrap interval as error bars: the differences
/// that hold are those whose bar stays off zero.
pub fn entropy_differences(rows: &[EntropyDifference], colours: &Colours) -> Drawn {
    let mut grid = Grid::new();
    for r in rows {
        let label = format!("{} − {}", r.model, r.baseline);
        let interval = (r.difference, r.lo, r.hi);
        let style = colours.model(&r.model);
        grid.point_with_interval(&r.measure, label, style, r.layer as f64, interval);
    }
    Drawn {
        stem: "entropy_differences",
        title: "Entropy differences with intervals",
        caption: "Median normalised entropy of each TopK model's neurons minus the dense baseline's, per layer at the last checkpoint, with a 95% bootstrap interval over evaluation documents (paired: both models see the same resampled text; `analyze.bootstrap_resamples`). A difference holds where its bar stays clear of the zero line (`entropy_differences.excludes_zero`).",
        chart: Chart::Line(LineChart {
            title: "TopK minus dense: median entropy per layer".into(),
            x_label: "layer".into(),
            y_label: "difference in normalised entropy (95% CI)".into(),
            x_axis: Axis::Integer,
            intervals: Intervals::ErrorBars,
            reference_y: Some(0.0),
            panels: grid.into_panels(colours, |m| format!("{m} entropy")),
            ..Default::default()
        }),
    }
}

/// Steerability over training: from which checkpoint setting a concept's neurons raises the
/// share of its words; a panel per concept.
pub fn steerability(rows: &[Steerability], colours: &Colours) -> Drawn {
    let mut grid = Grid::new();
    for r in rows {
        let style = colours.model(&r.model);
        grid.point(
            &r.concept,
            r.model.clone(),
            style,
            r.step as f64,
            Some(r.gain),
        );
    }
    let mut chart = over_steps(
        "Gain in concept share from steering, by checkpoint",
        "best gain in share of concept words",
        grid.into_panels(colours, |c| c.to_string()),
    );
    if let Chart::Line(c) = &mut chart {
        c.reference_y = Some(0.0);
    }
    Drawn {
        stem: "steerability",
        title: "Steerability over training",
        caption: "At each checkpoint, the concept's most specific neuron of each TopK layer (chosen at that checkpoint) is set to a multiple of its largest activation; the curve is the largest gain in the share of concept words over the unsteered text among the strengths tried, one panel per concept. A concept is steerable from the step where the gain rises clear of zero.",
        chart,
    }
}

/// Panels of the stability figure, in this order.
const CHECKPOINTS: &str = "consecutive checkpoints";
const SEEDS: &str = "two seeds, same step";

/// Stability of TopK-LM neurons against post-hoc SAE latents: colour by model, marker by
/// how features are matched. Seeds of one model (`topk`, `topk-seed2`) are one line, their
/// mean, with the range over seeds as a band.
pub fn stability(rows: &[StabilityPoint], colours: &Colours) -> Drawn {
    // (panel, family, how compared, marker) → step → (model, share) of each seed.
    type Key = (&'static str, String, String, Marker);
    type Seeds<'a> = BTreeMap<u32, Vec<(&'a str, f64)>>;
    let mut groups: BTreeMap<Key, Seeds> = BTreeMap::new();
    for r in rows {
        let family = family_and_seed(&r.model).0.to_owned();
        let key = match (r.comparison.as_str(), r.method.as_str()) {
            ("seeds", _) => (
                SEEDS,
                r.model.clone(),
                "vs other seed".to_owned(),
                Marker::Square,
            ),
            (_, "index") => (CHECKPOINTS, family, "by index".to_owned(), Marker::Circle),
            (_, method) => (CHECKPOINTS, family, method.to_owned(), Marker::Triangle),
        };
        let at = groups.entry(key).or_default().entry(r.step).or_default();
        at.push((&r.model, r.share_stable));
    }
    let mut grid = Grid::new();
    for ((panel, model, how, marker), steps) in groups {
        let mut seeds: Vec<&str> = steps.values().flatten().map(|v| v.0).collect();
        seeds.sort_unstable();
        seeds.dedup();
        let label = match seeds.len() {
            1 => format!("{model} ({how})"),
            n => format!("{model} ({how}, {n} seeds)"),
        };
        let style = colours.model(&model).with_marker(marker);
        for (step, values) in steps {
            let shares = values.iter().map(|v| v.1);
            let mean = shares.clone().sum::<f64>() / values.len() as f64;
            let lo = shares.clone().fold(f64::INFINITY, f64::min);
            let hi = shares.fold(f64::NEG_INFINITY, f64::max);
            if seeds.len() > 1 {
                grid.point_with_interval(panel, label.clone(), style, step as f64, (mean, lo, hi));
            } else {
                grid.point(panel, label.clone(), style, step as f64, Some(mean));
            }
        }
    }
    Drawn {
        stem: "stability",
        title: "Stability: TopK LM against SAE",
        caption: "Left: share of features alive at a checkpoint that have a one-to-one match at the next checkpoint with activation cosine at or above the threshold (mean over layers); TopK-LM neurons by index (circles) and by optimal matching (triangles); SAE latents (trained after the fact on the dense baseline, same k) by optimal matching only, since their order is arbitrary. Right: the same share between two seeds at the same step (two SAEs of the last checkpoint, or a `-seed2` model against its first seed). Where a model was trained with several seeds the line is their mean and the band their range. A `-sae-warm` series (`sae.warm_start`) starts each checkpoint's SAE from the previous one's, which favours its stability by construction.",
        chart: over_steps(
            "Features that survive: to the next checkpoint, and across seeds",
            "share with a match at cosine ≥ threshold",
            grid.into_panels(colours, |p| p.to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_sorts_points_into_panels_and_series_and_leaves_out_missing_values() {
        let style = Style::nth(0);
        let mut grid = Grid::new();
        grid.point(2u16, "b".into(), style, 1.0, Some(1.0));
        grid.point(1, "a".into(), style, 2.0, None);
        grid.point(2, "b".into(), style, 0.5, Some(f64::NAN));
        grid.point(1, "a".into(), style, 3.0, Some(4.0));
        grid.point(2, "b".into(), style, 2.0, Some(3.0));
        grid.point(2, "a".into(), style, 2.0, Some(5.0));
        let panels = grid.into_panels(&Colours::default(), layer_title);
        type Lines<'a> = Vec<(&'a str, &'a [(f64, f64)])>;
        let got: Vec<(&str, Lines)> = panels
            .iter()
            .map(|p| {
                let series = p.series.iter();
                let series = series.map(|s| (s.label.as_str(), s.points.as_slice()));
                (p.title.as_str(), series.collect())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("layer 1", vec![("a", &[(3.0, 4.0)][..])]),
                (
                    "layer 2",
                    vec![
                        ("a", &[(2.0, 5.0)][..]),
                        ("b", &[(1.0, 1.0), (2.0, 3.0)][..])
                    ]
                ),
            ]
        );
    }

    #[test]
    fn stability_draws_seeds_of_a_model_as_their_mean_with_their_range() {
        let row = |model: &str, comparison: &str, method: &str, step, share| StabilityPoint {
            model: model.into(),
            comparison: comparison.into(),
            method: method.into(),
            step,
            share_stable: share,
        };
        let rows = [
            row("topk", "checkpoints", "index", 100, 0.6),
            row("topk-seed2", "checkpoints", "index", 100, 0.8),
            row("topk", "checkpoints", "index", 200, 0.5),
            row("topk-seed2", "checkpoints", "index", 200, 0.9),
            row("topk-seed2", "seeds", "matched", 200, 0.4),
            row("dense-sae", "checkpoints", "matched", 100, 0.3),
        ];
        let Chart::Line(chart) = stability(&rows, &Colours::new(["topk", "dense"])).chart else {
            panic!("a line chart");
        };
        type Drawn<'a> = (&'a str, &'a [(f64, f64)], &'a [(f64, f64, f64)]);
        let titles: Vec<&str> = chart.panels.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, [CHECKPOINTS, SEEDS]);
        let got: Vec<Drawn> = chart
            .panels
            .iter()
            .flat_map(|p| &p.series)
            .map(|s| (s.label.as_str(), s.points.as_slice(), s.band.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "topk (by index, 2 seeds)",
                    &[(100.0, 0.7), (200.0, 0.7)][..],
                    &[(100.0, 0.6, 0.8), (200.0, 0.5, 0.9)][..]
                ),
                ("dense-sae (matched)", &[(100.0, 0.3)][..], &[][..]),
                ("topk-seed2 (vs other seed)", &[(200.0, 0.4)][..], &[][..]),
            ]
        );
    }

    #[test]
    fn formation_counts_accumulate_over_checkpoints() {
        let row = |layer, step, n| FormationCount {
            model: "topk".into(),
            layer,
            formation_step: step,
            n,
        };
        let rows = [row(0, 100, 3), row(0, 300, 2), row(1, 200, 4)];
        let Chart::Line(chart) = formation(&rows, &Colours::new(["topk"])).chart else {
            panic!("a line chart");
        };
        let points: Vec<&[(f64, f64)]> = chart
            .panels
            .iter()
            .map(|p| p.series[0].points.as_slice())
            .collect();
        assert_eq!(
            points,
            vec![
                &[(100.0, 3.0), (200.0, 3.0), (300.0, 5.0)][..],
                &[(200.0, 4.0), (300.0, 4.0)][..],
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
