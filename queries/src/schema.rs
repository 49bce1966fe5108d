//! Schemas of the tables the stages write. Each is defined once here; `queries/README.md`
//! documents them. Bump [`SCHEMA_VERSION`] when a column changes.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Version of the table layouts, stored in every file's key-value metadata.
pub const SCHEMA_VERSION: &str = "2";

/// Hive partition columns of `activations` and `neurons`, with plain (not dictionary) types
/// so the same plans run on distributed engines.
pub fn partition_columns() -> Vec<(String, DataType)> {
    vec![
        ("model".into(), DataType::Utf8),
        ("step".into(), DataType::UInt32),
        ("layer".into(), DataType::UInt16),
    ]
}

/// `tokens`: the evaluation tokens, one row per token (written by `prepare`).
pub fn tokens_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("token_index", DataType::UInt32, false),
        Field::new("doc_id", DataType::UInt32, false),
        Field::new("position", DataType::UInt32, false),
        Field::new("token_id", DataType::UInt32, false),
        Field::new("token_text", DataType::Utf8, false),
        Field::new("word_index", DataType::UInt32, false),
        Field::new("word", DataType::Utf8, true),
        Field::new("concept", DataType::Utf8, true),
        Field::new("concept_id", DataType::UInt16, true),
    ]))
}

/// `activations`: one row per (token, recorded neuron) in one partition file
/// (`model=/step=/layer=`), sorted by neuron then token.
pub fn activations_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("token_index", DataType::UInt32, false),
        Field::new("neuron", DataType::UInt16, false),
        Field::new("value", DataType::Float32, false),
        Field::new("dense", DataType::Boolean, false),
    ]))
}

/// How `activations` files store values: `f32` (exact) or `f16` (half the value column;
/// about 3 significant digits). The session exposes both as `FLOAT`.
pub fn activations_storage_schema(f16: bool) -> SchemaRef {
    if !f16 {
        return activations_schema();
    }
    Arc::new(Schema::new(vec![
        Field::new("token_index", DataType::UInt32, false),
        Field::new("neuron", DataType::UInt16, false),
        Field::new("value", DataType::Float16, false),
        Field::new("dense", DataType::Boolean, false),
    ]))
}

/// `neurons`: what the weights say about each neuron of one partition.
pub fn neurons_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("neuron", DataType::UInt16, false),
        Field::new("read_norm", DataType::Float32, false),
        Field::new("write_norm", DataType::Float32, false),
        Field::new("top_promoted", DataType::Utf8, false),
        Field::new("top_suppressed", DataType::Utf8, false),
        Field::new("read_cos_prev", DataType::Float32, true),
        Field::new("write_cos_prev", DataType::Float32, true),
    ]))
}

/// `sae_quality`: one row per SAE (series, checkpoint, layer), measured on validation tokens.
/// loss_recovered = (ce_zero − ce_sae) / (ce_zero − ce_clean); train_fvu and
/// tokens_per_second are null for SAEs kept from an earlier run.
pub fn sae_quality_schema() -> SchemaRef {
    let f = |name: &str| Field::new(name, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("step", DataType::UInt32, false),
        Field::new("layer", DataType::UInt16, false),
        Field::new("seed", DataType::UInt64, false),
        f("fvu"),
        f("l0"),
        f("dead_fraction"),
        f("ce_clean"),
        f("ce_sae"),
        f("ce_zero"),
        f("loss_recovered"),
        Field::new("train_fvu", DataType::Float64, true),
        Field::new("tokens_per_second", DataType::Float32, true),
    ]))
}

/// `metrics`: one row per (model, checkpoint) of training.
pub fn metrics_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("step", DataType::UInt32, false),
        Field::new("tokens", DataType::UInt64, false),
        Field::new("train_loss", DataType::Float32, true),
        Field::new("val_loss", DataType::Float32, true),
        Field::new("val_ppl", DataType::Float32, true),
        Field::new("lr", DataType::Float64, false),
        Field::new("topk_k", DataType::UInt32, false),
        Field::new(
            "dead_fraction",
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            false,
        ),
        Field::new("seconds", DataType::Float64, false),
    ]))
}

/// `steering`: one row per (model, concept, strength, prompt) of the steering evaluation.
pub fn steering_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("step", DataType::UInt32, false),
        Field::new("concept", DataType::Utf8, false),
        Field::new("neurons", DataType::Utf8, false),
        Field::new("mode", DataType::Utf8, false),
        Field::new("strength", DataType::Float64, false),
        Field::new("prompt_id", DataType::UInt32, false),
        Field::new("concept_share", DataType::Float64, false),
        Field::new("perplexity", DataType::Float64, false),
        Field::new("text", DataType::Utf8, false),
    ]))
}

/// Checks that batches read back from a file have the columns and types `expected` names
/// (extra columns are allowed), so a tampered or foreign file is an error naming the column,
/// not a panic deep inside a stage.
pub fn check_columns(
    path: &std::path::Path,
    batches: &[arrow::array::RecordBatch],
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
