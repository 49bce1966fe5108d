//! Comparing derived tables computed two ways (two engines, two plans).

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use queries::session::{collect, derived_path, register};

/// A derived table's rows sorted by every column, key-like columns before floats.
pub async fn sorted_rows(path: &Path) -> Vec<RecordBatch> {
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

pub fn cells(batches: &[RecordBatch], column: usize) -> Vec<Cell> {
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
pub enum Cell {
    Float(Option<f64>),
    Other(Option<String>),
}

pub fn same(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Float(Some(x)), Cell::Float(Some(y))) => {
            (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-9 + 1e-5 * y.abs()
        }
        _ => a == b,
    }
}

/// Asserts that the derived table `name` has the same rows under `a` and `b` (run folders),
/// floats within 1e-9 + 1e-5·|x| (partial sums may combine in another order), and is not
/// empty.
pub async fn assert_same_table(a: &Path, b: &Path, name: &str) {
    let x = sorted_rows(&derived_path(a, name)).await;
    let y = sorted_rows(&derived_path(b, name)).await;
    let n_x: usize = x.iter().map(|b| b.num_rows()).sum();
    let n_y: usize = y.iter().map(|b| b.num_rows()).sum();
    assert_eq!(n_x, n_y, "{name}: row counts differ");
    assert!(n_x > 0, "{name} is empty: the lake exercises nothing");
    let schema = x[0].schema();
    for (c, field) in schema.fields().iter().enumerate() {
        let (u, v) = (cells(&x, c), cells(&y, c));
        for (row, (p, q)) in u.iter().zip(&v).enumerate() {
            assert!(
                same(p, q),
                "{name}.{} row {row}: {p:?} vs {q:?}",
                field.name()
            );
        }
    }
}
