//! `falconry tokenize train`: a fresh byte-level BPE with Falcon's pre-tokenizer.
//!
//! The model, pre-tokenizer (the four steps of [`crate::pretokenize`]), decoder and special
//! tokens (`>>TITLE<<` … `>>MIDDLE<<`, `<|endoftext|>` = id 11) are Falcon's; the merges are
//! learned by the `tokenizers` crate's `BpeTrainer` on a sample of the corpus. The sample is
//! bounded: documents are read in sorted file order, each kept when a seeded hash of its id
//! falls below `sample_fraction`, until `max_bytes` of text; the trainer streams them and
//! holds only word counts. The result is a `tokenizer.json` that Python `tokenizers` loads, and
//! that takes falconry's fast encoding path.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use falconry_refine::folder::write_atomic;
use serde::{Deserialize, Serialize};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::punctuation::Punctuation;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::corpus::{for_each_document, id_fraction, list_inputs};
use crate::{Error, Result, Tokenizer};

/// Falcon's special tokens, in id order: `<|endoftext|>` is 11.
pub const FALCON_SPECIAL_TOKENS: [&str; 12] = [
    ">>TITLE<<",
    ">>ABSTRACT<<",
    ">>INTRODUCTION<<",
    ">>SUMMARY<<",
    ">>COMMENT<<",
    ">>ANSWER<<",
    ">>QUESTION<<",
    ">>DOMAIN<<",
    ">>PREFIX<<",
    ">>SUFFIX<<",
    ">>MIDDLE<<",
    "<|endoftext|>",
];

/// Everything `falconry tokenize train` is told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Input files or folders (Parquet, JSONL).
    pub inputs: Vec<PathBuf>,
    /// Ids in the result, special tokens and the 256 bytes included (Falcon: 65,024).
    pub vocab_size: usize,
    /// Text read at most, in bytes: bounds time and memory.
    pub max_bytes: u64,
    /// Fraction of documents eligible for the sample (by a seeded hash of the id).
    pub sample_fraction: f64,
    /// Seed of the sample.
    pub seed: u64,
    /// A pair must occur this often to be merged.
    pub min_frequency: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            inputs: Vec::new(),
            vocab_size: 65_024,
            max_bytes: 1 << 30,
            sample_fraction: 1.0,
            seed: 0,
            min_frequency: 2,
        }
    }
}

/// What [`train_tokenizer`] reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TrainReport {
    /// Documents in the sample.
    pub documents: u64,
    /// Bytes of text in the sample.
    pub bytes: u64,
    /// Ids in the trained tokenizer (fewer than asked when the sample runs out of pairs).
    pub vocab_size: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Trains a Falcon-style byte-level BPE on a sample of `config.inputs`.
pub fn train_tokenizer(config: &TrainConfig) -> Result<(Tokenizer, TrainReport)> {
    let special = FALCON_SPECIAL_TOKENS.len() + 256;
    if config.vocab_size <= special {
        return Err(Error::Config(format!(
            "--vocab-size must exceed {special} (special tokens + bytes)"
        )));
    }
    if !(config.sample_fraction > 0.0 && config.sample_fraction <= 1.0) {
        return Err(Error::Config(format!(
            "--sample-fraction must be in (0, 1], got {}",
            config.sample_fraction
        )));
    }
    let started = Instant::now();
    let files = list_inputs(&config.inputs)?;
    let mut hf = falcon_style_tokenizer()?;
    let mut trainer = TrainerWrapper::BpeTrainer(
        BpeTrainerBuilder::new()
            .vocab_size(config.vocab_size)
            .min_frequency(config.min_frequency)
            .show_progress(false)
            .special_tokens(
                FALCON_SPECIAL_TOKENS
                    .iter()
                    .map(|t| AddedToken::from(*t, true))
                    .collect(),
            )
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build(),
    );
    // The trainer pulls documents from a channel fed by a reader thread, so the sample is
    // streamed; a read error stops the stream and is reported after training.
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let (tx, rx) = std::sync::mpsc::sync_channel::<String>(1024);
    let (documents, bytes) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let (mut documents, mut bytes) = (0u64, 0u64);
            for file in &files {
                let result = for_each_document(file, |doc| {
                    if bytes >= config.max_bytes {
                        return false;
                    }
                    if doc.content.is_empty()
                        || id_fraction(&doc.id, config.seed) >= config.sample_fraction
                    {
                        return true;
                    }
                    documents += 1;
                    bytes += doc.content.len() as u64;
                    tx.send(doc.content).is_ok()
                });
                if let Err(e) = result {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    break;
                }
                if bytes >= config.max_bytes {
                    break;
                }
            }
            drop(tx);
            (documents, bytes)
        });
        let trained = hf.train(&mut trainer, rx.into_iter()).map(|_| ());
        let counts = reader.join().unwrap_or_default();
        trained.map(|()| counts)
    })
    .map_err(|e| Error::Tokenizer {
        path: "<training>".into(),
        message: e.to_string(),
    })?;
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let tokenizer = Tokenizer::from_hf(hf)?;
    let report = TrainReport {
        documents,
        bytes,
        vocab_size: tokenizer.vocab_size(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((tokenizer, report))
}

/// An untrained tokenizer with Falcon's pre-tokenizer and decoder.
fn falcon_style_tokenizer() -> Result<tokenizers::Tokenizer> {
    let err = |e: tokenizers::Error| Error::Tokenizer {
        path: "<training>".into(),
        message: e.to_string(),
    };
    let digit_triples = Split::new(
        SplitPattern::Regex("[0-9][0-9][0-9]".into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(err)?;
    let pre = Sequence::new(vec![
        Punctuation::new(SplitDelimiterBehavior::Contiguous).into(),
        ByteLevel::new(false, true, true).into(),
        Digits::new(false).into(),
        digit_triples.into(),
    ]);
    let mut hf = tokenizers::Tokenizer::new(BPE::default());
    hf.with_pre_tokenizer(Some(pre));
    hf.with_decoder(Some(ByteLevel::new(true, true, true)));
    Ok(hf)
}

/// Writes a tokenizer's `tokenizer.json` atomically (pretty-printed, as HuggingFace does).
pub fn save_tokenizer(tokenizer: &Tokenizer, path: &Path) -> Result<()> {
    let json = tokenizer
        .hf()
        .to_string(true)
        .map_err(|e| Error::Tokenizer {
            path: path.into(),
            message: e.to_string(),
        })?;
    Ok(write_atomic(path, json.as_bytes())?)
}
