//! The run directory's lock file.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use queries::layout::RunLayout;

/// The run directory's lock (`<run>/.lock`), held while a stage reads the manifest, works and
/// records what it did; released when dropped or when the process ends (even by SIGKILL).
/// Dropping it also removes a run directory that it created and that holds nothing else, so
/// a stage refused for bad input leaves no trace.
#[derive(Debug)]
pub struct RunLock {
    file: std::fs::File,
    dir: PathBuf,
    created_dir: bool,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let only_lock = || {
            std::fs::read_dir(&self.dir).is_ok_and(|entries| {
                entries
                    .flatten()
                    .all(|e| e.file_name() == std::ffi::OsStr::new(".lock"))
            })
        };
        if self.created_dir && only_lock() {
            let _ = std::fs::remove_file(self.dir.join(".lock"));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

impl RunLock {
    /// Takes the lock of `layout`'s run, creating the run directory if needed; fails at once
    /// (naming the lock file) when another process holds it.
    pub fn acquire(layout: &RunLayout) -> Result<Self> {
        let path = layout.lock();
        let created_dir = !layout.root().exists();
        std::fs::create_dir_all(layout.root())
            .with_context(|| format!("cannot create {}", layout.root().display()))?;
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let lock = RunLock {
            file,
            dir: layout.root().to_owned(),
            created_dir,
        };
        match lock.file.try_lock() {
            Ok(()) => Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another pipeline process is running a stage on {} (it holds {}); wait for it to finish, or give this one another run.name",
                layout.root().display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}
