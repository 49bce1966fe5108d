//! The report's content: each figure's data (typed rows of the SQL in
//! `queries/sql/report/`), its chart and caption, the neuron dashboards and the run summary.
//! The `report` stage writes what [`build`] returns.
//!
//! One policy for what is missing: a query that fails (its table is absent) or returns no
//! rows becomes a notice on the page in place of its figure or section; the rest is drawn.
//! To add a figure: a query in `queries/sql/report/`, its row struct in `queries::results`,
//! a function in [`figures`], and a line in [`build`].

mod figures;
mod neurons;
mod summary;

use std::path::Path;

use anyhow::Result;
use datafusion::prelude::SessionContext;
use queries::sql::report as q;
use queries::tables::columns::FromBatches;
use reports::chart::Colours;
use reports::html::{FigureRef, Report};

use crate::config::PipelineConfig;
use crate::manifest::Manifest;
pub use figures::Drawn;

/// Runs the report's queries, turning a missing table or an empty result into a notice.
pub struct Queries<'a> {
    session: &'a SessionContext,
    pub notices: Vec<String>,
}

impl<'a> Queries<'a> {
    pub fn new(session: &'a SessionContext) -> Self {
        Self {
            session,
            notices: Vec::new(),
        }
    }

    /// The rows of `sql`, or `None` with a notice naming `what` is missing and why. A result
    /// whose columns do not fit `R` is an error (a bug, not missing data).
    pub async fn rows<R: FromBatches>(&mut self, sql: &str, what: &str) -> Result<Option<Vec<R>>> {
        match queries::session::collect(self.session, sql).await {
            Ok(batches) => {
                let rows = R::from_batches(&batches)?;
                if rows.is_empty() {
                    self.notices.push(format!("{what}: no data in this run."));
                    return Ok(None);
                }
                Ok(Some(rows))
            }
            Err(e) => {
                self.notices.push(format!("{what}: not available ({e})."));
                Ok(None)
            }
        }
    }

    /// The rows of an optional figure's query: nothing missing is worth a notice.
    pub async fn quiet_rows<R: FromBatches>(&mut self, sql: &str) -> Result<Vec<R>> {
        let batches = queries::session::collect(self.session, sql).await?;
        Ok(R::from_batches(&batches)?)
    }
}

/// Builds the whole report, writing each figure's PNG, SVG and CSV under `figures_dir`.
pub async fn build(
    cfg: &PipelineConfig,
    manifest: &Manifest,
    session: &SessionContext,
    figures_dir: &Path,
) -> Result<Report> {
    let mut qs = Queries::new(session);
    let colours = model_colours(cfg);
    let mut drawn: Vec<Drawn> = Vec::new();
    if let Some(rows) = qs.rows(q::LOSS_CURVES, "Training curves").await? {
        drawn.push(figures::loss(&rows, &colours));
    }
    if let Some(rows) = qs.rows(q::ENTROPY_BY_LAYER, "Entropy per layer").await? {
        drawn.push(figures::entropy_by_layer(&rows, &colours));
    }
    let over_training = qs
        .rows(q::ENTROPY_OVER_TRAINING, "Entropy over training")
        .await?;
    if let Some(rows) = &over_training {
        drawn.push(figures::entropy_over_training(rows, &colours));
        drawn.push(figures::stable_share(rows, &colours));
    }
    if let Some(rows) = qs.rows(q::FORMATION_COUNTS, "Neuron formation").await? {
        drawn.push(figures::formation(&rows, &colours));
    }
    if let Some(rows) = qs.rows(q::FREQUENCY_BINS, "Activation frequency").await? {
        drawn.push(figures::frequency(&rows, &colours));
    }
    if let Some(rows) = qs
        .rows(q::CROSS_LAYER_SUMMARY, "Cross-layer consistency")
        .await?
    {
        drawn.push(figures::cross_layer(&rows, &colours));
    }
    if let Some(rows) = &over_training {
        drawn.push(figures::dead(rows, &colours));
    }
    if let Some(rows) = qs.rows(q::STEERING_DOSE, "Steering").await? {
        drawn.extend(figures::steering(&rows, &colours));
    }
    if let Some(rows) = qs
        .rows(q::ENTROPY_DIFFERENCES, "Entropy differences with intervals")
        .await?
    {
        drawn.push(figures::entropy_differences(&rows, &colours));
    }
    // Only when `steer.checkpoints = "all"` evaluated more than one checkpoint.
    if let Ok(rows) = qs
        .quiet_rows::<queries::results::Steerability>(q::STEERABILITY)
        .await
        && !rows.is_empty()
    {
        drawn.push(figures::steerability(&rows, &colours));
    }
    if let Some(rows) = qs
        .rows(q::STABILITY_OVER_TRAINING, "Feature stability")
        .await?
    {
        drawn.push(figures::stability(&rows, &colours));
    }
    let stability = qs
        .rows(q::STABILITY_SUMMARY, "Stability table")
        .await?
        .map(|rows| summary::stability_table(&rows))
        .unwrap_or_default();
    let (neurons, pages) = neurons::section(&mut qs, cfg.report.neurons_per_layer).await?;
    let mut figures = Vec::new();
    for d in drawn {
        figures.push(d.write(figures_dir)?);
    }
    let mut notices = qs.notices;
    let models = summary::models_table(manifest, &mut notices);
    Ok(Report {
        title: format!("TopK LM report: {}", cfg.run.name),
        summary: summary::run_facts(cfg, manifest),
        models,
        stability,
        figures,
        notices,
        neurons,
        pages,
    })
}

/// One colour per model in every figure: the run's models in config order, then its SAE
/// series.
fn model_colours(cfg: &PipelineConfig) -> Colours {
    let saes = [
        cfg.sae.series_name(false),
        cfg.sae.series_name(true),
        cfg.sae.warm_series_name(),
    ];
    Colours::new(cfg.models.iter().cloned().chain(saes))
}

/// Where a written figure's files are, relative to `index.html`.
fn figure_ref(title: &str, caption: &str, files: &reports::chart::Figure) -> FigureRef {
    let rel = |p: &Path| {
        format!(
            "figures/{}",
            p.file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        )
    };
    FigureRef {
        title: title.into(),
        png: rel(&files.png),
        svg: rel(&files.svg),
        csv: rel(&files.csv),
        caption: caption.into(),
    }
}
