//! `report`: figures (PNG, SVG, CSV) and `report/index.html` with neuron dashboards, drawn
//! from the tables through the SQL in `queries/sql/report/`. A missing table becomes a notice
//! in place of its figure; the rest of the report is still written.

use std::collections::BTreeMap;

use anyhow::Result;
use datafusion::prelude::SessionContext;
use queries::session::{SessionOptions, collect, column_f64, column_str, open_run};
use queries::sql::report as q;
use reports::chart::{BarChart, LineChart, Series};
use reports::html::{Context as Ctx2, FigureRef, NeuronPage, Report, Table};
use serde_json::json;

use super::{Ctx, Outcome};
use crate::manifest::Manifest;
use crate::stages::analyze::runtime;

type Batches = Vec<arrow::array::RecordBatch>;

/// Runs the stage.
pub fn run(ctx: &Ctx) -> Result<Outcome> {
    // The steering table is optional: without it the report says so in place of figure 7.
    let mut inputs = vec![ctx.layout.stage_dir("analyze"), ctx.layout.metrics()];
    if ctx.layout.stage_dir("steer").exists() {
        inputs.push(ctx.layout.stage_dir("steer"));
    }
    ctx.run_stage(super::Stage::Report, &ctx.cfg.report, &inputs, || Ok(()), |()| {
        // Written into an empty folder: no figure or neuron page of an earlier run stays.
        let dir = ctx.fresh_output_dir(super::Stage::Report)?;
        let report = runtime()?.block_on(async {
            // One partition: the report's sums and means then add up in one order, so every
            // figure's CSV is the same bytes on every run (split work differed in the last bits).
            let options = SessionOptions {
                target_partitions: Some(1),
                ..Default::default()
            };
            let session = open_run(ctx.layout.root(), &options).await?;
            build(ctx, &session).await
        })?;
        report.write(&dir)?;
        ctx.ui.say(&format!(
            "   report: {} figures, {} neuron pages, {} notices → {}",
            report.figures.len(),
            report.pages.len(),
            report.notices.len(),
            dir.join("index.html").display()
        ));
        Ok(json!({"figures": report.figures.len(), "neuron_pages": report.pages.len(), "notices": report.notices}))
    })
}

/// Runs a report query, or records why it could not run.
async fn fetch(
    session: &SessionContext,
    sql: &str,
    what: &str,
    notices: &mut Vec<String>,
) -> Option<Batches> {
    match collect(session, sql).await {
        Ok(b) if b.iter().map(|b| b.num_rows()).sum::<usize>() > 0 => Some(b),
        Ok(_) => {
            notices.push(format!("{what}: no data in this run."));
            None
        }
        Err(e) => {
            notices.push(format!("{what}: not available ({e})."));
            None
        }
    }
}

/// One line per key, points in input order, non-finite values dropped.
fn lines(keys: &[String], xs: &[f64], ys: &[f64]) -> Vec<Series> {
    group_by_key(keys, xs, ys)
        .into_iter()
        .map(|(label, points)| Series {
            label,
            points: points.into_iter().filter(|p| p.1.is_finite()).collect(),
            band: vec![],
        })
        .collect()
}

fn group_by_key(keys: &[String], xs: &[f64], ys: &[f64]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for ((k, x), y) in keys.iter().zip(xs).zip(ys) {
        out.entry(k.clone()).or_default().push((*x, *y));
    }
    out
}

