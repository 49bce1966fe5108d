//! `pipeline cluster start`: a local Ballista cluster (one scheduler, N executors) in this
//! process, for trying `--engine ballista` on one machine.

use anyhow::Result;

use crate::stages::Ctx;

#[cfg(feature = "ballista")]
pub fn start(ctx: &Ctx, executors: Option<usize>, port: Option<u16>) -> Result<()> {
    use queries::cluster::{ClusterOptions, start_local};

    let options = ClusterOptions {
        executors: executors.unwrap_or(ctx.cfg.cluster.executors).max(1),
        scheduler_port: port.unwrap_or(ctx.cfg.cluster.scheduler_port),
        task_slots: ctx.cfg.cluster.task_slots,
    };
    let rt = crate::stages::analyze::runtime()?;
    rt.block_on(async {
        let cluster = start_local(&options).await?;
        let url = cluster.url();
        let banner = format!(
            "Ballista scheduler at {url} with {} executor(s) of {} task slot(s), on loopback only.\n\
             Shuffle files in {} (removed when the cluster stops).\n\
             From another terminal, in this directory:\n\
             \x20 pipeline analyze --engine ballista --scheduler {url}\n\
             \x20 pipeline sql --engine ballista --scheduler {url} \"SELECT COUNT(*) FROM activations\"\n\
             Other machines cannot reach a loopback cluster: for several machines run the stock \
             ballista-scheduler and ballista-executor binaries (see the README's Ballista section).\n\
             Stop with Ctrl-C.\n",
            cluster.executors,
            options.task_slots,
            cluster.work_dir().display()
        );
        // A reader that went away (a closed pipe) must not stop the cluster.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), banner.as_bytes());
        // Ctrl-C or `kill` (SIGTERM) ends the block, so `cluster` is dropped and the
        // executors' shuffle files go with it.
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            stopped = tokio::signal::ctrl_c() => stopped?,
            _ = terminate.recv() => {}
        }
        drop(cluster);
        Ok::<_, anyhow::Error>(())
    })
}

#[cfg(not(feature = "ballista"))]
pub fn start(_: &Ctx, _: Option<usize>, _: Option<u16>) -> Result<()> {
    Err(queries::Error::EngineNotBuilt.into())
}
