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

/// A running local cluster; it lives as long as the tokio runtime that started it. The
/// executors' shuffle files live in one temporary folder, removed with the last handle.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    pub scheduler: SocketAddr,
    pub executors: usize,
    work_dir: Arc<tempfile::TempDir>,
}

impl LocalCluster {
    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("df://{}", self.scheduler)
    }

    /// The folder holding every executor's shuffle files.
    pub fn work_dir(&self) -> &std::path::Path {
        self.work_dir.path()
    }
}

/// Starts the scheduler, then the executors, and returns once every executor has connected.
pub async fn start_local(options: &ClusterOptions) -> Result<LocalCluster> {
    let scheduler = start_scheduler(options.scheduler_port).await?;
    let url = format!("http://{scheduler}");
    let work_dir = tempfile::Builder::new()
        .prefix("ballista-")
        .tempdir()
        .map_err(|e| Error::Cluster(format!("cannot create the executors' folder: {e}")))?;
    for i in 0..options.executors.max(1) {
        let client = connect(&url).await?;
        let dir = work_dir.path().join(format!("executor-{i}"));
        std::fs::create_dir(&dir).map_err(Error::io(&dir))?;
        start_executor(client, options.task_slots.max(1), &dir).await?;
    }
    Ok(LocalCluster {
        scheduler,
        executors: options.executors.max(1),
        work_dir: Arc::new(work_dir),
    })
}

/// One executor on loopback that polls the scheduler and keeps its shuffle files in
/// `work_dir`: Ballista's `new_standalone_executor` with the folder given, because its own
/// drops the `TempDir` it makes at once and the files it then writes there stay behind (5–7
/// GB for one `bench analyze --engine ballista`).
async fn start_executor(
    scheduler: SchedulerGrpcClient<tonic::transport::Channel>,
    vcores: usize,
    work_dir: &std::path::Path,
) -> Result<()> {
    use ballista_core::extension::{
        ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
    };
    use ballista_core::serde::protobuf::ExecutorRegistration;
    use ballista_core::serde::scheduler::{
        ExecutorOperatingSystemSpecification, ExecutorSpecification,
    };
    use ballista_executor::executor::Executor;
    use ballista_executor::flight_service::BallistaFlightService;
    use ballista_executor::metrics::LoggingMetricsCollector;

    let work_dir = work_dir
        .to_str()
        .ok_or_else(|| Error::Cluster(format!("{} is not UTF-8", work_dir.display())))?
        .to_owned();
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_default_features()
        .with_scalar_functions(ballista_scalar_functions())
        .with_aggregate_functions(ballista_aggregate_functions())
        .with_window_functions(ballista_window_functions())
        .build();
    let runtime = state.runtime_env().clone();
    let runtime_producer: ballista_core::RuntimeProducer = Arc::new(move |_| Ok(runtime.clone()));
    let listener = TcpListener::bind("localhost:0")
        .await
        .map_err(|e| Error::Cluster(format!("cannot bind an executor: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::Cluster(e.to_string()))?;
    let registration = ExecutorRegistration {
        id: ballista_core::ids::new_instance_id(),
        host: Some("localhost".to_owned()),
        port: address.port() as u32,
        grpc_port: 50020,
        specification: Some(
            ExecutorSpecification::default()
                .with_vcores(vcores as u32)
                .into(),
        ),
        os_info: Some(ExecutorOperatingSystemSpecification::default().into()),
        ballista_protocol_version: ballista_core::BALLISTA_PROTOCOL_VERSION,
    };
    let max_message = default_config_producer().ballista_grpc_client_max_message_size();
    let executor = Arc::new(Executor::with_default_execution_engine(
        registration,
        &work_dir,
        runtime_producer,
        Arc::new(default_config_producer),
        Arc::new((&state).into()),
        Arc::new(LoggingMetricsCollector::default()),
        vcores,
    ));
    let flight = arrow_flight::flight_service_server::FlightServiceServer::new(
        BallistaFlightService::new(work_dir),
    )
    .max_decoding_message_size(max_message)
    .max_encoding_message_size(max_message);
    tokio::spawn(
        create_grpc_server(&GrpcServerConfig::default())
            .add_service(flight)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    tokio::spawn(ballista_executor::execution_loop::poll_loop(
        scheduler,
        executor,
        BallistaCodec::<LogicalPlanNode, PhysicalPlanNode>::default(),
        None,
        None,
        ballista_executor::health::ExecutorHealth::new(),
    ));
    Ok(())
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
