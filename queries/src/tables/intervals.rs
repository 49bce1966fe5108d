//! `entropy_intervals` and `entropy_differences`: the bootstrap intervals of the median
//! normalised entropy of each layer, and of a model's difference from a baseline (written by
//! `analyze`; see `crate::bootstrap`).

use std::sync::Arc;

use arrow::array::{
    BooleanArray, Float64Array, RecordBatch, StringArray, UInt16Array, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::Result;

pub fn intervals_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("step", DataType::UInt32, false),
        Field::new("layer", DataType::UInt16, false),
        Field::new("measure", DataType::Utf8, false),
        Field::new("median", DataType::Float64, false),
        Field::new("lo", DataType::Float64, false),
        Field::new("hi", DataType::Float64, false),
        Field::new("resamples", DataType::UInt32, false),
    ]))
}

/// The median normalised entropy (`measure`: token or semantic) of one layer's neurons with
/// enough observations, and its 95% bootstrap interval [lo, hi].
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalRow {
    pub model: String,
    pub step: u32,
    pub layer: u16,
    pub measure: String,
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
    pub resamples: u32,
}

pub fn encode_intervals(rows: &[IntervalRow]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        intervals_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.model))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.step))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.layer))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.measure),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.median),
            )),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.lo))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.hi))),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.resamples),
            )),
        ],
    )?)
}

pub fn differences_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("baseline", DataType::Utf8, false),
        Field::new("step", DataType::UInt32, false),
        Field::new("layer", DataType::UInt16, false),
        Field::new("measure", DataType::Utf8, false),
        Field::new("difference", DataType::Float64, false),
        Field::new("lo", DataType::Float64, false),
        Field::new("hi", DataType::Float64, false),
        Field::new("excludes_zero", DataType::Boolean, false),
    ]))
}

/// `model`'s median minus `baseline`'s, same step and layer, with its 95% interval from the
/// same resamples of documents for both; `excludes_zero`: the interval lies on one side of 0.
#[derive(Debug, Clone, PartialEq)]
pub struct DifferenceRow {
    pub model: String,
    pub baseline: String,
    pub step: u32,
    pub layer: u16,
    pub measure: String,
    pub difference: f64,
    pub lo: f64,
    pub hi: f64,
    pub excludes_zero: bool,
}

pub fn encode_differences(rows: &[DifferenceRow]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        differences_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.model))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.baseline),
            )),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.step))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.layer))),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| &r.measure),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.difference),
            )),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.lo))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.hi))),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.excludes_zero)),
            )),
        ],
    )?)
}
