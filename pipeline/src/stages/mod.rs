//! The stages, in data-flow order, and what they share: the run context and the bookkeeping
//! that makes a stage skip unchanged work and never touch results it did not make.

pub mod analyze;
pub mod prepare;
pub mod record;
pub mod report;
pub mod sae;
pub mod steer;
pub mod train;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::config::PipelineConfig;
use crate::manifest::{Manifest, StageRecord, StageStatus, hash_path, hash_value};
use crate::ui::Ui;
use queries::layout::RunLayout;

/// The stages, in the order `run all` runs them; each writes the folder of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Prepare,
    Train,
    Sae,
    Record,
    Analyze,
    Steer,
    Report,
}

impl Stage {
    /// Every stage, in data-flow order.
    pub const ALL: [Stage; 7] = [
        Stage::Prepare,
        Stage::Train,
        Stage::Sae,
        Stage::Record,
        Stage::Analyze,
        Stage::Steer,
        Stage::Report,
    ];

    /// The stage's name: its command, its folder and its key in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prepare => "prepare",
            Stage::Train => "train",
            Stage::Sae => "sae",
            Stage::Record => "record",
            Stage::Analyze => "analyze",
            Stage::Steer => "steer",
            Stage::Report => "report",
        }
    }

    /// Runs the stage (skipped when its inputs and config are unchanged).
    pub fn run(self, ctx: &Ctx) -> Result<Outcome> {
        let outcome = match self {
            Stage::Prepare => prepare::run(ctx),
            Stage::Train => train::run(ctx),
            Stage::Sae => sae::run(ctx),
            Stage::Record => record::run(ctx),
            Stage::Analyze => analyze::run(ctx),
            Stage::Steer => steer::run(ctx),
            Stage::Report => report::run(ctx),
        };
        outcome.map_err(|e| e.context(format!("{self} failed")))
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Stage {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<Self> {
        Stage::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
                anyhow::anyhow!(
                    "unknown stage `{name}`; use `all` or one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// What every stage gets.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub cfg: PipelineConfig,
    /// Every path under the run directory (`layout.root()`).
    pub layout: RunLayout,
    /// Redo the stage even if its inputs are unchanged.
    pub force: bool,
    pub ui: Ui,
    /// This process already holds the run's lock (`run all` takes it once for every stage).
    pub holds_lock: bool,
}

/// Whether a stage ran or found nothing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ran(serde_json::Value),
    Skipped,
}

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

impl Ctx {
    /// Locks the run directory for one stage's writes (`None` when this process holds the lock
    /// already): a second process running a stage on the same run stops instead of writing
    /// over the first one's files. Queries only read and take no lock.
    pub fn lock_run(&self) -> Result<Option<RunLock>> {
        if self.holds_lock {
            return Ok(None);
        }
        let path = self.layout.lock();
        let created_dir = !self.layout.root().exists();
        std::fs::create_dir_all(self.layout.root())
            .with_context(|| format!("cannot create {}", self.layout.root().display()))?;
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let lock = RunLock {
            file,
            dir: self.layout.root().to_owned(),
            created_dir,
        };
        match lock.file.try_lock() {
            Ok(()) => Ok(Some(lock)),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another pipeline process is running a stage on {} (it holds {}); wait for it to finish, or give this one another run.name",
                self.layout.root().display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// Empties a stage's output folder before the stage writes it anew: a stage that rewrites
    /// every output leaves none of an earlier config's files (a neuron page, a table) behind.
    pub fn fresh_output_dir(&self, stage: Stage) -> Result<PathBuf> {
        let dir = self.layout.stage_dir(stage.name());
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    /// Removes a stage's outputs and its manifest entry when the config no longer asks for the
    /// stage (`sae.enabled = false`), so no table from an earlier config stays readable.
    pub fn drop_stage(&self, stage: Stage) -> Result<()> {
        let dir = self.layout.stage_dir(stage.name());
        if !dir.exists() {
            return Ok(());
        }
        let _lock = self.lock_run()?;
        let mut manifest = Manifest::load(&self.layout)?;
        if !manifest.stages.contains_key(stage.name()) {
            // Not ours: leave it, as a stage never touches what this run did not make.
            return Ok(());
        }
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
        manifest.stages.remove(stage.name());
        manifest.save(&self.layout)
    }

    /// Runs one stage with its bookkeeping:
    /// 1. fingerprint = hash(config section, hashes of the inputs); equal to the last completed
    ///    run's and outputs present → skipped (unless `--force`);
    /// 2. `check` validates inputs before anything is written (bad input leaves the run as it was);
    /// 3. the manifest marks the stage `running`, then `done` with timings and figures.
    pub fn run_stage<C: Serialize, T>(
        &self,
        stage: Stage,
        config_section: &C,
        inputs: &[PathBuf],
        check: impl FnOnce() -> Result<T>,
        work: impl FnOnce(T) -> Result<serde_json::Value>,
    ) -> Result<Outcome> {
        for input in inputs {
            if input.exists() {
                continue;
            }
            if input.starts_with(self.layout.root()) {
                bail!(
                    "{stage} needs {}, which does not exist; run the earlier stages first (`pipeline run all`)",
                    input.display()
                );
            }
            bail!(
                "{stage} needs {}, which does not exist; check the path given in the config (`pipeline config show`)",
                input.display()
            );
        }
        // The lock comes first: the manifest read below must not be overwritten by another
        // process's record of a stage that ran in between.
        let _lock = self.lock_run()?;
        let mut input_hashes = std::collections::BTreeMap::new();
        for input in inputs {
            input_hashes.insert(input.display().to_string(), hash_path(input)?);
        }
        // The table layout version is part of it: a schema change redoes the stage.
        let fingerprint = hash_value(&(
            config_section,
            &input_hashes,
            queries::schema::SCHEMA_VERSION,
        ));
        let mut manifest = Manifest::load(&self.layout)?;
        let out_dir = self.layout.stage_dir(stage.name());
        match manifest.stages.get(stage.name()) {
            Some(rec)
                if rec.status == StageStatus::Done
                    && rec.fingerprint == fingerprint
                    && out_dir.exists()
                    && !self.force =>
            {
                self.ui.say(&format!(
                    "{stage:>9}: up to date (inputs and config unchanged)"
                ));
                return Ok(Outcome::Skipped);
            }
            None if dir_has_files(&out_dir) && !self.force => bail!(
                "{} exists but this run's manifest did not make it; move it away, or pass --force to replace it",
                out_dir.display()
            ),
            _ => {}
        }
        let checked = check()?;
        let started = Instant::now();
        self.init_manifest(&mut manifest);
        manifest.stages.insert(
            stage.name().to_owned(),
            StageRecord {
                status: StageStatus::Running,
                fingerprint: fingerprint.clone(),
                inputs: input_hashes.clone(),
                ..Default::default()
            },
        );
        manifest.save(&self.layout)?;
        let summary = work(checked)?;
        let mut manifest = Manifest::load(&self.layout)?;
        manifest.stages.insert(
            stage.name().to_owned(),
            StageRecord {
                status: StageStatus::Done,
                fingerprint,
                inputs: input_hashes,
                outputs: vec![format!("{stage}/")],
                seconds: started.elapsed().as_secs_f64(),
                finished_at: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                summary: summary.clone(),
            },
        );
        manifest.save(&self.layout)?;
        Ok(Outcome::Ran(summary))
    }

    fn init_manifest(&self, manifest: &mut Manifest) {
        if manifest.run_id.is_empty() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            manifest.run_id = format!("{}-{now}", self.cfg.run.name);
        }
        manifest.config = serde_json::to_value(&self.cfg).expect("config serialises");
        manifest.versions = crate::manifest::versions();
        manifest.git_commit = crate::manifest::git_commit();
        manifest.seeds = [
            ("data.seed".to_owned(), self.cfg.data.seed),
            ("train.seed".to_owned(), self.cfg.train.seed),
            ("sae.seed".to_owned(), self.cfg.sae.seed),
            ("sae.second_seed".to_owned(), self.cfg.sae.second_seed),
        ]
        .into();
    }

    /// The run id from the manifest (for Parquet metadata).
    pub fn run_id(&self) -> String {
        Manifest::load(&self.layout)
            .map(|m| m.run_id)
            .unwrap_or_default()
    }
}

fn dir_has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut e| e.next().is_some())
        .unwrap_or(false)
}
