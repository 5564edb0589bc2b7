//! falconry's token shards: the files `falconry tokenize` writes and `falconry train` reads,
//! in a crate of their own so that the trainer reads them with the tokenizer's own code
//! without pulling in arrow and parquet.
//!
//! A folder holds `shard-*.bin` files — token ids as little-endian `uint16` (65,024 ids <
//! 2^16, so two bytes a token, as nanoGPT's `prepare.py` argues) or `uint32`, each document
//! followed by the EOS id — and `meta.json` describing them ([`TokenMeta`]). A shard of
//! `falconry tokenize` belongs to one split, `train` or `validation`. With numpy:
//! `numpy.memmap("shard-….bin", dtype=numpy.uint16, mode="r")`.
//!
//! [`TokenShards::open`] reads `meta.json`, checks every file's size against it, and maps
//! shards into memory on demand ([`ShardTokens`]).
#![deny(missing_docs)]

pub mod atomic;

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

/// What can go wrong reading or describing token shards.
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
    /// A `meta.json` that does not parse.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A token shard folder that is inconsistent with its `meta.json`.
    #[error("token shards {path}: {message}")]
    Shards {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong.
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
    /// A dtype name that is not `uint16` or `uint32`.
    #[error("dtype must be uint16 or uint32, got {0:?}")]
    Dtype(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with the shards [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The name of the metadata file in a shard folder.
pub const META_FILE: &str = "meta.json";

/// Width of a token id in the shard files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// Two bytes, little-endian; vocabularies of at most 65,536 ids.
    #[default]
    Uint16,
    /// Four bytes, little-endian.
    Uint32,
}

impl Dtype {
    /// Bytes per token.
    pub fn width(self) -> usize {
        match self {
            Dtype::Uint16 => 2,
            Dtype::Uint32 => 4,
        }
    }

    /// The numpy name (`uint16`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Uint16 => "uint16",
            Dtype::Uint32 => "uint32",
        }
    }

    /// The most distinct ids the type holds.
    pub fn max_vocab(self) -> usize {
        match self {
            Dtype::Uint16 => 1 << 16,
            Dtype::Uint32 => 1 << 32,
        }
    }

    /// Refuses a vocabulary whose ids would not fit.
    pub fn check_vocab(self, vocab_size: usize) -> Result<()> {
        if vocab_size > self.max_vocab() {
            return Err(Error::VocabTooLarge {
                vocab_size,
                dtype: self.name(),
                max: self.max_vocab(),
            });
        }
        Ok(())
    }

    /// Parses `uint16` / `uint32` (also `u16` / `u32`).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "uint16" | "u16" => Ok(Dtype::Uint16),
            "uint32" | "u32" => Ok(Dtype::Uint32),
            other => Err(Error::Dtype(other.to_string())),
        }
    }
}

/// Which part of the corpus a shard holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training documents.
    Train,
    /// Held-out documents for validation loss.
    Validation,
}

/// One shard file as `meta.json` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name inside the folder (`shard-KEY-00000.bin`).
    pub file: String,
    /// Tokens in the file, EOS ids included.
    pub tokens: u64,
    /// Documents in the file.
    #[serde(default)]
    pub documents: u64,
    /// The split it belongs to; `None` in a folder whose shards carry no split (the trainer
    /// then holds out the tail of the tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
}

/// Totals of one split.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitTotals {
    /// Shard files.
    pub shards: u64,
    /// Tokens, EOS ids included.
    pub tokens: u64,
    /// Documents.
    pub documents: u64,
}

/// How documents were divided between the splits, and the totals of each.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// Expected fraction of documents held out for validation (by a seeded hash of the id).
    pub validation_fraction: f64,
    /// Seed of the split hash and of the shuffle.
    pub seed: u64,
    /// Training totals.
    pub train: SplitTotals,
    /// Validation totals.
    pub validation: SplitTotals,
}

