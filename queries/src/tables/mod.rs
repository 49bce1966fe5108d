//! Every table the stages write, one module each: its Arrow schema, a named row struct, the
//! encoder from rows to a record batch, and the decoder back where a stage or test reads the
//! table. `queries/README.md` documents the columns. Bump [`SCHEMA_VERSION`] when one changes.
//!
//! To add a table: a module here with `schema()`, a row struct and `encode`; a path in
//! [`crate::layout::RunLayout`]; its registration in [`crate::session`].

pub mod activations;
pub mod columns;
pub mod intervals;
pub mod matching;
pub mod metrics;
pub mod neurons;
pub mod sae_quality;
pub mod steering;
pub mod tokens;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};

/// Version of the table layouts, stored in every file's key-value metadata.
pub const SCHEMA_VERSION: &str = "2";

/// Hive partition columns of `activations` and `neurons`, with plain (not dictionary) types
/// so the same plans run on distributed engines. The model is a string view: names of up to
/// 12 bytes sit inline, so grouping and joining on it compares integers (every derived table
/// 8–15% more rows/s on the default lake than with `Utf8`; `pipeline bench analyze --on-run`).
pub fn partition_columns() -> Vec<(String, DataType)> {
    vec![
        ("model".into(), DataType::Utf8View),
        ("step".into(), DataType::UInt32),
        ("layer".into(), DataType::UInt16),
    ]
}

/// Checks that batches read back from a file have the columns and types `expected` names
/// (extra columns are allowed), so a tampered or foreign file is an error naming the column,
/// not a panic deep inside a stage.
pub fn check_columns(
    path: &std::path::Path,
    batches: &[RecordBatch],
    expected: &SchemaRef,
) -> std::result::Result<(), String> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let found = first.schema();
    for field in expected.fields() {
        match found.field_with_name(field.name()) {
            Err(_) => {
                return Err(format!(
                    "{}: no column `{}`; the file was not written by this version of `pipeline prepare`; run `pipeline prepare --force`",
                    path.display(),
                    field.name()
                ));
            }
            Ok(f) if f.data_type() != field.data_type() => {
                return Err(format!(
                    "{}: column `{}` is {}, expected {}; run `pipeline prepare --force` to rebuild it",
                    path.display(),
                    field.name(),
                    f.data_type(),
                    field.data_type()
                ));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}
