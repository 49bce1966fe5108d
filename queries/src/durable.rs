//! Durable file replacement: a file is written under a temporary name, flushed to disk, renamed
//! over the old one, and the rename itself flushed, so a crash or power loss leaves the old file
//! or the new one, never an empty or half-written one. And the clean-up that keeps a stage's
//! folder holding exactly what the stage made.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The temporary name of `path` while it is written: hidden (`.name.tmp`), so neither a listing
/// table nor the input hashes see it.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.tmp"))
}

/// Flushes the folder entry of `path` (its parent's directory listing) to disk: after a rename,
/// this is what makes the new name survive a power loss.
pub fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(parent))
}

/// Renames a complete, synced temporary file or folder into place and syncs the folder.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(Error::io(path))?;
    sync_parent(path)
}

/// Writes `bytes` to `path` durably (see the module docs); the temporary file is removed if
/// anything fails, so a full disk leaves only the previous file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
    }
    let tmp = temp_path(path);
    let written = File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        })
        .map_err(Error::io(&tmp))
        .and_then(|()| commit(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Removes everything below `root` except the paths in `keep` (relative to `root`) and what lies
/// below them; returns the paths removed, relative to `root`. A stage calls it when it has
/// finished, so files that an earlier config asked for (a step no longer trained, a model no
/// longer listed) do not linger beside the current ones.
pub fn retain_only(root: &Path, keep: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    if root.is_dir() {
        retain_below(root, Path::new(""), keep, &mut removed)?;
    }
    Ok(removed)
}

fn retain_below(
    root: &Path,
    rel: &Path,
    keep: &[PathBuf],
    removed: &mut Vec<PathBuf>,
) -> Result<()> {
    let dir = root.join(rel);
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(Error::io(&dir))?
        .map(|e| e.map(|e| rel.join(e.file_name())))
        .collect::<std::io::Result<_>>()
        .map_err(Error::io(&dir))?;
    entries.sort();
    for entry in entries {
        if keep.iter().any(|k| entry.starts_with(k)) {
            continue;
        }
        let path = root.join(&entry);
        if keep.iter().any(|k| k.starts_with(&entry)) && path.is_dir() {
            retain_below(root, &entry, keep, removed)?;
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(Error::io(&path))?;
        } else {
            std::fs::remove_file(&path).map_err(Error::io(&path))?;
        }
        removed.push(entry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, rel).unwrap();
    }

    fn files(root: &Path) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.sort();
        out
    }

    #[test]
    fn retain_only_keeps_listed_paths_and_their_contents_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "activations/model=topk/step=20/layer=0/part-0000.parquet",
            "activations/model=topk/step=20/layer=0/part-0001.parquet",
            "activations/model=topk/step=40/layer=0/part-0000.parquet",
            "activations/model=gone/step=0/layer=0/part-0000.parquet",
            "neurons/model=topk/step=20/layer=0/part-0000.parquet",
            ".staging/activations/model=topk/step=20/layer=1/part-0000.parquet",
            "quality.parquet",
        ] {
            touch(root, f);
        }
        let keep = [
            PathBuf::from("activations/model=topk/step=20/layer=0"),
            PathBuf::from("neurons/model=topk/step=20/layer=0"),
            PathBuf::from("quality.parquet"),
        ];
        let removed = retain_only(root, &keep).unwrap();
        assert_eq!(
            files(root),
            vec![
                "activations/model=topk/step=20/layer=0/part-0000.parquet",
                "activations/model=topk/step=20/layer=0/part-0001.parquet",
                "neurons/model=topk/step=20/layer=0/part-0000.parquet",
                "quality.parquet",
            ]
        );
        let removed: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            removed,
            vec![
                ".staging",
                "activations/model=gone",
                "activations/model=topk/step=40"
            ]
        );
        // A second call finds nothing to do; a missing root is not an error.
        assert!(retain_only(root, &keep).unwrap().is_empty());
        assert!(retain_only(&root.join("nope"), &keep).unwrap().is_empty());
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/m.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(files(dir.path()), vec!["sub/m.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        write_atomic(&path, b"old").unwrap();
        // A folder where the new name must go makes the rename fail after the write.
        let blocked = dir.path().join("d");
        std::fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(!temp_path(&blocked).exists());
    }
}
