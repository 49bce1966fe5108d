//! The run context every stage gets, and the bookkeeping that makes a stage skip unchanged
//! work and never touch results it did not make.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use queries::layout::RunLayout;
use serde::Serialize;

use super::lock::RunLock;
use super::{Outcome, Stage};
use crate::config::PipelineConfig;
use crate::manifest::{Manifest, StageRecord, StageStatus, hash_path, hash_value};
use crate::ui::Ui;

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

impl Ctx {
    /// Locks the run directory for one stage's writes (`None` when this process holds the lock
    /// already): a second process running a stage on the same run stops instead of writing
    /// over the first one's files. Queries only read and take no lock.
    pub fn lock_run(&self) -> Result<Option<RunLock>> {
        if self.holds_lock {
            return Ok(None);
        }
        RunLock::acquire(&self.layout).map(Some)
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
            queries::tables::SCHEMA_VERSION,
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
