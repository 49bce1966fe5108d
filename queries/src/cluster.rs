//! A Ballista cluster inside this process: one scheduler and N executors on loopback, for
//! `pipeline cluster start`, the engine-comparison tests and the Ballista benchmark.
//!
//! The scheduler hands out work by pull (executors poll it), as Ballista's own standalone mode
//! does; a stock `ballista-scheduler` must then run with `-s pull-staged` too, or jobs hang.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_core::utils::{
    GrpcServerConfig, create_grpc_server, default_config_producer, default_session_builder,
};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::metrics::default_metrics_collector;
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion::error::DataFusionError;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tokio::net::TcpListener;

use crate::{Error, Result};

/// Shape of a local cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Executors to start (two or more make shuffles cross executors).
    pub executors: usize,
    /// Port of the scheduler on 127.0.0.1 (0: any free port). Executors take free ports and
    /// register with the scheduler, so only this one needs to be known.
    pub scheduler_port: u16,
    /// Tasks each executor runs at once.
    pub task_slots: usize,
}

/// A running local cluster; it lives as long as the tokio runtime that started it.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    pub scheduler: SocketAddr,
    pub executors: usize,
}

impl LocalCluster {
    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("df://{}", self.scheduler)
    }
}

/// Starts the scheduler, then the executors, and returns once every executor has connected.
pub async fn start_local(options: &ClusterOptions) -> Result<LocalCluster> {
    let scheduler = start_scheduler(options.scheduler_port).await?;
    let url = format!("http://{scheduler}");
    for _ in 0..options.executors.max(1) {
        let client = connect(&url).await?;
        ballista_executor::new_standalone_executor(
            client,
            options.task_slots.max(1),
            BallistaCodec::default(),
        )
        .await
        .map_err(ballista_error)?;
    }
    Ok(LocalCluster {
        scheduler,
        executors: options.executors.max(1),
    })
}

/// Ballista's standalone scheduler, bound to 127.0.0.1 on the port asked for.
async fn start_scheduler(port: u16) -> Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
        Error::Cluster(format!(
            "cannot bind the scheduler to 127.0.0.1:{port}: {e}"
        ))
    })?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::Cluster(e.to_string()))?;
    let config_producer = Arc::new(default_config_producer);
    let max_message = default_config_producer().ballista_grpc_client_max_message_size();
    let cluster = BallistaCluster::new_memory(
        address.to_string(),
        Arc::new(default_session_builder),
        config_producer,
    );
    let mut server: SchedulerServer<LogicalPlanNode, PhysicalPlanNode> = SchedulerServer::new(
        address.to_string(),
        cluster,
        BallistaCodec::default(),
        Arc::new(
            SchedulerConfig::default().with_scheduler_policy(TaskSchedulingPolicy::PullStaged),
        ),
        default_metrics_collector().map_err(ballista_error)?,
    );
    server.init().await.map_err(ballista_error)?;
    let service = SchedulerGrpcServer::new(server)
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    tokio::spawn(
        create_grpc_server(&GrpcServerConfig::default())
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok(address)
}

/// A client of the scheduler, retrying while it comes up.
async fn connect(url: &str) -> Result<SchedulerGrpcClient<tonic::transport::Channel>> {
    let mut last = String::new();
    for _ in 0..50 {
        match SchedulerGrpcClient::connect(url.to_owned()).await {
            Ok(client) => return Ok(client),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::Cluster(format!(
        "the scheduler at {url} did not accept connections: {last}"
    )))
}

fn ballista_error(e: ballista_core::error::BallistaError) -> Error {
    Error::DataFusion(DataFusionError::External(Box::new(e)))
}
