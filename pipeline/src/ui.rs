//! Progress bars and logging: bars on a terminal, nothing with `--quiet`, JSON lines with
//! `--json`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How the run talks to the user.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    pub quiet: bool,
    pub json: bool,
}

impl Ui {
    /// A bar of `len` steps with rate and ETA (hidden when quiet or logging JSON).
    pub fn bar(&self, len: u64, what: &str, unit: &str) -> ProgressBar {
        let bar = ProgressBar::new(len);
        if self.quiet || self.json {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let template = format!(
            "{{prefix:>9.bold}} [{{bar:30}}] {{human_pos}}/{{human_len}} {unit} {{per_sec}} ETA {{eta}} {{msg}}"
        );
        bar.set_style(
            ProgressStyle::with_template(&template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(what.to_owned());
        bar
    }

    /// A line for the user (stderr), unless quiet; with `--json` it goes to the log instead.
    pub fn say(&self, line: &str) {
        if self.json {
            tracing::info!("{line}");
        } else if !self.quiet {
            eprintln!("{line}");
        }
    }
}

/// Sets up tracing: `-v` for debug, `--json` for machine-readable lines.
pub fn init_logging(verbose: u8, json: bool, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        // Ballista reports shuffle spills as warnings; they are expected on large tables.
        (_, 0) => "warn,ballista_executor=error,ballista_core=error,ballista_scheduler=error",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PIPELINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if json { "info" } else { level }));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.without_time().with_target(false).init();
    }
}
