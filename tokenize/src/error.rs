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
    /// Ids do not fit the shard dtype.
    #[error(
        "vocabulary of {vocab_size} ids does not fit {dtype} token shards (at most {max} ids); \
         choose dtype uint32 (`--dtype uint32`)"
    )]
    VocabTooLarge {
        /// Ids in the tokenizer.
        vocab_size: usize,
        /// The dtype asked for.
        dtype: &'static str,
        /// The most ids the dtype holds.
        max: usize,
    },
    /// A token shard folder that is inconsistent with its `meta.json`.
    #[error("token shards {path}: {message}")]
    Shards {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
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
