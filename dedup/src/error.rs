//! Errors of the dedup crate. Bad *data* is never an error: it is a counted drop or skip.

use std::path::PathBuf;

/// What can stop a dedup run: I/O, a failed refine-side read or write, bad configuration.
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
    /// A configuration file or value that does not validate, or flags that do not combine.
    #[error("config {path}: {message}")]
    Config {
        /// The config file (or `<default>` / `<flags>`).
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A work file of an earlier step that is missing or malformed (run the step first).
    #[error("{path}: {message}")]
    WorkFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing documents failed (Parquet, Arrow, the run folder).
    #[error(transparent)]
    Dataset(#[from] falconry_refine::Error),
    /// The suffix array library refused its input.
    #[error("suffix array: {0}")]
    SuffixArray(String),
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

/// Result with the dedup [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// An atomic write's failure, as the run folder's (an I/O error naming the file).
impl From<falconry_shards::Error> for Error {
    fn from(e: falconry_shards::Error) -> Self {
        Error::Dataset(e.into())
    }
}
