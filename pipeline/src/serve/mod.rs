//! `pipeline serve`: a local, interactive explorer of the run's tables in the browser — search
//! neurons, a neuron across checkpoints, two checkpoints side by side, a steering playground and
//! a SQL box. Every view is a URL (`#/neuron?model=topk&layer=2&neuron=17&step=600`), so a link
//! reproduces it.
//!
//! - `explorer`: the JSON answers, each a few queries of `queries/sql/serve/` over the same
//!   read-only DataFusion session as `pipeline sql` (so `--engine ballista` works too);
//! - `playground`: steered and unsteered generation from a checkpoint;
//! - `routes`: the HTTP surface (axum), limits and the embedded page (`assets/`).

pub mod bench;
pub mod explorer;
pub mod playground;
pub mod routes;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use queries::session::{SessionOptions, open_run};

use crate::manifest::{Manifest, StageStatus};
use crate::stages::Ctx;
use crate::stages::analyze::{MEMORY_LIMIT, runtime};

/// `pipeline serve` options.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Port to listen on (0: any free port; the URL printed says which).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Address to listen on. The default answers this machine only; another address shares
    /// the run (its text, its checkpoints) with everyone who can reach it.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Longest a query or a generation may run, in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout_s: u64,
}

/// The explorer and the playground over the run as it is now, shared by every request.
///
/// A stage run while the server is up (in another terminal) rewrites tables and checkpoints,
/// and DataFusion's session keeps the file lists and table set it saw when it opened. Every
/// stage marks itself in the manifest when it starts and when it finishes, so each request
/// compares the manifest with the one the session was opened on and reopens both halves when
/// it changed: tables written after the server started appear, replaced ones are read anew.
pub struct AppState {
    ctx: Ctx,
    timeout: Duration,
    current: tokio::sync::Mutex<Opened>,
}

/// What one opening of the run saw.
struct Opened {
    /// The manifest's bytes when it was opened (`None`: no manifest yet).
    manifest: Option<Vec<u8>>,
    view: Arc<RunView>,
}

/// Both halves of the explorer over one state of the run.
pub struct RunView {
    pub explorer: explorer::Explorer,
    pub playground: playground::Playground,
}

impl AppState {
    /// The explorer over the run of `ctx`.
    pub async fn open(ctx: &Ctx, timeout: Duration) -> Result<Self> {
        let manifest = manifest_bytes(ctx);
        let view = Arc::new(RunView::open(ctx, timeout, manifest.as_deref()).await?);
        Ok(Self {
            ctx: ctx.clone(),
            timeout,
            current: tokio::sync::Mutex::new(Opened { manifest, view }),
        })
    }

    /// The run as it is now: the last opening, or a new one if a stage has started or
    /// finished since (one request reopens; the others wait for it).
    pub async fn view(&self) -> Result<Arc<RunView>, ApiError> {
        let mut opened = self.current.lock().await;
        // Read before opening: a stage that changes the manifest meanwhile makes the next
        // request open again.
        let manifest = manifest_bytes(&self.ctx);
        if manifest != opened.manifest {
            let view = RunView::open(&self.ctx, self.timeout, manifest.as_deref())
                .await
                .map_err(|e| ApiError::unavailable(format!("cannot reopen the run: {e:#}")))?;
            *opened = Opened {
                manifest,
                view: Arc::new(view),
            };
        }
        Ok(opened.view.clone())
    }
}

impl RunView {
    /// The run as `manifest` (its bytes, read just before) describes it.
    async fn open(ctx: &Ctx, timeout: Duration, manifest: Option<&[u8]>) -> Result<Self> {
        let root = ctx.layout.root();
        if !root.is_dir() {
            bail!(
                "no run at {}: run `pipeline run all` first (or pass --set run.name=... for another run)",
                root.display()
            );
        }
        let session = open_run(
            root,
            &SessionOptions {
                memory_limit: Some(MEMORY_LIMIT),
                engine: ctx.cfg.engine.engine()?,
                ..Default::default()
            },
        )
        .await?;
        let running = manifest
            .and_then(|bytes| serde_json::from_slice::<Manifest>(bytes).ok())
            .map(|m| running_stages(&m))
            .unwrap_or_default();
        let explorer = explorer::Explorer::open(session, root.to_owned(), timeout, running).await?;
        Ok(Self {
            explorer,
            playground: playground::Playground::new(ctx.clone()),
        })
    }
}

fn manifest_bytes(ctx: &Ctx) -> Option<Vec<u8>> {
    std::fs::read(ctx.layout.manifest()).ok()
}

/// The stages the manifest marks as running: their tables may change or be missing for a
/// while (the explorer reopens when they finish).
fn running_stages(manifest: &Manifest) -> Vec<String> {
    manifest
        .stages
        .iter()
        .filter(|(_, rec)| rec.status == StageStatus::Running)
        .map(|(stage, _)| stage.clone())
        .collect()
}

/// Runs `pipeline serve` until Ctrl-C.
pub fn run(ctx: &Ctx, args: &ServeArgs) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let state = Arc::new(AppState::open(ctx, Duration::from_secs(args.timeout_s)).await?);
        let view = state.view().await.map_err(|e| anyhow::anyhow!(e.message))?;
        for notice in &view.explorer.notices {
            eprintln!("note: {notice}");
        }
        if !args.host.is_loopback() {
            eprintln!(
                "warning: listening on {}: anyone who can reach this address can read the run's tables and generate from its checkpoints",
                args.host
            );
        }
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port))
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}:{}; is another server using the port? Try --port 0",
                    args.host, args.port
                )
            })?;
        let url = format!("http://{}/", listener.local_addr()?);
        println!("explorer of {}: {url}  (Ctrl-C to stop)", ctx.layout.root().display());
        use std::io::Write;
        std::io::stdout().flush()?;
        axum::serve(listener, routes::router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the server stopped")
    })
}

/// An answer other than 200: its status and a message that says what to change.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self {
            status,
            message: format!("{message:#}"),
        }
    }

    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// The run lacks what the request needs (a table, a checkpoint), or it ran too long.
    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::StageRecord;

    #[test]
    fn the_stages_the_manifest_marks_running_are_found() {
        let mut manifest = Manifest::default();
        assert!(running_stages(&manifest).is_empty());
        for (stage, status) in [
            ("record", StageStatus::Done),
            ("analyze", StageStatus::Running),
            ("train", StageStatus::Done),
        ] {
            let rec = StageRecord {
                status,
                ..Default::default()
            };
            manifest.stages.insert(stage.to_owned(), rec);
        }
        assert_eq!(running_stages(&manifest), vec!["analyze".to_owned()]);
    }
}
