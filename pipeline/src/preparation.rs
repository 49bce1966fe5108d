//! Turning documents into the evaluation token table: the validation split, and each token
//! labelled with its word and the word's concept.

use anyhow::Result;
use queries::tables::tokens::TokenRow;
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::corpus::Document;
use crate::lexicon::{Lexicon, normalise_word};

/// Whether a document goes to validation: a seeded hash of its id, so the split does not
/// depend on file order and is the same on every run.
pub fn is_validation(doc_id: &str, seed: u64, val_fraction: f64) -> bool {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(doc_id.as_bytes())
        .finalize();
    let x = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    (x as f64 / u64::MAX as f64) < val_fraction
}

/// How many documents a corpus holds and how many go to validation: a pass over the whole
/// corpus before anything is written, so bad input (a line that is not JSON, a file that is
/// not UTF-8, too few documents to split) fails the stage with nothing written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Survey {
    pub documents: usize,
    pub val_documents: usize,
}

pub fn survey(
    corpus: &std::path::Path,
    text_field: &str,
    seed: u64,
    val_fraction: f64,
) -> Result<Survey> {
    let mut n = Survey {
        documents: 0,
        val_documents: 0,
    };
    for doc in crate::corpus::stream_corpus(corpus, text_field)? {
        let doc = doc?;
        n.documents += 1;
        n.val_documents += is_validation(&doc.id, seed, val_fraction) as usize;
    }
    if n.documents == 0 {
        return Err(crate::corpus::CorpusError::Empty(corpus.to_owned()).into());
    }
    anyhow::ensure!(
        n.val_documents > 0 && n.val_documents < n.documents,
        "the corpus has {} documents: too few to hold out `data.val_fraction` = {val_fraction} for validation; add text \
         (documents are separated by blank lines) or change the fraction",
        n.documents
    );
    Ok(n)
}

/// The labelled evaluation tokens, and the share of alphabetic words that got a concept.
pub fn token_table(
    tokenizer: &Tokenizer,
    docs: &[&Document],
    limit: usize,
    lex: &Lexicon,
) -> Result<(Vec<TokenRow>, f64)> {
    let mut rows = Vec::new();
    let (mut n, mut words_seen, mut words_labelled) = (0usize, 0usize, 0usize);
    for (d, doc) in docs.iter().enumerate() {
        if n >= limit {
            break;
        }
        let enc = tokenizer
            .encode(doc.text.as_str(), false)
            .map_err(|e| anyhow::anyhow!("tokenization failed: {e}"))?;
        let ids = enc.get_ids();
        let word_ids = enc.get_word_ids();
        let offsets = enc.get_offsets();
        // The span of each word: from its first token's start to its last token's end.
        let mut spans: std::collections::HashMap<u32, (usize, usize)> = Default::default();
        for (w, &(s, e)) in word_ids.iter().zip(offsets) {
            if let Some(w) = w {
                let span = spans.entry(*w).or_insert((s, e));
                span.0 = span.0.min(s);
                span.1 = span.1.max(e);
            }
        }
        let mut last_word = None;
        for (p, &id) in ids.iter().enumerate() {
            if n >= limit {
                break;
            }
            let w = word_ids[p].unwrap_or(u32::MAX);
            let word = spans
                .get(&w)
                .and_then(|&(s, e)| doc.text.get(s..e))
                .map(normalise_word)
                .filter(|w| !w.is_empty());
            let label = word.as_deref().and_then(|w| lex.concept_of(w));
            if last_word != Some(w)
                && word
                    .as_deref()
                    .is_some_and(|w| w.chars().all(char::is_alphabetic))
            {
                words_seen += 1;
                words_labelled += label.is_some() as usize;
            }
            last_word = Some(w);
            rows.push(TokenRow {
                token_index: n as u32,
                doc_id: d as u32,
                position: p as u32,
                token_id: id,
                token_text: tokenizer.decode(&[id], false).unwrap_or_default(),
                word_index: w,
                word,
                concept: label.map(|c| lex.name(c).to_owned()),
                concept_id: label,
            });
            n += 1;
        }
    }
    Ok((rows, words_labelled as f64 / words_seen.max(1) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize;

    fn fixture_docs() -> Vec<Document> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/corpus.txt"
        ))
        .unwrap();
        crate::corpus::split_paragraphs(&text)
            .into_iter()
            .enumerate()
            .map(|(i, text)| Document {
                id: format!("f#{i}"),
                text,
            })
            .collect()
    }

    #[test]
    fn token_table_round_trips_to_the_text_and_labels_words() {
        let docs = fixture_docs();
        let tokenizer = tokenize::train_bpe(docs.iter().map(|d| d.text.as_str()), 300).unwrap();
        let lex =
            Lexicon::parse("dog\tnoun.animal\nbread\tnoun.food\nfarm\tnoun.artifact\n").unwrap();
        let refs: Vec<&Document> = docs.iter().take(5).collect();
        let (rows, coverage) = token_table(&tokenizer, &refs, usize::MAX, &lex).unwrap();
        // Concatenating a document's token texts gives back the document exactly.
        for (d, doc) in refs.iter().enumerate() {
            let joined: String = rows
                .iter()
                .filter(|r| r.doc_id == d as u32)
                .map(|r| r.token_text.as_str())
                .collect();
            assert_eq!(joined, doc.text);
        }
        // Every token of a labelled word carries the word's concept; others carry none.
        for r in &rows {
            let expected = match r.word.as_deref() {
                Some("dog") => Some("noun.animal"),
                Some("bread") => Some("noun.food"),
                Some("farm") => Some("noun.artifact"),
                _ => None,
            };
            assert_eq!(r.concept.as_deref(), expected, "{r:?}");
            assert_eq!(r.concept_id.is_some(), expected.is_some());
        }
        assert!(coverage > 0.0 && coverage < 1.0);
        // The limit cuts the table.
        let (small, _) = token_table(&tokenizer, &refs, 7, &lex).unwrap();
        assert_eq!(small.len(), 7);
    }

    #[test]
    fn split_is_deterministic_and_near_the_fraction() {
        let ids: Vec<String> = (0..4000).map(|i| format!("f.txt#{i}")).collect();
        let a: Vec<bool> = ids.iter().map(|d| is_validation(d, 7, 0.1)).collect();
        let b: Vec<bool> = ids.iter().map(|d| is_validation(d, 7, 0.1)).collect();
        let c: Vec<bool> = ids.iter().map(|d| is_validation(d, 8, 0.1)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let share = a.iter().filter(|x| **x).count() as f64 / a.len() as f64;
        assert!((0.08..0.12).contains(&share), "{share}");
    }
}
