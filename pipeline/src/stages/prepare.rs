//! `prepare`: tokenizer, token streams for training, and the evaluation token table.
//!
//! Outputs (in `prepare/`): `tokenizer.json`; `train.bin` and `val.bin` (little-endian u32
//! token ids, documents separated by the end-of-text token; memory-mapped by `train`);
//! `tokens.parquet` (the evaluation tokens, labelled with words and concepts); `summary.json`.

use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use queries::tables::tokens;

use super::{Ctx, Outcome};
use crate::config::bundled;
use crate::corpus::{CorpusError, Document, stream_corpus};
use crate::lexicon::Lexicon;
use crate::manifest::write_atomic;
use crate::preparation::{Survey, is_validation, survey, token_table};
pub use crate::summaries::PrepareSummary;
use crate::token_stream::TokenStreamWriter;
use crate::tokenize;

/// Documents are tokenised in batches of about this much text: enough documents to keep every
/// core busy, few enough that the batch's encodings (about 100 bytes a token) stay small.
const BATCH_BYTES: usize = 1 << 20;

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
            let survey = survey(&corpus, &data.text_field, data.seed, data.val_fraction)?;
            Ok((survey, Lexicon::load(&lexicon)?))
        },
        |(survey, lex)| {
            let summary = prepare(ctx, &corpus, &lex, &survey)?;
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

/// The configured tokenizer (`data.tokenizer`), or a byte-level BPE trained on the training
/// documents, streamed: memory holds the word counts, not the text.
pub fn tokenizer_for(ctx: &Ctx, corpus: &Path) -> Result<tokenizers::Tokenizer> {
    let data = &ctx.cfg.data;
    if !data.tokenizer.as_os_str().is_empty() {
        return tokenize::load(&data.tokenizer);
    }
    let failure: Mutex<Option<CorpusError>> = Mutex::new(None);
    let texts = stream_corpus(corpus, &data.text_field)?
        .map_while(|d| match d {
            Ok(d) => Some(d),
            Err(e) => {
                *failure.lock().expect("not poisoned") = Some(e);
                None
            }
        })
        .filter(|d| !is_validation(&d.id, data.seed, data.val_fraction))
        .map(|d| d.text);
    let trained = tokenize::train_bpe(texts, ctx.cfg.model.vocab_size);
    if let Some(e) = failure.into_inner().expect("not poisoned") {
        return Err(e.into());
    }
    trained
}

/// Tokenizes, splits and writes everything, streaming the corpus: memory holds one batch of
/// documents, the evaluation documents, and (when a tokenizer is trained) its word counts,
/// whatever the corpus size. A trained tokenizer takes one pass over the training documents;
/// the token streams a second.
pub fn prepare(ctx: &Ctx, corpus: &Path, lex: &Lexicon, survey: &Survey) -> Result<PrepareSummary> {
    let data = &ctx.cfg.data;
    let out = ctx.layout.stage_dir("prepare");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let is_val = |d: &Document| is_validation(&d.id, data.seed, data.val_fraction);

    let tokenizer = tokenizer_for(ctx, corpus)?;
    let vocab_size = tokenizer.get_vocab_size(true);
    anyhow::ensure!(
        vocab_size <= ctx.cfg.model.vocab_size,
        "the tokenizer has {vocab_size} tokens but `model.vocab_size` = {}; raise model.vocab_size",
        ctx.cfg.model.vocab_size
    );
    let eot = tokenize::end_of_text(&tokenizer)?;
    tokenize::save(&tokenizer, &out.join("tokenizer.json"))?;

    // --- token streams, batch by batch; the first validation documents are kept for the
    // evaluation table.
    let mut train_out = TokenStreamWriter::create(&out.join("train.bin"), eot)?;
    let mut val_out = TokenStreamWriter::create(&out.join("val.bin"), eot)?;
    let (mut documents, mut train_documents) = (0usize, 0usize);
    let mut eval_docs: Vec<Document> = Vec::new();
    let mut eval_doc_tokens = 0usize;
    let bar = ctx.ui.bar(survey.documents as u64, "prepare", "docs");
    let mut docs = stream_corpus(corpus, &data.text_field)?.peekable();
    while docs.peek().is_some() {
        let mut batch: Vec<Document> = Vec::new();
        let mut bytes = 0;
        while bytes < BATCH_BYTES {
            let Some(doc) = docs.next() else { break };
            let doc = doc?;
            bytes += doc.text.len();
            batch.push(doc);
        }
        let texts: Vec<&str> = batch.iter().map(|d| d.text.as_str()).collect();
        let encodings = tokenizer
            .encode_batch(texts, false)
            .map_err(|e| anyhow::anyhow!("tokenization failed: {e}"))?;
        for (doc, enc) in batch.into_iter().zip(encodings) {
            if is_val(&doc) {
                val_out.push(enc.get_ids())?;
                if eval_doc_tokens < data.eval_tokens {
                    eval_doc_tokens += enc.get_ids().len();
                    eval_docs.push(doc);
                }
            } else {
                train_out.push(enc.get_ids())?;
                train_documents += 1;
            }
            documents += 1;
        }
        bar.set_position(documents as u64);
    }
    bar.finish_and_clear();
    let val_documents = documents - train_documents;
    // The corpus changed between the survey and now.
    anyhow::ensure!(
        documents == survey.documents && val_documents == survey.val_documents,
        "{} changed while it was read ({} documents, then {documents}); run prepare again",
        corpus.display(),
        survey.documents
    );
    let train_tokens = train_out.finish()?;
    let val_tokens = val_out.finish()?;

    // --- evaluation token table (whole validation documents, in order, up to eval_tokens)
    let eval_refs: Vec<&Document> = eval_docs.iter().collect();
    let (rows, coverage) = token_table(&tokenizer, &eval_refs, data.eval_tokens, lex)?;
    let eval_tokens = rows.len();
    queries::parquet_io::write_parquet(
        &out.join("tokens.parquet"),
        tokens::schema(),
        &[tokens::encode(&rows)?],
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
        documents,
        train_documents,
        val_documents,
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
