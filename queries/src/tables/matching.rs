//! `matching`: the optimal one-to-one matching of the features of two recordings, one row per
//! feature of the earlier one, per layer (written by `analyze`, read by `stability.sql`).

use std::sync::Arc;

use arrow::array::{
    BooleanArray, Float64Array, RecordBatch, StringArray, UInt16Array, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::Result;

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("model_prev", DataType::Utf8, false),
        Field::new("comparison", DataType::Utf8, false),
        Field::new("layer", DataType::UInt16, false),
        Field::new("step_prev", DataType::UInt32, false),
        Field::new("step", DataType::UInt32, false),
        Field::new("neuron_prev", DataType::UInt16, false),
        Field::new("neuron", DataType::UInt16, false),
        Field::new("cosine", DataType::Float64, false),
        Field::new("same_index", DataType::Boolean, false),
        Field::new("alive_prev", DataType::Boolean, false),
    ]))
}

/// Feature `neuron_prev` of (`model_prev`, `step_prev`) matched to feature `neuron` of
/// (`model`, `step`) in one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchingRow {
    pub model: String,
    pub model_prev: String,
    /// `checkpoints` (consecutive steps of one model) or `seeds` (two SAEs of one checkpoint).
    pub comparison: String,
    pub layer: u16,
    pub step_prev: u32,
    pub step: u32,
    pub neuron_prev: u16,
    pub neuron: u16,
    /// Cosine of the two features' activations over the evaluation tokens.
    pub cosine: f64,
    /// The earlier feature was active at some token.
    pub alive_prev: bool,
}

pub fn encode(rows: &[MatchingRow]) -> Result<RecordBatch> {
    let text =
        |f: fn(&MatchingRow) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(f)));
    let u16s =
        |f: fn(&MatchingRow) -> u16| Arc::new(UInt16Array::from_iter_values(rows.iter().map(f)));
    let u32s =
        |f: fn(&MatchingRow) -> u32| Arc::new(UInt32Array::from_iter_values(rows.iter().map(f)));
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            text(|r| &r.model),
            text(|r| &r.model_prev),
            text(|r| &r.comparison),
            u16s(|r| r.layer),
            u32s(|r| r.step_prev),
            u32s(|r| r.step),
            u16s(|r| r.neuron_prev),
            u16s(|r| r.neuron),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.cosine),
            )),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.neuron_prev == r.neuron)),
            )),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.alive_prev)),
            )),
        ],
    )?)
}
