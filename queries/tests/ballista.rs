//! The same analysis on Ballista and on in-process DataFusion gives the same tables.
//!
//! A generated Hive-partitioned lake is analysed twice: by DataFusion in this process, and by
//! an in-process Ballista cluster of two executors with shuffle data always read over Arrow
//! Flight (a single local executor would hide bugs of the remote path, such as dictionary-typed
//! partition columns). Every derived table is then compared row by row, sorted; floats agree
//! within 1e-9 + 1e-5·|x| (partial sums combine in another order on a cluster).
#![cfg(feature = "ballista")]

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use queries::cluster::{ClusterOptions, start_local};
use queries::engine::Engine;
use queries::session::{SessionOptions, collect, derived_path, open_run, register};
use queries::sql::{AnalysisParams, DERIVED_TABLES};
use queries::synthetic::{LakeSpec, write_lake};

fn spec() -> LakeSpec {
    LakeSpec {
        rows: 8 * 2 * 3 * 2 * 400,
        k: 8,
        d: 32,
        layers: 2,
        steps: 3,
        models: vec!["topk".into(), "dense".into()],
        seed: 5,
    }
}

/// Runs every derived table, then matching and stability, into `run/analyze/`.
async fn analyse(run: &Path, engine: Engine) {
    let ctx = open_run(
        run,
        &SessionOptions {
            engine,
            target_partitions: Some(2),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let params = AnalysisParams::default();
    queries::analysis::run_analysis(&ctx, run, &params, &[], &mut |_| {})
        .await
        .unwrap();
    queries::stability::write_stability(&ctx, run, &params, &[], &[], &mut |_, _, _| {})
        .await
        .unwrap();
}

/// A derived table's rows sorted by every column, key-like columns before floats.
async fn sorted_rows(path: &Path) -> Vec<RecordBatch> {
    let ctx = datafusion::prelude::SessionContext::new();
    register(&ctx, "t", path, false).await.unwrap();
    let schema = ctx.table("t").await.unwrap().schema().as_arrow().clone();
    let is_float = |t: &DataType| matches!(t, DataType::Float32 | DataType::Float64);
    let mut order: Vec<(bool, String)> = schema
        .fields()
        .iter()
        .map(|f| (is_float(f.data_type()), format!("\"{}\"", f.name())))
        .collect();
    order.sort_by_key(|(float, _)| *float);
    let cols: Vec<String> = order.into_iter().map(|(_, c)| c).collect();
    collect(
        &ctx,
        &format!("SELECT * FROM t ORDER BY {}", cols.join(", ")),
    )
    .await
    .unwrap()
}

fn cells(batches: &[RecordBatch], column: usize) -> Vec<Cell> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column(column);
        match col.data_type() {
            DataType::Float32 | DataType::Float64 => {
                let col = arrow::compute::cast(col, &DataType::Float64).unwrap();
                let col = col.as_primitive::<arrow::datatypes::Float64Type>();
                out.extend(
                    (0..col.len()).map(|i| Cell::Float(col.is_valid(i).then(|| col.value(i)))),
                );
            }
            _ => {
                let col = arrow::compute::cast(col, &DataType::Utf8).unwrap();
                let col = col.as_string::<i32>();
                out.extend(
                    (0..col.len())
                        .map(|i| Cell::Other(col.is_valid(i).then(|| col.value(i).to_owned()))),
                );
            }
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum Cell {
    Float(Option<f64>),
    Other(Option<String>),
}

fn same(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Float(Some(x)), Cell::Float(Some(y))) => {
            (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-9 + 1e-5 * y.abs()
        }
        _ => a == b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_derived_table_is_the_same_on_ballista_and_datafusion() {
    let local = tempfile::tempdir().unwrap();
    let distributed = tempfile::tempdir().unwrap();
    let rows = write_lake(local.path(), &spec()).unwrap();
    assert_eq!(write_lake(distributed.path(), &spec()).unwrap(), rows);

    let cluster = start_local(&ClusterOptions {
        executors: 2,
        scheduler_port: 0,
        task_slots: 2,
    })
    .await
    .unwrap();
    analyse(local.path(), Engine::DataFusion).await;
    analyse(
        distributed.path(),
        Engine::Ballista {
            scheduler: cluster.url(),
            force_remote_read: true,
        },
    )
    .await;

    let names = DERIVED_TABLES
        .iter()
        .map(|t| t.name)
        .chain(["matching", "stability"]);
    for name in names {
        let a = sorted_rows(&derived_path(local.path(), name)).await;
        let b = sorted_rows(&derived_path(distributed.path(), name)).await;
        let n_a: usize = a.iter().map(|b| b.num_rows()).sum();
        let n_b: usize = b.iter().map(|b| b.num_rows()).sum();
        assert_eq!(n_a, n_b, "{name}: row counts differ");
        assert!(n_a > 0, "{name} is empty: the lake exercises nothing");
        let schema = a[0].schema();
        for (c, field) in schema.fields().iter().enumerate() {
            let (x, y) = (cells(&a, c), cells(&b, c));
            for (row, (u, v)) in x.iter().zip(&y).enumerate() {
                assert!(
                    same(u, v),
                    "{name}.{} row {row}: {u:?} vs {v:?}",
                    field.name()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_that_fails_on_an_executor_names_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    write_lake(
        dir.path(),
        &LakeSpec {
            rows: 2000,
            ..spec()
        },
    )
    .unwrap();
    let cluster = start_local(&ClusterOptions {
        executors: 2,
        scheduler_port: 0,
        task_slots: 1,
    })
    .await
    .unwrap();
    let ctx = open_run(
        dir.path(),
        &SessionOptions {
            engine: Engine::Ballista {
                scheduler: cluster.url(),
                force_remote_read: false,
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Planning succeeds; the cast fails while an executor reads the rows.
    let e = collect(&ctx, "SELECT CAST(token_text AS INT) AS n FROM tokens")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.to_lowercase().contains("stage"), "{e}");
    assert!(e.contains("t0") || e.to_lowercase().contains("cast"), "{e}");
}