/// Builds the whole report.
pub async fn build(ctx: &Ctx, s: &SessionContext) -> Result<Report> {
    let fig_dir = ctx.layout.figures_dir();
    let mut notices = Vec::new();
    let mut figures = Vec::new();
    let mut add = |stem: &str, title: &str, caption: &str, f: reports::chart::Figure| {
        let rel = |p: &std::path::Path| {
            format!(
                "figures/{}",
                p.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| stem.to_owned())
            )
        };
        figures.push(FigureRef {
            title: title.into(),
            png: rel(&f.png),
            svg: rel(&f.svg),
            csv: rel(&f.csv),
            caption: caption.into(),
        });
    };

    // 1. Training curves.
    if let Some(b) = fetch(s, q::LOSS_CURVES, "Training curves", &mut notices).await {
        let (m, t, l) = (
            column_str(&b, "model")?,
            column_f64(&b, "tokens")?,
            column_f64(&b, "val_loss")?,
        );
        let chart = LineChart {
            title: "Validation loss during training".into(),
            x_label: "tokens seen".into(),
            y_label: "validation loss (nats/token)".into(),
            log_x: false,
            series: lines(&m, &t, &l),
        };
        add(
            "loss",
            "Training curves",
            "Validation loss of the TopK model and the dense baseline over tokens seen; markers are checkpoints. The TopK model should track the dense one closely.",
            chart.write(&fig_dir.join("loss"))?,
        );
    }

    // 2. Entropy per layer at the last checkpoint.
    if let Some(b) = fetch(s, q::ENTROPY_BY_LAYER, "Entropy per layer", &mut notices).await {
        let (m, layer) = (column_str(&b, "model")?, column_f64(&b, "layer")?);
        let mut series = Vec::new();
        for (kind, col) in [("semantic", "semantic_entropy"), ("token", "token_entropy")] {
            let (med, q1, q3) = (
                column_f64(&b, &format!("{col}_median"))?,
                column_f64(&b, &format!("{col}_q1"))?,
                column_f64(&b, &format!("{col}_q3"))?,
            );
            let mut by: BTreeMap<String, Series> = BTreeMap::new();
            for i in 0..m.len() {
                let e = by.entry(m[i].clone()).or_insert_with(|| Series {
                    label: format!("{} ({kind})", m[i]),
                    ..Default::default()
                });
                e.points.push((layer[i], med[i]));
                e.band.push((layer[i], q1[i], q3[i]));
            }
            series.extend(by.into_values());
        }
        let chart = LineChart {
            title: "Neuron entropy per layer (last checkpoint)".into(),
            x_label: "layer".into(),
            y_label: "normalised entropy (median, IQR band)".into(),
            log_x: false,
            series,
        };
        add(
            "entropy_by_layer",
            "Entropy per layer",
            "Median normalised token and semantic entropy of neurons per layer, with the inter-quartile range. Lower semantic entropy means more concept-specific neurons; the paper finds TopK layers lower than dense ones.",
            chart.write(&fig_dir.join("entropy_by_layer"))?,
        );
    }

    // 3, 5 and 6b draw from the same per-layer summary over training: fetch it once.
    let over_training = fetch(
        s,
        q::ENTROPY_OVER_TRAINING,
        "Entropy over training",
        &mut notices,
    )
    .await;
    if let Some(b) = over_training.clone() {
        let (m, layer, step) = (
            column_str(&b, "model")?,
            column_f64(&b, "layer")?,
            column_f64(&b, "step")?,
        );
        let keys: Vec<String> = m
            .iter()
            .zip(&layer)
            .map(|(m, l)| format!("{m} L{l}"))
            .collect();
        let (med, q1, q3) = (
            column_f64(&b, "semantic_entropy_median")?,
            column_f64(&b, "semantic_entropy_q1")?,
            column_f64(&b, "semantic_entropy_q3")?,
        );
        let mut by: BTreeMap<String, Series> = BTreeMap::new();
        for i in 0..keys.len() {
            let e = by.entry(keys[i].clone()).or_insert_with(|| Series {
                label: keys[i].clone(),
                ..Default::default()
            });
            e.points.push((step[i] + 1.0, med[i]));
            e.band.push((step[i] + 1.0, q1[i], q3[i]));
        }
        let chart = LineChart {
            title: "Semantic entropy over training".into(),
            x_label: "step + 1".into(),
            y_label: "normalised semantic entropy (median)".into(),
            log_x: true,
            series: by.into_values().collect(),
        };
        add(
            "entropy_over_training",
            "Entropy over training",
            "Median normalised semantic entropy of each layer's neurons at every checkpoint (IQR shaded). A fall marks neurons becoming concept-specific.",
            chart.write(&fig_dir.join("entropy_over_training"))?,
        );
        let stable = column_f64(&b, "stable_share")?;
        let chart = LineChart {
            title: "Share of neurons stable since the previous checkpoint".into(),
            x_label: "step + 1".into(),
            y_label: "stable share (cosine ≥ threshold)".into(),
            log_x: true,
            series: lines(
                &keys,
                &step.iter().map(|s| s + 1.0).collect::<Vec<_>>(),
                &stable,
            ),
        };
        add(
            "stable_share",
            "Lineage",
            "Share of neurons whose activation pattern over the evaluation tokens keeps cosine similarity at or above the threshold from one checkpoint to the next. In a TopK LM a neuron keeps its index, so this measures identity directly.",
            chart.write(&fig_dir.join("stable_share"))?,
        );
    }

    // 4. Formation.
    if let Some(b) = fetch(s, q::FORMATION_COUNTS, "Neuron formation", &mut notices).await {
        let (m, layer, step, n) = (
            column_str(&b, "model")?,
            column_f64(&b, "layer")?,
            column_f64(&b, "formation_step")?,
            column_f64(&b, "n")?,
        );
        let mut steps: Vec<i64> = step.iter().map(|s| *s as i64).collect();
        steps.sort();
        steps.dedup();
        let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for i in 0..m.len() {
            let g = groups
                .entry(format!("{} L{}", m[i], layer[i]))
                .or_insert_with(|| vec![0.0; steps.len()]);
            g[steps.binary_search(&(step[i] as i64)).expect("step listed")] += n[i];
        }
        let chart = BarChart {
            title: "When neurons form".into(),
            x_label: "formation step".into(),
            y_label: "neurons".into(),
            categories: steps.iter().map(|s| s.to_string()).collect(),
            groups: groups.into_iter().collect(),
        };
        add(
            "formation",
            "Neuron formation",
            "Number of neurons per layer that form at each checkpoint: from then on their top concept stays fixed and their normalised semantic entropy stays below the threshold.",
            chart.write(&fig_dir.join("formation"))?,
        );
    }

    // 6. Activation frequency.
    if let Some(b) = fetch(s, q::FREQUENCY_BINS, "Activation frequency", &mut notices).await {
        let (m, decade, n) = (
            column_str(&b, "model")?,
            column_f64(&b, "decade")?,
            column_f64(&b, "n")?,
        );
        let mut decades: Vec<i64> = decade.iter().map(|d| *d as i64).collect();
        decades.sort();
        decades.dedup();
        let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for i in 0..m.len() {
            groups
                .entry(m[i].clone())
                .or_insert_with(|| vec![0.0; decades.len()])
                [decades.binary_search(&(decade[i] as i64)).expect("listed")] += n[i];
        }
        let label = |d: i64| {
            if d == -9 {
                "dead".to_owned()
            } else {
                format!("1e{d}")
            }
        };
        let chart = BarChart {
            title: "Activation frequency of neurons (last checkpoint)".into(),
            x_label: "share of tokens where active (decade)".into(),
            y_label: "neurons".into(),
            categories: decades.iter().map(|d| label(*d)).collect(),
            groups: groups.into_iter().collect(),
        };
        add(
            "frequency",
            "Activation frequency",
            "Neurons by how often they are among a token's top-k, on a log scale; `dead` neurons never are.",
            chart.write(&fig_dir.join("frequency"))?,
        );
    }

    // 5b. Cross-layer consistency, and 6b. dead neurons over training.
    if let Some(b) = fetch(
        s,
        q::CROSS_LAYER_SUMMARY,
        "Cross-layer consistency",
        &mut notices,
    )
    .await
    {
        let (m, layer, step, cos) = (
            column_str(&b, "model")?,
            column_f64(&b, "layer")?,
            column_f64(&b, "step")?,
            column_f64(&b, "mean_cosine")?,
        );
        let keys: Vec<String> = m
            .iter()
            .zip(&layer)
            .map(|(m, l)| format!("{m} L{l}→L{}", l + 1.0))
            .collect();
        let steps: Vec<f64> = step.iter().map(|s| s + 1.0).collect();
        let chart = LineChart {
            title: "Same-index neurons across adjacent layers".into(),
            x_label: "step + 1".into(),
            y_label: "mean cosine of neuron i in layers l and l+1".into(),
            log_x: true,
            series: lines(&keys, &steps, &cos),
        };
        add(
            "cross_layer",
            "Cross-layer consistency",
            "How much neuron i of layer l and neuron i of layer l + 1 fire on the same tokens (the paper's consistent neurons across layers).",
            chart.write(&fig_dir.join("cross_layer"))?,
        );
    }
    if let Some(b) = over_training.clone() {
        let (m, layer, step, dead) = (
            column_str(&b, "model")?,
            column_f64(&b, "layer")?,
            column_f64(&b, "step")?,
            column_f64(&b, "dead_share")?,
        );
        let keys: Vec<String> = m
            .iter()
            .zip(&layer)
            .map(|(m, l)| format!("{m} L{l}"))
            .collect();
        let steps: Vec<f64> = step.iter().map(|s| s + 1.0).collect();
        let chart = LineChart {
            title: "Dead neurons over training".into(),
            x_label: "step + 1".into(),
            y_label: "share of neurons never active".into(),
            log_x: true,
            series: lines(&keys, &steps, &dead),
        };
        add(
            "dead",
            "Dead neurons",
            "Share of each layer's neurons that are never among a token's recorded top-k on the evaluation set, at every checkpoint.",
            chart.write(&fig_dir.join("dead"))?,
        );
    }

    // 7. Steering.
    if let Some(b) = fetch(s, q::STEERING_DOSE, "Steering", &mut notices).await {
        let (m, c, st) = (
            column_str(&b, "model")?,
            column_str(&b, "concept")?,
            column_f64(&b, "strength")?,
        );
        let keys: Vec<String> = m.iter().zip(&c).map(|(m, c)| format!("{m} {c}")).collect();
        for (stem, col, title, y, caption) in [
            (
                "steering_share",
                "concept_share",
                "Steering: share of concept words",
                "share of generated words in the concept",
                "Mean share of generated words that belong to the target concept when the concept's most specific neuron of each TopK layer is set to a multiple of its largest observed activation (0: unsteered).",
            ),
            (
                "steering_perplexity",
                "perplexity",
                "Steering: fluency cost",
                "perplexity under the unsteered model",
                "Perplexity of the steered continuations under the unsteered model: the price of the intervention in fluency.",
            ),
        ] {
            let chart = LineChart {
                title: title.into(),
                x_label: "strength (× max activation)".into(),
                y_label: y.into(),
                log_x: false,
                series: lines(&keys, &st, &column_f64(&b, col)?),
            };
            add(stem, title, caption, chart.write(&fig_dir.join(stem))?);
        }
    }
    // Stability of TopK-LM neurons against post-hoc SAE latents.
    if let Some(b) = fetch(
        s,
        q::STABILITY_OVER_TRAINING,
        "Feature stability",
        &mut notices,
    )
    .await
    {
        let (m, comparison, method, step, share) = (
            column_str(&b, "model")?,
            column_str(&b, "comparison")?,
            column_str(&b, "method")?,
            column_f64(&b, "step")?,
            column_f64(&b, "share_stable")?,
        );
        let keys: Vec<String> = (0..m.len())
            .map(|i| match comparison[i].as_str() {
                "seeds" => format!("{} vs other seed", m[i]),
                _ => format!("{} ({})", m[i], method[i]),
            })
            .collect();
        let chart = LineChart {
            title: "Features surviving from one checkpoint to the next".into(),
            x_label: "step + 1".into(),
            y_label: "share with a match at cosine ≥ threshold".into(),
            log_x: true,
            series: lines(
                &keys,
                &step.iter().map(|s| s + 1.0).collect::<Vec<_>>(),
                &share,
            ),
        };
        add(
            "stability",
            "Stability: TopK LM against SAE",
            "Share of features alive at a checkpoint that have a one-to-one match at the next checkpoint with activation cosine at or above the threshold (mean over layers). TopK-LM neurons by index and by optimal matching; SAE latents (trained after the fact on the dense baseline, same k) by optimal matching only, since their order is arbitrary; and two SAEs of the last checkpoint trained with different seeds.",
            chart.write(&fig_dir.join("stability"))?,
        );
    }
    let stability = match collect(s, q::STABILITY_SUMMARY).await {
        Ok(b) => stability_table(&b)?,
        Err(_) => Table::default(),
    };
    let (neurons, pages) = neuron_section(ctx, s, &mut notices).await?;
    Ok(Report {
        title: format!("TopK LM report: {}", ctx.cfg.run.name),
        summary: summary(ctx),
        models: models_table(ctx),
        stability,
        figures,
        notices,
        neurons,
        pages,
    })
}

