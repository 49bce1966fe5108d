//! `analyze`: the derived tables (neuron statistics, token and semantic entropy, top contexts,
//! lineage, cross-layer consistency, formation, layer summaries) computed by the SQL files in
//! `queries/sql/` and written to `analyze/<name>.parquet`.

use anyhow::Result;
use queries::session::{SessionOptions, open_run};
use serde_json::json;

use super::{Ctx, Outcome};

/// Memory DataFusion may use before spilling (bytes).
pub const MEMORY_LIMIT: usize = 4 << 30;

/// A runtime for the async query engine.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs the stage.
pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let inputs = [ctx.path("prepare/tokens.parquet"), ctx.path("record")];
    ctx.run_stage(
        "analyze",
        &ctx.cfg.analyze,
        &inputs,
        || Ok(()),
        |()| {
            let run_dir = ctx.run_dir.clone();
            let params = ctx.cfg.analyze.clone();
            let metadata = vec![("run_id", ctx.run_id())];
            let n = queries::sql::DERIVED_TABLES.len() as u64 + 1;
            let d_model = ctx.cfg.model.d_model;
            let bar = ctx.ui.bar(n, "analyze", "tables");
            let outputs = runtime()?.block_on(async {
                let ctx_df = open_run(
                    &run_dir,
                    &SessionOptions {
                        memory_limit: Some(MEMORY_LIMIT),
                        ..Default::default()
                    },
                )
                .await?;
                let mut outputs = queries::analysis::run_analysis(
                    &ctx_df,
                    &run_dir,
                    &params,
                    &metadata,
                    &mut |name| {
                        bar.set_message(name.to_owned());
                        bar.inc(1);
                    },
                )
                .await?;
                bar.set_message("matching");
                let started = std::time::Instant::now();
                let rows = queries::analysis::write_matching(&ctx_df, &run_dir, d_model, &metadata)
                    .await?;
                outputs.push(queries::analysis::DerivedOutput {
                    name: "matching",
                    rows,
                    seconds: started.elapsed().as_secs_f64(),
                });
                Ok::<_, queries::Error>(outputs)
            })?;
            bar.finish_and_clear();
            let mut figures = serde_json::Map::new();
            for o in &outputs {
                figures.insert(
                    o.name.to_owned(),
                    json!({"rows": o.rows, "seconds": o.seconds}),
                );
            }
            let line: Vec<String> = outputs
                .iter()
                .map(|o| format!("{} {}", o.name, o.rows))
                .collect();
            ctx.ui.say(&format!("  analyze: {}", line.join(", ")));
            Ok(serde_json::Value::Object(figures))
        },
    )
}
