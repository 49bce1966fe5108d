//! `sae_quality`: one row per SAE (series, checkpoint, layer), measured on validation tokens
//! (written by `sae`).

use std::sync::Arc;

use arrow::array::{
    Float32Array, Float64Array, RecordBatch, StringArray, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::Result;

pub fn schema() -> SchemaRef {
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

/// One SAE's reconstruction quality.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SaeQualityRow {
    /// The SAE series (named after the model it reads, and the seed for a second series).
    pub model: String,
    pub step: u32,
    pub layer: u16,
    pub seed: u64,
    /// Fraction of variance unexplained.
    pub fvu: f64,
    /// Mean non-zero latents per token.
    pub l0: f64,
    pub dead_fraction: f64,
    /// LM loss as it is, with the reconstruction in place of the block output, and with the
    /// block output zeroed.
    pub ce_clean: f64,
    pub ce_sae: f64,
    pub ce_zero: f64,
    /// (ce_zero − ce_sae) / (ce_zero − ce_clean).
    pub loss_recovered: f64,
    /// FVU on the last training batches; none for SAEs kept from an earlier run.
    pub train_fvu: Option<f64>,
    pub tokens_per_second: Option<f32>,
}

pub fn encode(rows: &[SaeQualityRow]) -> Result<RecordBatch> {
    let f64s =
        |f: fn(&SaeQualityRow) -> f64| Arc::new(Float64Array::from_iter_values(rows.iter().map(f)));
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.model.as_str()),
            )),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.step))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.layer))),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.seed))),
            f64s(|r| r.fvu),
            f64s(|r| r.l0),
            f64s(|r| r.dead_fraction),
            f64s(|r| r.ce_clean),
            f64s(|r| r.ce_sae),
            f64s(|r| r.ce_zero),
            f64s(|r| r.loss_recovered),
            Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.train_fvu))),
            Arc::new(Float32Array::from_iter(
                rows.iter().map(|r| r.tokens_per_second),
            )),
        ],
    )?)
}