fn summary(ctx: &Ctx) -> Vec<(String, String)> {
    let m = Manifest::load(&ctx.layout).unwrap_or_default();
    let c = &ctx.cfg;
    let mut out = vec![
        ("run".to_owned(), m.run_id.clone()),
        (
            "preset".to_owned(),
            format!("{:?}", c.run.preset).to_lowercase(),
        ),
        (
            "model".to_owned(),
            format!(
                "d_model {}, {} layers ({} TopK, k = {}), {} heads, context {}",
                c.model.d_model,
                c.model.n_layers,
                c.model.n_layers - c.model.n_nontopk,
                c.model.topk_k,
                c.model.n_heads,
                c.model.block_size
            ),
        ),
        (
            "training".to_owned(),
            format!(
                "{} steps × {} sequences, lr {}, seed {}",
                c.train.steps,
                c.train.batch_size * c.train.grad_accum,
                c.train.lr,
                c.train.seed
            ),
        ),
        (
            "git commit".to_owned(),
            m.git_commit.clone().unwrap_or_else(|| "unknown".into()),
        ),
    ];
    if let Some(p) = m.stages.get(super::Stage::Prepare.name()) {
        out.push((
            "data".to_owned(),
            format!(
                "{} documents, {} train tokens, vocabulary {}, {} evaluation tokens",
                p.summary["documents"],
                p.summary["train_tokens"],
                p.summary["vocab_size"],
                p.summary["eval_tokens"]
            ),
        ));
    }
    for (stage, rec) in &m.stages {
        out.push((format!("time: {stage}"), format!("{:.1} s", rec.seconds)));
    }
    out
}

