//! `prepare`: tokenizer, token streams for training, and the evaluation token table.
//!
//! Outputs (in `prepare/`): `tokenizer.json`; `train.bin` and `val.bin` (little-endian u32
//! token ids, documents separated by the end-of-text token; memory-mapped by `train`);
//! `tokens.parquet` (the evaluation tokens, labelled with words and concepts); `summary.json`.

use anyhow::{Context, Result};
use queries::tables::tokens;

use super::{Ctx, Outcome};
use crate::config::bundled;
use crate::corpus::{Document, read_corpus};
use crate::lexicon::Lexicon;
use crate::manifest::write_atomic;
use crate::preparation::{is_validation, token_table};
pub use crate::summaries::PrepareSummary;
use crate::tokenize;

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
    let (rows, coverage) = token_table(&tokenizer, &val, data.eval_tokens, lex)?;
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
