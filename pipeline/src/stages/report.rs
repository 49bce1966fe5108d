//! `report`: figures (PNG, SVG, CSV) and `report/index.html` with neuron dashboards, drawn by
//! `crate::report` from the tables through the SQL in `queries/sql/report/`. A missing table
//! becomes a notice in place of its figure; the rest of the report is still written.

use anyhow::Result;
use queries::session::{SessionOptions, open_run};
use serde_json::json;

use super::{Ctx, Outcome, Stage};
use crate::manifest::Manifest;
use crate::stages::analyze::runtime;

/// Runs the stage.
pub fn run(ctx: &Ctx) -> Result<Outcome> {
    // The steering table is optional: without it the report says so in place of figure 7.
    let mut inputs = vec![ctx.layout.stage_dir("analyze"), ctx.layout.metrics()];
    if ctx.layout.stage_dir("steer").exists() {
        inputs.push(ctx.layout.stage_dir("steer"));
    }
    ctx.run_stage(
        Stage::Report,
        &ctx.cfg.report,
        &inputs,
        || Ok(()),
        |()| write(ctx),
    )
}

fn write(ctx: &Ctx) -> Result<serde_json::Value> {
    // Written into an empty folder: no figure or neuron page of an earlier run stays.
    let dir = ctx.fresh_output_dir(Stage::Report)?;
    let manifest = Manifest::load(&ctx.layout)?;
    let report = runtime()?.block_on(async {
        // One partition: the report's sums and means then add up in one order, so every
        // figure's CSV is the same bytes on every run (split work differed in the last bits).
        let options = SessionOptions {
            target_partitions: Some(1),
            ..Default::default()
        };
        let session = open_run(ctx.layout.root(), &options).await?;
        crate::report::build(&ctx.cfg, &manifest, &session, &ctx.layout.figures_dir()).await
    })?;
    report.write(&dir)?;
    ctx.ui.say(&format!(
        "   report: {} figures, {} neuron pages, {} notices → {}",
        report.figures.len(),
        report.pages.len(),
        report.notices.len(),
        dir.join("index.html").display()
    ));
    Ok(
        json!({"figures": report.figures.len(), "neuron_pages": report.pages.len(), "notices": report.notices}),
    )
}
