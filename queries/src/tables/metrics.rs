//! `metrics`: one row per (model, checkpoint) of training (written by `train`).

use std::sync::Arc;

use arrow::array::{
    Float32Array, Float32Builder, Float64Array, ListBuilder, RecordBatch, StringArray, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::Result;

pub fn schema() -> SchemaRef {
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

/// One checkpoint's training metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsRow {
    pub model: String,
    pub step: u32,
    /// Training tokens seen up to this checkpoint.
    pub tokens: u64,
    /// Mean training loss since the previous checkpoint (none at step 0).
    pub train_loss: Option<f32>,
    pub val_loss: Option<f32>,
    /// `exp(val_loss)`.
    pub val_ppl: Option<f32>,
    pub lr: f64,
    pub topk_k: u32,
    /// Per layer, the share of neurons never among a token's top-k on a validation batch.
    pub dead_fraction: Vec<f32>,
    /// Training wall time up to this checkpoint.
    pub seconds: f64,
}

pub fn encode(rows: &[MetricsRow]) -> Result<RecordBatch> {
    let mut dead = ListBuilder::new(Float32Builder::new());
    for r in rows {
        dead.append_value(r.dead_fraction.iter().map(|x| Some(*x)));
    }
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.model.as_str()),
            )),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.step))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.tokens))),
            Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.train_loss))),
            Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.val_loss))),
            Arc::new(Float32Array::from_iter(rows.iter().map(|r| r.val_ppl))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.lr))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.topk_k))),
            Arc::new(dead.finish()),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.seconds),
            )),
        ],
    )?)
}