/// `meta.json` of a shard folder. `falconry tokenize` writes every field; a reader needs
/// only `vocab_size`, `eos_id` and `shards` (`dtype` defaults to `uint16`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenMeta {
    /// The `tokenizer.json` used, as given on the command line.
    #[serde(default)]
    pub tokenizer: String,
    /// xxh3-64 of the `tokenizer.json` bytes, in hex: tells tokenizers apart when paths lie.
    #[serde(default)]
    pub tokenizer_xxh3: String,
    /// Ids in the tokenizer (65,024 for Falcon).
    pub vocab_size: usize,
    /// Width of the ids in the files.
    #[serde(default)]
    pub dtype: Dtype,
    /// The id written after each document.
    pub eos_id: u32,
    /// Every shard, in file-name order.
    pub shards: Vec<ShardInfo>,
    /// The train/validation division and its totals.
    #[serde(default)]
    pub split: SplitInfo,
    /// Target tokens per shard (a shard closes at the first document end past it).
    #[serde(default)]
    pub shard_tokens: u64,
    /// UTF-8 bytes of document text tokenized.
    #[serde(default)]
    pub text_bytes: u64,
}

impl TokenMeta {
    /// Reads `DIR/meta.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(META_FILE);
        let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&text).map_err(|e| Error::Json { path, source: e })
    }
}

/// A shard folder opened for reading.
#[derive(Debug)]
pub struct TokenShards {
    dir: PathBuf,
    meta: TokenMeta,
}

impl TokenShards {
    /// Opens a folder written by `falconry tokenize`, checking each file's size against
    /// `meta.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        let meta = TokenMeta::load(dir)?;
        for shard in &meta.shards {
            // A shard is a file of this folder: `meta.json` cannot send the reader elsewhere.
            if Path::new(&shard.file).file_name() != Some(shard.file.as_ref()) {
                return Err(Error::Shards {
                    path: dir.join(META_FILE),
                    message: format!("shard {:?} is not a file name", shard.file),
                });
            }
            let path = dir.join(&shard.file);
            let len = std::fs::metadata(&path)
                .map_err(|e| Error::io(&path, e))?
                .len();
            // Checked: a huge count must not wrap around to the size of a short file.
            let expected = shard.tokens.checked_mul(meta.dtype.width() as u64);
            if expected != Some(len) {
                let bytes = expected.map_or("over 2^64".into(), |e| e.to_string());
                return Err(Error::Shards {
                    path,
                    message: format!(
                        "{len} bytes, meta.json says {} tokens ({bytes} bytes)",
                        shard.tokens
                    ),
                });
            }
        }
        Ok(TokenShards {
            dir: dir.into(),
            meta,
        })
    }

    /// The folder's `meta.json`.
    pub fn meta(&self) -> &TokenMeta {
        &self.meta
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The shards of one split, in file-name order.
    pub fn shards(&self, split: Split) -> impl Iterator<Item = &ShardInfo> {
        self.meta
            .shards
            .iter()
            .filter(move |s| s.split == Some(split))
    }

    /// Tokens in one split.
    pub fn tokens(&self, split: Split) -> u64 {
        self.shards(split).map(|s| s.tokens).sum()
    }

    /// Maps one shard into memory.
    pub fn load(&self, shard: &ShardInfo) -> Result<ShardTokens> {
        ShardTokens::open(&self.dir.join(&shard.file), self.meta.dtype)
    }
}

/// The ids of one shard file, memory-mapped.
#[derive(Debug)]
pub struct ShardTokens {
    map: Option<Mmap>,
    dtype: Dtype,
}

impl ShardTokens {
    /// Maps `path`, whose ids are `dtype`.
    pub fn open(path: &Path, dtype: Dtype) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len % dtype.width() as u64 != 0 {
            return Err(Error::Shards {
                path: path.into(),
                message: format!("{len} bytes is not a whole number of {}", dtype.name()),
            });
        }
        // An empty file cannot be mapped on every platform, and holds nothing anyway.
        // SAFETY: shard files are written once (temp + rename) and never modified in place.
        let map = if len == 0 {
            None
        } else {
            Some(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?)
        };
        Ok(ShardTokens { map, dtype })
    }

    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.bytes().len() / self.dtype.width()
    }

    /// Whether the shard holds no token.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id at `i`; panics when `i >= len()`, like slice indexing.
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        let b = self.bytes();
        match self.dtype {
            Dtype::Uint16 => u16::from_le_bytes([b[2 * i], b[2 * i + 1]]) as u32,
            Dtype::Uint32 => {
                u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
            }
        }
    }

    /// Appends ids `start..start + len` to `out` (a training window is `len = seq_len + 1`).
    pub fn read_into(&self, start: usize, len: usize, out: &mut Vec<u32>) {
        let w = self.dtype.width();
        let bytes = &self.bytes()[start * w..(start + len) * w];
        match self.dtype {
            Dtype::Uint16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32),
            ),
            Dtype::Uint32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
        }
    }

    /// Every id, in order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// All ids as `u32`.
    pub fn to_vec(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.len());
        self.read_into(0, self.len(), &mut out);
        out
    }
}

