use std::path::PathBuf;

/// Errors from the model crate: bad configuration, checkpoints that do not fit, failed training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is impossible; the message names the key and what is allowed.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A checkpoint file is missing, truncated or does not match the config.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },
    /// A Hugging Face model folder this crate cannot read; the message says what to fix.
    #[error("{path}: {message}")]
    Import { path: PathBuf, message: String },
    /// Training diverged.
    #[error("{0}")]
    Training(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
    pub(crate) fn import(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Import {
            path: path.into(),
            message: message.into(),
        }
    }
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}
