//! The tokenize stage of falconry: the Falcon tokenizer, token shards, BPE training.
//!
//! - [`Tokenizer`] loads any HuggingFace `tokenizer.json`; for Falcon's pipeline it encodes
//!   with falconry's own pre-tokenizer and BPE merge loop (ids identical to `tokenizers`).
//! - [`tokenize_corpus`] turns Parquet/JSONL documents into `uint16` token shards with a
//!   `meta.json` ([`shards`], the `falconry-shards` crate, which the trainer reads them with).
//! - [`train_tokenizer`] trains a byte-level BPE with Falcon's pre-tokenizer on a bounded
//!   sample of a corpus.
//!
//! ```no_run
//! use falconry_tokenize::{Split, TokenShards, Tokenizer};
//! # fn main() -> falconry_tokenize::Result<()> {
//! let falcon = Tokenizer::from_file("tokenizer.json".as_ref())?;
//! assert_eq!(falcon.encode("Hello world")?, vec![9856, 1079]);
//! let shards = TokenShards::open("run/tokenize".as_ref())?;
//! for info in shards.shards(Split::Train) {
//!     let tokens = shards.load(info)?;
//!     println!("{}: {} tokens, first {}", info.file, tokens.len(), tokens.get(0));
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod bpe;
mod chars;
pub mod corpus;
mod error;
mod export;
mod pretokenize;
mod publish;
mod tokenize_corpus;
mod tokenizer;
mod train;

/// The token shard format, shared with the trainer: the `falconry-shards` crate.
pub use falconry_shards as shards;

pub use error::{Error, Result};
pub use export::{export_shards, ExportFormat, ExportReport};
pub use publish::{publish_dataset, PublishConfig, PublishReport};
pub use shards::{Dtype, ShardInfo, ShardTokens, Split, TokenMeta, TokenShards};
pub use tokenize_corpus::{tokenize_corpus, TaskPart, TokenizeConfig, TokenizeReport};
pub use tokenizer::{byte_alphabet, Tokenizer};
pub use train::{save_tokenizer, train_tokenizer, TrainConfig, TrainReport, FALCON_SPECIAL_TOKENS};