/// Little-endian bytes of `ids` in `dtype`; ids must fit (checked by the caller's vocabulary).
pub fn encode_ids(ids: &[u32], dtype: Dtype, out: &mut Vec<u8>) {
    match dtype {
        Dtype::Uint16 => out.extend(ids.iter().flat_map(|&id| (id as u16).to_le_bytes())),
        Dtype::Uint32 => out.extend(ids.iter().flat_map(|&id| id.to_le_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_over_u16_is_refused() {
        assert!(Dtype::Uint16.check_vocab(65_024).is_ok());
        assert!(Dtype::Uint16.check_vocab(65_536).is_ok());
        let err = Dtype::Uint16.check_vocab(65_537).unwrap_err().to_string();
        assert!(err.contains("65537") && err.contains("uint32"), "{err}");
        assert!(Dtype::Uint32.check_vocab(100_000).is_ok());
    }

    fn folder_with(meta: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), meta).unwrap();
        std::fs::write(dir.path().join("shard-0.bin"), b"").unwrap();
        dir
    }

    /// Fuzzing (issue 12): `tokens` times the id width wrapped around, so a `meta.json`
    /// claiming 2^63 tokens passed the size check on an empty file.
    #[test]
    fn token_count_past_u64_bytes_is_refused() {
        let dir = folder_with(
            r#"{"vocab_size":65024,"eos_id":11,"shards":[{"file":"shard-0.bin","tokens":9223372036854775808}]}"#,
        );
        let err = TokenShards::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("9223372036854775808 tokens"), "{err}");
    }

    /// A shard is a file of the folder: `meta.json` naming a path elsewhere is refused.
    #[test]
    fn shard_outside_the_folder_is_refused() {
        for file in [
            "../shard-0.bin",
            "/etc/hostname",
            "a/../../shard-0.bin",
            "",
            ".",
        ] {
            let meta = format!(
                r#"{{"vocab_size":65024,"eos_id":11,"shards":[{{"file":{file:?},"tokens":0}}]}}"#
            );
            let err = TokenShards::open(folder_with(&meta).path())
                .unwrap_err()
                .to_string();
            assert!(err.contains("not a file name"), "{file}: {err}");
        }
    }

    #[test]
    fn shard_round_trip_both_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        for dtype in [Dtype::Uint16, Dtype::Uint32] {
            let ids = [0u32, 11, 65_023, 300, 11];
            let mut bytes = Vec::new();
            encode_ids(&ids, dtype, &mut bytes);
            assert_eq!(bytes.len(), ids.len() * dtype.width());
            let path = dir.path().join(format!("{}.bin", dtype.name()));
            std::fs::write(&path, &bytes).unwrap();
            let t = ShardTokens::open(&path, dtype).unwrap();
            assert_eq!(t.to_vec(), ids);
            assert_eq!(t.get(2), 65_023);
            let mut w = Vec::new();
            t.read_into(1, 3, &mut w);
            assert_eq!(w, [11, 65_023, 300]);
        }
        let empty = dir.path().join("empty.bin");
        std::fs::write(&empty, b"").unwrap();
        assert!(ShardTokens::open(&empty, Dtype::Uint16).unwrap().is_empty());
        std::fs::write(&empty, b"abc").unwrap();
        assert!(ShardTokens::open(&empty, Dtype::Uint16).is_err());
    }
}
