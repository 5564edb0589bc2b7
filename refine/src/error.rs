//! Errors of the refine crate. Bad *data* is never an error: it is a counted drop.

use std::path::PathBuf;

/// What can stop a refine run: I/O, unwritable output, bad configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A configuration file or value that does not validate.
    #[error("config {path}: {message}")]
    Config {
        /// The config file (or `<default>`).
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// Parquet failed to read or write.
    #[error("{path}: parquet: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: parquet::errors::ParquetError,
    },
    /// Arrow failed to build or read a batch.
    #[error("{path}: arrow: {source}")]
    Arrow {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: arrow::error::ArrowError,
    },
    /// An input file whose format the reader does not know, or whose columns are missing.
    #[error("{path}: {message}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Another live run holds the output folder (see [`crate::lock`]).
    #[error("{path}: {message}")]
    Busy {
        /// The output folder.
        path: PathBuf,
        /// Who holds it.
        message: String,
    },
    /// The inputs differ from those the output folder was made from (see [`crate::inputs`]).
    #[error("{path}: {message}")]
    InputsChanged {
        /// The output folder.
        path: PathBuf,
        /// What changed, and what to do.
        message: String,
    },
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with the refine [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The atomic-file and shard errors of `falconry-shards` (an I/O failure on a named file).
impl From<falconry_shards::Error> for Error {
    fn from(e: falconry_shards::Error) -> Self {
        match e {
            falconry_shards::Error::Io { path, source } => Error::Io { path, source },
            other => Error::Input {
                path: PathBuf::new(),
                message: other.to_string(),
            },
        }
    }
}
