//! The byte-level BPE tokenizer (trained here from local text, or loaded from a file).

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

/// Separates documents in the token streams.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// Trains a byte-level BPE with `vocab_size` entries (the end-of-text token included).
pub fn train_bpe<S: AsRef<str> + Send>(
    texts: impl Iterator<Item = S> + Send,
    vocab_size: usize,
) -> Result<Tokenizer> {
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    // No normaliser: token texts concatenate back to the exact document.
    let mut tokenizer = TokenizerBuilder::<
        BPE,
        tokenizers::NormalizerWrapper,
        ByteLevel,
        tokenizers::PostProcessorWrapper,
        ByteLevelDecoder,
    >::new()
    .with_model(BPE::default())
    .with_pre_tokenizer(Some(
        ByteLevel::default()
            .add_prefix_space(false)
            .trim_offsets(false),
    ))
    .with_decoder(Some(ByteLevelDecoder::default()))
    .build()
    .map_err(|e| anyhow!("cannot build the tokenizer: {e}"))?;
    tokenizer
        .train(&mut trainer, texts)
        .map_err(|e| anyhow!("tokenizer training failed: {e}"))?;
    Ok(Tokenizer::from(tokenizer))
}

/// Loads a `tokenizer.json`.
pub fn load(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path)
        .map_err(|e| anyhow!("{}: not a usable tokenizer.json ({e})", path.display()))
}

/// Saves a tokenizer atomically.
pub fn save(tokenizer: &Tokenizer, path: &Path) -> Result<()> {
    let json = tokenizer
        .to_string(true)
        .map_err(|e| anyhow!("cannot serialise the tokenizer: {e}"))?;
    crate::manifest::write_atomic(path, json.as_bytes())
}

/// Id of the end-of-text token.
pub fn end_of_text(tokenizer: &Tokenizer) -> Result<u32> {
    tokenizer.token_to_id(END_OF_TEXT).with_context(|| {
        format!("the tokenizer has no {END_OF_TEXT} token; train one with `data.tokenizer = \"\"`")
    })
}
