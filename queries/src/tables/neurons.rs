//! `neurons`: what the weights say about each neuron (or SAE latent) of one partition
//! (`model=/step=/layer=`, written by `record`).

use std::sync::Arc;

use arrow::array::{Float32Array, RecordBatch, StringArray, UInt16Array};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef, UInt16Type};

use super::columns::{optional, required, text};
use crate::Result;

pub fn schema() -> SchemaRef {
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

/// One neuron's weights, seen through the unembedding and against its previous checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct NeuronRow {
    pub neuron: u16,
    /// Norm of the weights that read the neuron's input.
    pub read_norm: f32,
    /// Norm of the weights that write its output to the residual stream.
    pub write_norm: f32,
    /// Tokens the output direction promotes most (logit lens), joined by " | ".
    pub top_promoted: String,
    pub top_suppressed: String,
    /// Cosine of the read/write weights with the same neuron's at the previous checkpoint
    /// (none at the first checkpoint and for SAE latents).
    pub read_cos_prev: Option<f32>,
    pub write_cos_prev: Option<f32>,
}

pub fn encode(rows: &[NeuronRow]) -> Result<RecordBatch> {
    let f32s =
        |f: fn(&NeuronRow) -> f32| Arc::new(Float32Array::from_iter_values(rows.iter().map(f)));
    let opt =
        |f: fn(&NeuronRow) -> Option<f32>| Arc::new(Float32Array::from_iter(rows.iter().map(f)));
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.neuron))),
            f32s(|r| r.read_norm),
            f32s(|r| r.write_norm),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.top_promoted.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.top_suppressed.as_str()),
            )),
            opt(|r| r.read_cos_prev),
            opt(|r| r.write_cos_prev),
        ],
    )?)
}

pub fn decode(batches: &[RecordBatch]) -> Result<Vec<NeuronRow>> {
    let neuron = required::<UInt16Type>(batches, "neuron")?;
    let read_norm = required::<Float32Type>(batches, "read_norm")?;
    let write_norm = required::<Float32Type>(batches, "write_norm")?;
    let promoted = text(batches, "top_promoted")?;
    let suppressed = text(batches, "top_suppressed")?;
    let read_cos = optional::<Float32Type>(batches, "read_cos_prev")?;
    let write_cos = optional::<Float32Type>(batches, "write_cos_prev")?;
    Ok(promoted
        .into_iter()
        .zip(suppressed)
        .enumerate()
        .map(|(i, (top_promoted, top_suppressed))| NeuronRow {
            neuron: neuron[i],
            read_norm: read_norm[i],
            write_norm: write_norm[i],
            top_promoted,
            top_suppressed,
            read_cos_prev: read_cos[i],
            write_cos_prev: write_cos[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_with_nulls() {
        let rows: Vec<NeuronRow> = (0..4u16)
            .map(|n| NeuronRow {
                neuron: n,
                read_norm: n as f32,
                write_norm: 2.0 * n as f32,
                top_promoted: format!("a{n}, b"),
                top_suppressed: String::new(),
                read_cos_prev: (n > 0).then_some(0.5),
                write_cos_prev: (n > 1).then_some(-0.25),
            })
            .collect();
        let batch = encode(&rows).unwrap();
        assert_eq!(batch.schema(), schema());
        assert_eq!(decode(&[batch]).unwrap(), rows);
    }
}
