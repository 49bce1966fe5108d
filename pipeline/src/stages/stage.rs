//! The stages as a type: their names, order and dispatch.

use anyhow::Result;

use super::{Ctx, analyze, prepare, record, report, sae, steer, train};

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

/// Whether a stage ran or found nothing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ran(serde_json::Value),
    Skipped,
}