fn stability_table(b: &Batches) -> Result<Table> {
    let (m, comparison, method) = (
        column_str(b, "model")?,
        column_str(b, "comparison")?,
        column_str(b, "method")?,
    );
    let (share, cosine, n) = (
        column_f64(b, "share_stable")?,
        column_f64(b, "mean_cosine")?,
        column_f64(b, "n_pairs")?,
    );
    Ok(Table {
        headers: [
            "features",
            "compared across",
            "matched by",
            "surviving share",
            "mean cosine",
            "pairs × layers",
        ]
        .map(String::from)
        .to_vec(),
        rows: (0..m.len())
            .map(|i| {
                vec![
                    m[i].clone(),
                    comparison[i].clone(),
                    method[i].clone(),
                    format!("{:.1}%", 100.0 * share[i]),
                    format!("{:.3}", cosine[i]),
                    format!("{}", n[i]),
                ]
            })
            .collect(),
        links: vec![None; m.len()],
    })
}

fn models_table(ctx: &Ctx) -> Table {
    let m = Manifest::load(&ctx.layout).unwrap_or_default();
    let mut t = Table {
        headers: vec![
            "model".into(),
            "parameters".into(),
            "validation loss".into(),
            "perplexity".into(),
            "training tokens/s".into(),
        ],
        ..Default::default()
    };
    if let Some(train) = m
        .stages
        .get(super::Stage::Train.name())
        .and_then(|r| r.summary.as_object())
    {
        for (name, v) in train {
            t.rows.push(vec![
                name.clone(),
                v["params"].to_string(),
                format!("{:.3}", v["val_loss"].as_f64().unwrap_or(f64::NAN)),
                format!("{:.1}", v["val_ppl"].as_f64().unwrap_or(f64::NAN)),
                v["tokens_per_second"]
                    .as_f64()
                    .map_or("— (resumed, nothing to train)".to_owned(), |t| {
                        format!("{t:.0}")
                    }),
            ]);
            t.links.push(None);
        }
    }
    t
}

