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
    let inputs = [ctx.layout.tokens(), ctx.layout.record_dir()];
    let section = (
        &ctx.cfg.analyze,
        ctx.cfg.sae.enabled,
        ctx.cfg.sae.second_seed,
    );
    ctx.run_stage(
        super::Stage::Analyze,
        &section,
        &inputs,
        || Ok(()),
        |()| {
            // Every derived table is computed anew; none of an earlier run may be read or kept.
            ctx.fresh_output_dir(super::Stage::Analyze)?;
            let run_dir = ctx.layout.root().to_owned();
            let params = ctx.cfg.analyze.clone();
            let metadata = vec![("run_id", ctx.run_id())];
            let n = queries::sql::DERIVED_TABLES.len() as u64 + 1;
            // Models trained with two seeds (`topk`, `topk-seed2`), and SAEs of the same
            // checkpoint trained with two: their run-to-run stability.
            let mut seed_pairs = ctx.cfg.seed_pairs();
            if ctx.cfg.sae.enabled && ctx.cfg.sae.second_seed != 0 {
                seed_pairs.push((
                    ctx.cfg.sae.series_name(false),
                    ctx.cfg.sae.series_name(true),
                ));
            }
            let engine = ctx.cfg.engine.engine()?;
            let bar = ctx.ui.bar(n, "analyze", "tables");
            let outputs = runtime()?.block_on(async {
                let ctx_df = open_run(
                    &run_dir,
                    &SessionOptions {
                        memory_limit: Some(MEMORY_LIMIT),
                        engine: engine.clone(),
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
                let started = std::time::Instant::now();
                let (matched, stable) = queries::stability::write_stability(
                    &ctx_df,
                    &run_dir,
                    &params,
                    &seed_pairs,
                    &metadata,
                    &mut |pair, _, _| {
                        bar.set_message(format!("matching {} {}", pair.model, pair.step))
                    },
                )
                .await?;
                let seconds = started.elapsed().as_secs_f64();
                let mut done = vec![
                    ("matching", matched, seconds),
                    ("stability", stable, seconds),
                ];
                if params.bootstrap_resamples > 0 {
                    bar.set_message("bootstrap intervals");
                    let started = std::time::Instant::now();
                    let (intervals, differences) = queries::bootstrap::write_intervals(
                        &ctx_df,
                        &run_dir,
                        &params,
                        &ctx.cfg.baseline_pairs(),
                        &metadata,
                    )
                    .await?;
                    let seconds = started.elapsed().as_secs_f64();
                    done.push(("entropy_intervals", intervals, seconds));
                    done.push(("entropy_differences", differences, seconds));
                }
                for (name, rows, seconds) in done {
                    outputs.push(queries::analysis::DerivedOutput {
                        name,
                        rows,
                        seconds,
                    });
                }
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
