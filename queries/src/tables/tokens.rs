//! `tokens`: the evaluation tokens, one row per token (written by `prepare`, read by
//! `record`).

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray, UInt16Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt16Type, UInt32Type};

use super::columns::{optional, optional_text, required, text};
use crate::Result;

pub fn schema() -> SchemaRef {
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

/// One evaluation token with its word and the word's concept (if the lexicon has one).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    /// Position in the evaluation set, from 0.
    pub token_index: u32,
    /// Validation document the token belongs to.
    pub doc_id: u32,
    /// Position within the document.
    pub position: u32,
    pub token_id: u32,
    pub token_text: String,
    /// Word within the document (`u32::MAX` for tokens outside any word).
    pub word_index: u32,
    pub word: Option<String>,
    pub concept: Option<String>,
    pub concept_id: Option<u16>,
}

pub fn encode(rows: &[TokenRow]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.token_index),
            )),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.doc_id))),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.position),
            )),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.token_id),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.token_text.as_str()),
            )),
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.word_index),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.word.as_deref()),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.concept.as_deref()),
            )),
            Arc::new(UInt16Array::from_iter(rows.iter().map(|r| r.concept_id))),
        ],
    )?)
}

pub fn decode(batches: &[RecordBatch]) -> Result<Vec<TokenRow>> {
    let token_index = required::<UInt32Type>(batches, "token_index")?;
    let doc_id = required::<UInt32Type>(batches, "doc_id")?;
    let position = required::<UInt32Type>(batches, "position")?;
    let token_id = required::<UInt32Type>(batches, "token_id")?;
    let token_text = text(batches, "token_text")?;
    let word_index = required::<UInt32Type>(batches, "word_index")?;
    let word = optional_text(batches, "word")?;
    let concept = optional_text(batches, "concept")?;
    let concept_id = optional::<UInt16Type>(batches, "concept_id")?;
    Ok(token_text
        .into_iter()
        .zip(word.into_iter().zip(concept).zip(concept_id))
        .enumerate()
        .map(
            |(i, (token_text, ((word, concept), concept_id)))| TokenRow {
                token_index: token_index[i],
                doc_id: doc_id[i],
                position: position[i],
                token_id: token_id[i],
                token_text,
                word_index: word_index[i],
                word,
                concept,
                concept_id,
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_with_nulls() {
        let rows: Vec<TokenRow> = (0..5)
            .map(|i| TokenRow {
                token_index: i,
                doc_id: i / 2,
                position: i % 2,
                token_id: 100 + i,
                token_text: format!("t{i}"),
                word_index: i,
                word: (i % 2 == 0).then(|| format!("w{i}")),
                concept: (i == 2).then(|| "noun.animal".to_owned()),
                concept_id: (i == 2).then_some(7),
            })
            .collect();
        let batch = encode(&rows).unwrap();
        assert_eq!(batch.schema(), schema());
        assert_eq!(decode(&[batch]).unwrap(), rows);
    }
}
