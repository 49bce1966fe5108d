//! `steering`: one row per (model, concept, strength, prompt) of the steering evaluation
//! (written by `steer`).

use std::sync::Arc;

use arrow::array::{Float64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::Result;

pub fn schema() -> SchemaRef {
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

/// One steered (or, at strength 0, unsteered) continuation of one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct SteeringRow {
    pub model: String,
    pub step: u32,
    pub concept: String,
    /// The neurons set, as `L<layer>:N<neuron>` joined by commas.
    pub neurons: String,
    /// How the neurons were edited (`set`: to strength × their largest observed activation).
    pub mode: String,
    pub strength: f64,
    pub prompt_id: u32,
    /// Share of generated words that belong to the concept.
    pub concept_share: f64,
    /// Perplexity of the continuation under the unsteered model.
    pub perplexity: f64,
    pub text: String,
}

pub fn encode(rows: &[SteeringRow]) -> Result<RecordBatch> {
    let text =
        |f: fn(&SteeringRow) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(f)));
    let f64s =
        |f: fn(&SteeringRow) -> f64| Arc::new(Float64Array::from_iter_values(rows.iter().map(f)));
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            text(|r| &r.model),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.step))),
            text(|r| &r.concept),
            text(|r| &r.neurons),
            text(|r| &r.mode),
            f64s(|r| r.strength),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.prompt_id),
            )),
            f64s(|r| r.concept_share),
            f64s(|r| r.perplexity),
            text(|r| &r.text),
        ],
    )?)
}
