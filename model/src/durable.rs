//! Files that survive a crash: written under a temporary name, flushed to disk, renamed into
//! place, and the rename flushed, so a kill or power loss leaves the old file or the new one.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Writes `bytes` to `tmp` and flushes them to disk (`tmp` is removed if that fails).
pub(crate) fn write_synced(tmp: &Path, bytes: &[u8]) -> Result<()> {
    let written = File::create(tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written.map_err(Error::io(tmp))
}

/// Flushes every file directly in `dir`, then `dir` itself (for folders written by burn's
/// recorders, which do not sync).
pub(crate) fn sync_folder(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let path = entry.map_err(Error::io(dir))?.path();
        if path.is_file() {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(Error::io(&path))?;
        }
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(dir))
}

/// Renames a complete `from` (file or folder) to `to`, then flushes the parent folder.
pub(crate) fn rename_synced(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(Error::io(to))?;
    let parent = to.parent().unwrap_or(Path::new("."));
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(parent))
}
