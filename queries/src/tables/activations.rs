//! `activations`: one row per (token, recorded neuron) in one partition file
//! (`model=/step=/layer=`), sorted by neuron then token (written by `record`).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, RecordBatch, UInt16Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef, UInt16Type, UInt32Type};

use super::columns::required;
use crate::Result;

/// The table as the session exposes it (values as `FLOAT` whatever the storage).
pub fn schema() -> SchemaRef {
    storage_schema(false)
}

/// How files store values: `f32` (exact) or `f16` (half the value column; about 3 significant
/// digits).
pub fn storage_schema(f16: bool) -> SchemaRef {
    let value = if f16 {
        DataType::Float16
    } else {
        DataType::Float32
    };
    Arc::new(Schema::new(vec![
        Field::new("token_index", DataType::UInt32, false),
        Field::new("neuron", DataType::UInt16, false),
        Field::new("value", value, false),
        Field::new("dense", DataType::Boolean, false),
    ]))
}

/// One recorded activation of one neuron at one token. Ordered by neuron, then token: the
/// order rows have in a file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivationRow {
    pub neuron: u16,
    pub token_index: u32,
    pub value: f32,
}

impl ActivationRow {
    /// The key files are sorted by.
    pub fn key(&self) -> (u16, u32) {
        (self.neuron, self.token_index)
    }
}

/// A batch of one partition's rows; `dense` marks a dense layer read as its top-k, `f16`
/// stores values at half precision (rounded to nearest by arrow's cast).
pub fn encode(rows: &[ActivationRow], dense: bool, f16: bool) -> Result<RecordBatch> {
    let values: ArrayRef = Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.value)));
    let values = if f16 {
        arrow::compute::cast(&values, &DataType::Float16)?
    } else {
        values
    };
    Ok(RecordBatch::try_new(
        storage_schema(f16),
        vec![
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.token_index),
            )),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.neuron))),
            values,
            Arc::new(BooleanArray::from(vec![dense; rows.len()])),
        ],
    )?)
}

/// Rows of batches read back (values as f32 whatever the storage).
pub fn decode(batches: &[RecordBatch]) -> Result<Vec<ActivationRow>> {
    let token_index = required::<UInt32Type>(batches, "token_index")?;
    let neuron = required::<UInt16Type>(batches, "neuron")?;
    let value = required::<Float32Type>(batches, "value")?;
    Ok((0..value.len())
        .map(|i| ActivationRow {
            neuron: neuron[i],
            token_index: token_index[i],
            value: value[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_exactly_in_f32_and_to_three_digits_in_f16() {
        let rows: Vec<ActivationRow> = (0..50u32)
            .map(|t| ActivationRow {
                neuron: (t % 7) as u16,
                token_index: t,
                value: 1.0 + t as f32 / 7.0,
            })
            .collect();
        assert_eq!(
            decode(&[encode(&rows, false, false).unwrap()]).unwrap(),
            rows
        );
        let half = encode(&rows, true, true).unwrap();
        assert_eq!(half.schema(), storage_schema(true));
        for (got, want) in decode(&[half]).unwrap().iter().zip(&rows) {
            assert_eq!(got.key(), want.key());
            assert!(
                (got.value - want.value).abs() <= want.value * 1e-3,
                "{got:?}"
            );
        }
    }
}
