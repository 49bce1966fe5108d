//! `prepare`: tokenizer, token streams for training, and the evaluation token table.
//!
//! Outputs (in `prepare/`): `tokenizer.json`; `train.bin` and `val.bin` (little-endian u32
//! token ids, documents separated by the end-of-text token; memory-mapped by `train`);
//! `tokens.parquet` (the evaluation tokens, labelled with words and concepts); `summary.json`.

use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{RecordBatch, StringBuilder, UInt16Builder, UInt32Builder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use super::{Ctx, Outcome};
use crate::config::bundled;
use crate::corpus::{Document, read_corpus};
use crate::lexicon::{Lexicon, normalise_word};
use crate::manifest::write_atomic;
use crate::tokenize;

/// Figures of a prepared corpus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrepareSummary {
    pub documents: usize,
    pub train_documents: usize,
    pub val_documents: usize,
    pub train_tokens: usize,
    pub val_tokens: usize,
    pub eval_tokens: usize,
    pub vocab_size: usize,
    pub end_of_text: u32,
    /// Share of evaluation word tokens (alphabetic words) whose word has a concept.
    pub concept_coverage: f64,
    /// Lemmas in the lexicon.
    pub lexicon_lemmas: usize,
    pub concepts: Vec<String>,
}

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

/// Runs the stage.
pub fn run(ctx: &Ctx) -> Result<Outcome> {
    let data = &ctx.cfg.data;
    let corpus = bundled(&data.corpus);
    let lexicon = bundled(&data.lexicon);
    let mut inputs = vec![corpus.clone(), lexicon.clone()];
    if !data.tokenizer.as_os_str().is_empty() {
        inputs.push(data.tokenizer.clone());
    }
    let section = (data, ctx.cfg.model.vocab_size);
    ctx.run_stage(
        super::Stage::Prepare,
        &section,
        &inputs,
        || {
            let docs = read_corpus(&corpus, &data.text_field)?;
            let lex = Lexicon::load(&lexicon)?;
            Ok((docs, lex))
        },
        |(docs, lex)| {
            let summary = prepare(ctx, &docs, &lex)?;
            ctx.ui.say(&format!(
                "  prepare: {} documents ({} train / {} validation), {} train tokens, vocabulary {}, \
                 {} evaluation tokens, concept coverage {:.1}%",
                summary.documents,
                summary.train_documents,
                summary.val_documents,
                summary.train_tokens,
                summary.vocab_size,
                summary.eval_tokens,
                100.0 * summary.concept_coverage
            ));
            Ok(serde_json::to_value(summary)?)
        },
    )
}

/// Tokenizes, splits and writes everything; pure apart from the files it writes.
pub fn prepare(ctx: &Ctx, docs: &[Document], lex: &Lexicon) -> Result<PrepareSummary> {
    let data = &ctx.cfg.data;
    let out = ctx.layout.stage_dir("prepare");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let (val, train): (Vec<&Document>, Vec<&Document>) = docs
        .iter()
        .partition(|d| is_validation(&d.id, data.seed, data.val_fraction));
    anyhow::ensure!(
        !train.is_empty() && !val.is_empty(),
        "the corpus has {} documents: too few to hold out `data.val_fraction` = {} for validation; add text \
         (documents are separated by blank lines) or change the fraction",
        docs.len(),
        data.val_fraction
    );

    // --- tokenizer
    let tokenizer = if data.tokenizer.as_os_str().is_empty() {
        tokenize::train_bpe(
            train.iter().map(|d| d.text.as_str()),
            ctx.cfg.model.vocab_size,
        )?
    } else {
        tokenize::load(&data.tokenizer)?
    };
    let vocab_size = tokenizer.get_vocab_size(true);
    anyhow::ensure!(
        vocab_size <= ctx.cfg.model.vocab_size,
        "the tokenizer has {vocab_size} tokens but `model.vocab_size` = {}; raise model.vocab_size",
        ctx.cfg.model.vocab_size
    );
    let eot = tokenize::end_of_text(&tokenizer)?;
    tokenize::save(&tokenizer, &out.join("tokenizer.json"))?;

    // --- token streams
    let bar = ctx.ui.bar(docs.len() as u64, "prepare", "docs");
    let encode = |docs: &[&Document]| -> Result<Vec<Vec<u32>>> {
        let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(1024) {
            let enc = tokenizer
                .encode_batch(chunk.to_vec(), false)
                .map_err(|e| anyhow::anyhow!("tokenization failed: {e}"))?;
            out.extend(enc.into_iter().map(|e| e.get_ids().to_vec()));
            bar.inc(chunk.len() as u64);
        }
        Ok(out)
    };
    let train_ids = encode(&train)?;
    let val_ids = encode(&val)?;
    bar.finish_and_clear();
    let write_stream = |name: &str, docs: &[Vec<u32>]| -> Result<usize> {
        let mut bytes = Vec::new();
        for doc in docs {
            for &id in doc.iter().chain(std::iter::once(&eot)) {
                bytes.extend_from_slice(&id.to_le_bytes());
            }
        }
        write_atomic(&out.join(name), &bytes)?;
        Ok(bytes.len() / 4)
    };
    let train_tokens = write_stream("train.bin", &train_ids)?;
    let val_tokens = write_stream("val.bin", &val_ids)?;

    // --- evaluation token table (whole validation documents, in order, up to eval_tokens)
    let (batch, coverage) = token_table(&tokenizer, &val, data.eval_tokens, lex)?;
    let eval_tokens = batch.num_rows();
    queries::parquet_io::write_parquet(
        &out.join("tokens.parquet"),
        queries::schema::tokens_schema(),
        &[batch],
        &[
            ("run_id", ctx.run_id()),
            // Lets `record` refuse a token table made with another tokenizer.
            (
                "tokenizer_sha256",
                crate::manifest::hash_path(&out.join("tokenizer.json"))?,
            ),
        ],
    )?;
    let summary = PrepareSummary {
        documents: docs.len(),
        train_documents: train.len(),
        val_documents: val.len(),
        train_tokens,
        val_tokens,
        eval_tokens,
        vocab_size,
        end_of_text: eot,
        concept_coverage: coverage,
        lexicon_lemmas: lex.len(),
        concepts: lex.concepts.clone(),
    };
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    Ok(summary)
}

