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
