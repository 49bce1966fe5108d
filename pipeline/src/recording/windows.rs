//! The evaluation tokens as windows of at most `block_size` tokens within one document.

use anyhow::{Context, Result};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::UInt32Type;

/// One evaluation window: consecutive tokens of one document.
#[derive(Debug, Clone)]
pub struct Window {
    /// `token_index` of the first token.
    pub first: u32,
    pub ids: Vec<u32>,
}

/// Cuts the evaluation tokens into windows of at most `block_size` tokens within documents
/// (context restarts at every document, as it did in training after an end-of-text).
pub fn windows(tokens: &[RecordBatch], block_size: usize) -> Result<Vec<Window>> {
    let mut out: Vec<Window> = Vec::new();
    let mut last_doc = None;
    for batch in tokens {
        let col = |name: &str| -> Result<&arrow::array::PrimitiveArray<UInt32Type>> {
            batch
                .column_by_name(name)
                .with_context(|| format!("tokens.parquet has no `{name}` column"))?
                .as_primitive_opt::<UInt32Type>()
                .with_context(|| format!("tokens.parquet: column `{name}` is not UInt32"))
        };
        let (index, doc, id) = (col("token_index")?, col("doc_id")?, col("token_id")?);
        for i in 0..batch.num_rows() {
            let same_doc = last_doc == Some(doc.value(i));
            match out.last_mut() {
                Some(w) if same_doc && w.ids.len() < block_size => w.ids.push(id.value(i)),
                _ => out.push(Window {
                    first: index.value(i),
                    ids: vec![id.value(i)],
                }),
            }
            last_doc = Some(doc.value(i));
        }
    }
    Ok(out)
}