/// The labelled evaluation tokens, and the share of alphabetic words that got a concept.
pub fn token_table(
    tokenizer: &Tokenizer,
    docs: &[&Document],
    limit: usize,
    lex: &Lexicon,
) -> Result<(RecordBatch, f64)> {
    let mut token_index = UInt32Builder::new();
    let mut doc_id = UInt32Builder::new();
    let mut position = UInt32Builder::new();
    let mut token_id = UInt32Builder::new();
    let mut token_text = StringBuilder::new();
    let mut word_index = UInt32Builder::new();
    let mut word_col = StringBuilder::new();
    let mut concept = StringBuilder::new();
    let mut concept_id = UInt16Builder::new();
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
            token_index.append_value(n as u32);
            doc_id.append_value(d as u32);
            position.append_value(p as u32);
            token_id.append_value(id);
            token_text.append_value(tokenizer.decode(&[id], false).unwrap_or_default());
            word_index.append_value(w);
            word_col.append_option(word);
            concept.append_option(label.map(|c| lex.name(c)));
            concept_id.append_option(label);
            n += 1;
        }
    }
    let batch = RecordBatch::try_new(
        queries::schema::tokens_schema(),
        vec![
            Arc::new(token_index.finish()),
            Arc::new(doc_id.finish()),
            Arc::new(position.finish()),
            Arc::new(token_id.finish()),
            Arc::new(token_text.finish()),
            Arc::new(word_index.finish()),
            Arc::new(word_col.finish()),
            Arc::new(concept.finish()),
            Arc::new(concept_id.finish()),
        ],
    )?;
    Ok((batch, words_labelled as f64 / words_seen.max(1) as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{UInt16Type, UInt32Type};

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
        let (batch, coverage) = token_table(&tokenizer, &refs, usize::MAX, &lex).unwrap();
        let doc_id = batch["doc_id"].as_primitive::<UInt32Type>();
        let text = batch["token_text"].as_string::<i32>();
        let word = batch["word"].as_string::<i32>();
        let concept = batch["concept"].as_string::<i32>();
        let concept_id = batch["concept_id"].as_primitive::<UInt16Type>();
        // Concatenating a document's token texts gives back the document exactly.
        for (d, doc) in refs.iter().enumerate() {
            let joined: String = (0..batch.num_rows())
                .filter(|&i| doc_id.value(i) == d as u32)
                .map(|i| text.value(i))
                .collect();
            assert_eq!(joined, doc.text);
        }
        // Every token of a labelled word carries the word's concept; others carry none.
        for i in 0..batch.num_rows() {
            let expected = match word.is_valid(i).then(|| word.value(i)) {
                Some("dog") => Some("noun.animal"),
                Some("bread") => Some("noun.food"),
                Some("farm") => Some("noun.artifact"),
                _ => None,
            };
            assert_eq!(
                concept.is_valid(i).then(|| concept.value(i)),
                expected,
                "token {i} ({:?})",
                text.value(i)
            );
            assert_eq!(concept_id.is_valid(i), expected.is_some());
        }
        assert!(coverage > 0.0 && coverage < 1.0);
        // The limit cuts the table.
        let (small, _) = token_table(&tokenizer, &refs, 7, &lex).unwrap();
        assert_eq!(small.num_rows(), 7);
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