async fn neuron_section(
    ctx: &Ctx,
    s: &SessionContext,
    notices: &mut Vec<String>,
) -> Result<(Table, Vec<NeuronPage>)> {
    let mut table = Table {
        headers: [
            "neuron",
            "top concept",
            "concept share",
            "semantic entropy",
            "token entropy",
            "frequency",
            "formed at step",
            "promotes",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    };
    let sql = q::TOP_NEURONS.replace("{{limit}}", &ctx.cfg.report.neurons_per_layer.to_string());
    let Some(b) = fetch(s, &sql, "Concept-specific neurons", notices).await else {
        return Ok((table, vec![]));
    };
    let (model, layer, neuron, step) = (
        column_str(&b, "model")?,
        column_f64(&b, "layer")?,
        column_f64(&b, "neuron")?,
        column_f64(&b, "step")?,
    );
    let (concept, share, se, te) = (
        column_str(&b, "top_concept")?,
        column_f64(&b, "top_share")?,
        column_f64(&b, "semantic_entropy")?,
        column_f64(&b, "token_entropy")?,
    );
    let (freq, maxv, nobs, formed) = (
        column_f64(&b, "frequency")?,
        column_f64(&b, "max_value")?,
        column_f64(&b, "n_obs")?,
        column_f64(&b, "formation_step")?,
    );
    let (promoted, suppressed) = (
        column_str(&b, "top_promoted")?,
        column_str(&b, "top_suppressed")?,
    );

    let contexts = collect(s, "SELECT model, layer, neuron, rank, value, token_text, left_context, right_context FROM top_contexts ORDER BY model, layer, neuron, rank").await.unwrap_or_default();
    let concepts = collect(s, q::NEURON_CONCEPTS).await.unwrap_or_default();
    let hist = collect(s, q::NEURON_HISTOGRAMS).await.unwrap_or_default();
    let entropy = collect(
        s,
        "SELECT model, layer, neuron, step, entropy_norm FROM semantic_entropy ORDER BY step",
    )
    .await
    .unwrap_or_default();
    let steering = collect(s, q::STEERING_EXAMPLES).await.unwrap_or_default();
    let (s_model, s_neurons, s_concept, s_text) = (
        column_str(&steering, "model")?,
        column_str(&steering, "neurons")?,
        column_str(&steering, "concept")?,
        column_str(&steering, "text")?,
    );
    let key = |m: &str, l: f64, n: f64| format!("{m}/{l}/{n}");
    let index = |b: &Batches| -> Result<BTreeMap<String, Vec<usize>>> {
        let (m, l, n) = (
            column_str(b, "model")?,
            column_f64(b, "layer")?,
            column_f64(b, "neuron")?,
        );
        let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in 0..m.len() {
            out.entry(key(&m[i], l[i], n[i])).or_default().push(i);
        }
        Ok(out)
    };
    let (ci, cci, hi, ei) = (
        index(&contexts)?,
        index(&concepts)?,
        index(&hist)?,
        index(&entropy)?,
    );
    let (c_val, c_tok, c_left, c_right) = (
        column_f64(&contexts, "value")?,
        column_str(&contexts, "token_text")?,
        column_str(&contexts, "left_context")?,
        column_str(&contexts, "right_context")?,
    );
    let (cc_name, cc_share) = (
        column_str(&concepts, "concept")?,
        column_f64(&concepts, "share")?,
    );
    let (h_bin, h_top, h_n) = (
        column_f64(&hist, "bin")?,
        column_f64(&hist, "top")?,
        column_f64(&hist, "n")?,
    );
    let (e_step, e_val) = (
        column_f64(&entropy, "step")?,
        column_f64(&entropy, "entropy_norm")?,
    );

    let mut pages = Vec::new();
    for i in 0..model.len() {
        let k = key(&model[i], layer[i], neuron[i]);
        let slug = format!("{}-L{}-N{}", model[i], layer[i], neuron[i]);
        let formed_at = if formed[i].is_nan() {
            "not yet".to_owned()
        } else {
            format!("{}", formed[i])
        };
        table.rows.push(vec![
            format!("{} L{} N{}", model[i], layer[i], neuron[i]),
            concept[i].clone(),
            format!("{:.2}", share[i]),
            format!("{:.3}", se[i]),
            format!("{:.3}", te[i]),
            format!("{:.4}", freq[i]),
            formed_at.clone(),
            promoted[i].clone(),
        ]);
        table.links.push(Some(format!("neurons/{slug}.html")));
        let rows = |m: &BTreeMap<String, Vec<usize>>| m.get(&k).cloned().unwrap_or_default();
        let mut histogram: Vec<(String, f64)> = Vec::new();
        for j in rows(&hi) {
            let lo = h_bin[j] / 10.0 * h_top[j];
            histogram.push((format!("{lo:.2}–{:.2}", lo + h_top[j] / 10.0), h_n[j]));
        }
        pages.push(NeuronPage {
            slug,
            title: format!(
                "{} · layer {} · neuron {} · {}",
                model[i], layer[i], neuron[i], concept[i]
            ),
            facts: vec![
                ("checkpoint step".into(), format!("{}", step[i])),
                (
                    "top concept (share)".into(),
                    format!("{} ({:.2})", concept[i], share[i]),
                ),
                (
                    "semantic entropy (normalised)".into(),
                    format!("{:.3}", se[i]),
                ),
                ("token entropy (normalised)".into(), format!("{:.3}", te[i])),
                ("activation frequency".into(), format!("{:.4}", freq[i])),
                ("max activation".into(), format!("{:.3}", maxv[i])),
                ("observations".into(), format!("{}", nobs[i])),
                ("formed at step".into(), formed_at),
            ],
            contexts: rows(&ci)
                .into_iter()
                .map(|j| Ctx2 {
                    left: c_left[j].clone(),
                    token: c_tok[j].clone(),
                    right: c_right[j].clone(),
                    value: c_val[j],
                })
                .collect(),
            concepts: rows(&cci)
                .into_iter()
                .take(10)
                .map(|j| (cc_name[j].clone(), cc_share[j]))
                .collect(),
            entropy_over_steps: rows(&ei)
                .into_iter()
                .map(|j| (e_step[j], e_val[j]))
                .collect(),
            histogram,
            promoted: promoted[i].clone(),
            suppressed: suppressed[i].clone(),
            steering: (0..s_model.len())
                .filter(|&j| {
                    s_model[j] == model[i]
                        && s_neurons[j]
                            .split(',')
                            .any(|x| x == format!("L{}:N{}", layer[i], neuron[i]))
                })
                .take(3)
                .map(|j| (s_concept[j].clone(), s_text[j].clone()))
                .collect(),
        });
    }
    Ok((table, pages))
}
