//! Errors of the tokenize crate.

use std::path::PathBuf;

/// What can stop tokenizing, training, or publishing.
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
    /// A tokenizer that does not load, encode, decode or train.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The `tokenizer.json` (or `<memory>`).
        path: PathBuf,
        /// What `tokenizers` said.
        message: String,
    },
    /// Token shards: a `meta.json` or shard file that does not read, ids that do not fit the
    /// dtype.
    #[error(transparent)]
    Shards(#[from] falconry_shards::Error),
    /// A configuration value that does not validate; the message names the key.
    #[error("config: {0}")]
    Config(String),
    /// Dataset I/O from the refine crate.
    #[error(transparent)]
    Dataset(#[from] falconry_refine::Error),
    /// JSON that does not parse or serialize.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
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

/// Result with the tokenize [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
