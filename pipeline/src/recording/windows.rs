//! The evaluation tokens as windows of at most `block_size` tokens within one document.

use queries::tables::tokens::TokenRow;

/// One evaluation window: consecutive tokens of one document.
#[derive(Debug, Clone)]
pub struct Window {
    /// `token_index` of the first token.
    pub first: u32,
    pub ids: Vec<u32>,
}

/// Cuts the evaluation tokens into windows of at most `block_size` tokens within documents
/// (context restarts at every document, as it did in training after an end-of-text).
pub fn windows(tokens: &[TokenRow], block_size: usize) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    let mut last_doc = None;
    for token in tokens {
        let same_doc = last_doc == Some(token.doc_id);
        match out.last_mut() {
            Some(w) if same_doc && w.ids.len() < block_size => w.ids.push(token.token_id),
            _ => out.push(Window {
                first: token.token_index,
                ids: vec![token.token_id],
            }),
        }
        last_doc = Some(token.doc_id);
    }
    out
}
