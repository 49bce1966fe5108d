//! `manifest.json`: what a run is made of — effective config, versions, seeds, the hashes of
//! each stage's inputs, and timings — and the record that lets a stage skip unchanged work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use queries::layout::RunLayout;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where a stage stands: written `running` before it changes anything, `done` when its outputs
/// are complete (a run killed in between is redone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageStatus {
    #[default]
    Running,
    Done,
}

/// One stage's entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StageRecord {
    /// `running` while the stage works, `done` when its outputs are complete.
    pub status: StageStatus,
    /// Hash of the stage's config and input hashes; equal means nothing to redo.
    pub fingerprint: String,
    /// SHA-256 of each input file.
    pub inputs: BTreeMap<String, String>,
    /// Files and folders the stage wrote, relative to the run directory.
    pub outputs: Vec<String>,
    pub seconds: f64,
    /// Unix time the stage finished.
    pub finished_at: u64,
    /// Stage-specific figures (rows written, tokens/s, ...).
    #[serde(default)]
    pub summary: serde_json::Value,
}

/// The whole manifest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    pub config: serde_json::Value,
    pub versions: BTreeMap<String, String>,
    pub git_commit: Option<String>,
    pub seeds: BTreeMap<String, u64>,
    pub stages: BTreeMap<String, StageRecord>,
}

impl Manifest {
    /// Reads the run's manifest, or an empty one.
    pub fn load(layout: &RunLayout) -> Result<Self> {
        let path = layout.manifest();
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid manifest; move it away to start the run afresh",
                path.display()
            )
        })
    }

    /// Writes the manifest atomically.
    pub fn save(&self, layout: &RunLayout) -> Result<()> {
        write_atomic(
            &layout.manifest(),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )
    }
}

/// Writes `bytes` to `path` durably: temporary name, flushed, renamed, folder flushed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(queries::durable::write_atomic(path, bytes)?)
}

/// SHA-256 of a file, or of every file below a folder (paths and contents, in sorted order).
pub fn hash_path(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut files = Vec::new();
    collect_files(path, &mut files)?;
    files.sort();
    for file in files {
        let rel = file.strip_prefix(path).unwrap_or(&file);
        hasher.update(rel.to_string_lossy().as_bytes());
        let mut f = std::fs::File::open(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        std::io::copy(&mut f, &mut hasher)
            .with_context(|| format!("cannot read {}", file.display()))?;
    }
    Ok(hex::encode(hasher.finalize()))
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_file() {
        out.push(path.to_owned());
        return Ok(());
    }
    let entries =
        std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?;
    for entry in entries {
        let p = entry?.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if !hidden {
            collect_files(&p, out)?;
        }
    }
    Ok(())
}

/// SHA-256 of a serialisable value (a config section).
pub fn hash_value<T: Serialize>(value: &T) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(value).expect("serialisable"),
    ))
}

/// Versions of the crates that shape results, from the lock file at build time.
pub fn versions() -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("pipeline".into(), env!("CARGO_PKG_VERSION").into());
    for line in env!("PIPELINE_DEP_VERSIONS")
        .split(',')
        .filter(|s| !s.is_empty())
    {
        if let Some((name, version)) = line.split_once('=') {
            v.insert(name.into(), version.into());
        }
    }
    v
}

/// The git commit of the working directory, if it is a checkout.
pub fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
