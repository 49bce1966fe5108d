//! The training and validation token streams written by `prepare` (`prepare/*.bin`).

use std::path::Path;

use anyhow::{Context, Result};

/// Token ids of a `.bin` stream, memory-mapped.
pub struct TokenStream {
    map: memmap2::Mmap,
}

impl TokenStream {
    /// Maps a little-endian u32 file.
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: the file is written once by `prepare` (atomically) and only read afterwards.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .with_context(|| format!("cannot map {}", path.display()))?;
        anyhow::ensure!(
            map.len().is_multiple_of(4),
            "{}: truncated (size is not a multiple of 4 bytes); run `pipeline prepare --force`",
            path.display()
        );
        Ok(Self { map })
    }

    /// The ids.
    pub fn ids(&self) -> &[u32] {
        bytemuck::cast_slice(&self.map)
    }
}

/// Writes a `.bin` stream document by document under a temporary name; [`finish`] renames it
/// into place, and a writer dropped before that removes its temporary file.
///
/// [`finish`]: TokenStreamWriter::finish
pub struct TokenStreamWriter {
    path: std::path::PathBuf,
    tmp: std::path::PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    end_of_text: u32,
    tokens: usize,
}

impl TokenStreamWriter {
    pub fn create(path: &Path, end_of_text: u32) -> Result<Self> {
        let tmp = queries::durable::temp_path(path);
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(Self {
            path: path.to_owned(),
            tmp,
            out: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            end_of_text,
            tokens: 0,
        })
    }

    /// Appends one document's ids and the end-of-text token.
    pub fn push(&mut self, ids: &[u32]) -> Result<()> {
        use std::io::Write;
        let out = self.out.as_mut().expect("written before finish");
        for &id in ids.iter().chain(std::iter::once(&self.end_of_text)) {
            out.write_all(&id.to_le_bytes())
                .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        }
        self.tokens += ids.len() + 1;
        Ok(())
    }

    /// Flushes, syncs and renames the stream into place; returns its length in tokens.
    pub fn finish(mut self) -> Result<usize> {
        let out = self.out.take().expect("finished once");
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all().map(|()| f))
            .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        drop(file);
        queries::durable::commit(&self.tmp, &self.path)?;
        Ok(self.tokens)
    }
}

impl Drop for TokenStreamWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
