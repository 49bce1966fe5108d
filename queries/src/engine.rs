//! Which engine runs the SQL: DataFusion in this process (the default), or a Ballista cluster
//! that runs the same plans over a lake every node can read.

use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::{Error, Result};

/// The engine of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Engine {
    /// DataFusion in this process.
    #[default]
    DataFusion,
    /// A Ballista scheduler, `df://host:port`.
    Ballista {
        scheduler: String,
        /// Read shuffle data over Arrow Flight even from the executor that wrote it (tests:
        /// exercises the path a multi-machine cluster takes).
        force_remote_read: bool,
    },
}

/// Who runs the SQL: the config's `engine.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// DataFusion in this process.
    Datafusion,
    /// A Ballista cluster (`pipeline cluster start`, or one of your own).
    Ballista,
}

impl Engine {
    /// The engine of `kind`; `scheduler` is the Ballista scheduler's URL.
    pub fn new(kind: EngineKind, scheduler: &str) -> Self {
        match kind {
            EngineKind::Datafusion => Self::DataFusion,
            EngineKind::Ballista => Self::Ballista {
                scheduler: scheduler.to_owned(),
                force_remote_read: false,
            },
        }
    }

    pub fn is_distributed(&self) -> bool {
        matches!(self, Self::Ballista { .. })
    }
}

/// A session context on `engine` with `config` and, for the in-process engine, `runtime`
/// (a Ballista cluster's executors have their own memory settings).
pub async fn context(
    engine: &Engine,
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
) -> Result<SessionContext> {
    match engine {
        Engine::DataFusion => Ok(SessionContext::new_with_config_rt(config, runtime)),
        Engine::Ballista {
            scheduler,
            force_remote_read,
        } => ballista_context(scheduler, *force_remote_read, config).await,
    }
}

#[cfg(feature = "ballista")]
async fn ballista_context(
    scheduler: &str,
    force_remote_read: bool,
    config: SessionConfig,
) -> Result<SessionContext> {
    use ballista::prelude::{SessionConfigExt, SessionContextExt};
    use datafusion::execution::SessionStateBuilder;

    let address = scheduler_address(scheduler)?;
    check_reachable(scheduler, &address).await?;
    let config = config
        .upgrade_for_ballista()
        .with_ballista_shuffle_reader_force_remote_read(force_remote_read);
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    Ok(SessionContext::remote_with_state(&format!("df://{address}"), state).await?)
}

#[cfg(not(feature = "ballista"))]
async fn ballista_context(_: &str, _: bool, _: SessionConfig) -> Result<SessionContext> {
    Err(Error::EngineNotBuilt)
}

/// `host:port` of a `df://host:port` URL (the port defaults to Ballista's 50050).
pub fn scheduler_address(url: &str) -> Result<String> {
    let bad = |why: &str| Error::SchedulerUrl {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let rest = url
        .strip_prefix("df://")
        .ok_or_else(|| bad("it must start with df://"))?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return Err(bad("use df://HOST:PORT"));
    }
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            port.parse::<u16>()
                .map_err(|_| bad("the port must be a number up to 65535"))?;
            Ok(rest.to_owned())
        }
        Some(_) => Err(bad("the host is missing")),
        None => Ok(format!("{rest}:50050")),
    }
}

/// Fails fast, naming the address, when nothing listens there (Ballista itself would only fail
/// at the first query, with a transport error).
#[cfg_attr(not(feature = "ballista"), allow(dead_code))]
async fn check_reachable(url: &str, address: &str) -> Result<()> {
    let attempt = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(address),
    )
    .await;
    let why = match attempt {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer within 5 s".to_owned(),
    };
    Err(Error::SchedulerUnreachable {
        url: url.to_owned(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_urls_are_checked() {
        assert_eq!(scheduler_address("df://h:1").unwrap(), "h:1");
        assert_eq!(scheduler_address("df://h").unwrap(), "h:50050");
        assert_eq!(
            scheduler_address("df://10.0.0.2:50050/").unwrap(),
            "10.0.0.2:50050"
        );
        for bad in [
            "http://h:1",
            "df://",
            "df://h:port",
            "df://:1",
            "df://h:1/x",
        ] {
            let e = scheduler_address(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn engine_kinds() {
        assert_eq!(Engine::new(EngineKind::Datafusion, ""), Engine::DataFusion);
        assert!(Engine::new(EngineKind::Ballista, "df://h:1").is_distributed());
    }

    #[tokio::test]
    async fn an_unreachable_scheduler_is_named() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("df://127.0.0.1:{port}");
        let e = check_reachable(&url, &format!("127.0.0.1:{port}"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(&url), "{e}");
    }
}
