use std::path::PathBuf;

/// Errors at the edge of the query crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A query result or file lacks a column a row struct needs, or has nulls where it may not.
    #[error("column `{column}`: {why}")]
    Column { column: String, why: String },
    /// A table the query needs is not in the run directory.
    #[error("table `{table}` not found; tables in this run: {available}")]
    MissingTable { table: String, available: String },
    /// `engine.scheduler` is not a `df://host:port` URL.
    #[error("scheduler URL `{url}`: {why}")]
    SchedulerUrl { url: String, why: String },
    /// Nothing answers at the scheduler's address.
    #[error(
        "cannot reach the Ballista scheduler at {url}: {why}\n(start one with `pipeline cluster start`, or set engine.scheduler / --scheduler to a running scheduler)"
    )]
    SchedulerUnreachable { url: String, why: String },
    /// `--engine ballista` in a build without the `ballista` feature.
    #[error(
        "this build has no Ballista engine; rebuild with the `ballista` feature (on by default) or use --engine datafusion"
    )]
    EngineNotBuilt,
    /// The local cluster could not start.
    #[error("local Ballista cluster: {0}")]
    Cluster(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
    pub(crate) fn parquet(
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> Error {
        let path = path.into();
        move |source| Error::Parquet { path, source }
    }
}
