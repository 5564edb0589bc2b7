//! [`Tokenizer`]: any HuggingFace `tokenizer.json`, with a fast encoder for Falcon's pipeline.
//!
//! Every file loads into the `tokenizers` crate (the reference; it also decodes). When the
//! file is Falcon's kind — no normalizer, the pre-tokenizer sequence of
//! [`crate::pretokenize`], a byte-level BPE without dropout, prefixes or byte fallback, plain
//! added tokens — encoding takes the fast path: added tokens matched first (leftmost-longest,
//! as `tokenizers` does), [`crate::pretokenize`] over bytes, and [`BpeModel`] with a
//! per-thread pre-token cache. Ids are identical to the reference (tests check the llama.cpp
//! and swift-transformers vectors and a fixture of real documents against both).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde_json::Value;

use crate::bpe::{BpeModel, WordCache, MISSING};
use crate::pretokenize::pretokenize;
use crate::{Error, Result};

/// A loaded tokenizer. Immutable and `Send + Sync`: share one across rayon threads.
pub struct Tokenizer {
    hf: tokenizers::Tokenizer,
    fast: std::result::Result<FastEncoder, &'static str>,
    path: PathBuf,
}

struct FastEncoder {
    /// Distinguishes this encoder's per-thread caches from other instances'.
    uid: u64,
    model: BpeModel,
    /// Added tokens and their ids; `None` when there are none.
    added: Option<(AhoCorasick, Vec<u32>)>,
}

/// Tokenizers whose caches one thread keeps at once.
const MAX_CACHES_PER_THREAD: usize = 4;

static NEXT_UID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static CACHES: RefCell<Vec<(u64, WordCache)>> = const { RefCell::new(Vec::new()) };
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("vocab_size", &self.vocab_size())
            .field("fast", &self.is_fast())
            .finish()
    }
}

impl Tokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&json, path)
    }

    /// Loads `tokenizer.json` text; `origin` names it in errors.
    pub fn from_json(json: &str, origin: &Path) -> Result<Self> {
        let err = |message: String| Error::Tokenizer {
            path: origin.into(),
            message,
        };
        let hf =
            tokenizers::Tokenizer::from_bytes(json.as_bytes()).map_err(|e| err(e.to_string()))?;
        let value: Value = serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
        let fast = FastEncoder::from_json(&value);
        Ok(Tokenizer {
            hf,
            fast,
            path: origin.into(),
        })
    }

    /// Wraps a tokenizer built in memory (as training returns it).
    pub fn from_hf(hf: tokenizers::Tokenizer) -> Result<Self> {
        let path = PathBuf::from("<memory>");
        let json = hf.to_string(false).map_err(|e| Error::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Self::from_json(&json, &path)
    }

    /// Where the tokenizer was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether encoding takes falconry's fast path (else the `tokenizers` crate encodes).
    pub fn is_fast(&self) -> bool {
        self.fast.is_ok()
    }

    /// Why the fast path is not taken, when it is not.
    pub fn slow_reason(&self) -> Option<&'static str> {
        self.fast.as_ref().err().copied()
    }

    /// Number of ids, added tokens included (65,024 for Falcon).
    pub fn vocab_size(&self) -> usize {
        self.hf.get_vocab_size(true)
    }

    /// The id of a token string such as `<|endoftext|>`.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.hf.token_to_id(token)
    }

    /// The end-of-text id: `<|endoftext|>`, else `</s>`, else `<eos>`.
    pub fn eos_id(&self) -> Option<u32> {
        ["<|endoftext|>", "</s>", "<eos>"]
            .iter()
            .find_map(|t| self.token_to_id(t))
    }

    /// The ids of `text` without post-processing (`add_special_tokens=False`); added tokens
    /// written in the text are recognised, as the reference does.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3);
        self.encode_into(text, &mut out)?;
        Ok(out)
    }

    /// Appends the ids of `text` to `out`.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        match &self.fast {
            Ok(fast) => {
                fast.encode_into(text, out);
                Ok(())
            }
            Err(_) => {
                out.extend(self.reference_encode(text)?);
                Ok(())
            }
        }
    }

    /// The ids the `tokenizers` crate gives, bypassing the fast path.
    pub fn reference_encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .hf
            .encode_fast(text, false)
            .map_err(|e| self.error(e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids` (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.hf.decode(ids, false).map_err(|e| self.error(e))
    }

    /// The `tokenizers` crate's tokenizer.
    pub fn hf(&self) -> &tokenizers::Tokenizer {
        &self.hf
    }

    fn error(&self, e: tokenizers::Error) -> Error {
        Error::Tokenizer {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}

impl FastEncoder {
    fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        CACHES.with(|caches| {
            let mut caches = caches.borrow_mut();
            let at = match caches.iter().position(|(uid, _)| *uid == self.uid) {
                Some(at) => at,
                None => {
                    // A thread keeps the caches of its few latest tokenizers: caches of
                    // dropped ones must not pile up in a long-lived thread.
                    if caches.len() == MAX_CACHES_PER_THREAD {
                        caches.remove(0);
                    }
                    caches.push((self.uid, WordCache::default()));
                    caches.len() - 1
                }
            };
            let cache = &mut caches[at].1;
            let model = &self.model;
            let mut words = |segment: &str, out: &mut Vec<u32>| {
                pretokenize(segment, &mut |word| cache.encode(model, word, out));
            };
            match &self.added {
                None => words(text, out),
                Some((matcher, ids)) => {
                    let mut start = 0;
                    for m in matcher.find_iter(text) {
                        words(&text[start..m.start()], out);
                        out.push(ids[m.pattern().as_usize()]);
                        start = m.end();
                    }
                    words(&text[start..], out);
                }
            }
        });
    }

    /// The fast encoder for a `tokenizer.json`, or why its pipeline is not Falcon's kind.
    fn from_json(t: &Value) -> std::result::Result<Self, &'static str> {
        if !t["normalizer"].is_null() {
            return Err("has a normalizer");
        }
        if !is_falcon_pretokenizer(&t["pre_tokenizer"]) {
            return Err("pre-tokenizer is not Falcon's sequence");
        }
        let post = &t["post_processor"];
        if !(post.is_null() || post["type"] == "ByteLevel") {
            return Err("post-processor adds tokens");
        }
        let model = &t["model"];
        let absent = |key: &str| model[key].is_null();
        if model["type"] != "BPE" {
            return Err("model is not BPE");
        }
        if !(absent("dropout") || model["dropout"].as_f64() == Some(0.0))
            || !absent("continuing_subword_prefix")
            || !absent("end_of_word_suffix")
            || model["byte_fallback"].as_bool().unwrap_or(false)
        {
            return Err("BPE uses dropout, subword prefixes/suffixes or byte fallback");
        }
        let vocab: HashMap<&str, u32> = model["vocab"]
            .as_object()
            .ok_or("no vocab")?
            .iter()
            .map(|(k, v)| Some((k.as_str(), u32::try_from(v.as_u64()?).ok()?)))
            .collect::<Option<_>>()
            .ok_or("vocab ids are not integers")?;
        let alphabet = byte_alphabet();
        let mut byte_ids = [MISSING; 256];
        for (b, c) in alphabet.iter().enumerate() {
            match vocab.get(c.to_string().as_str()) {
                Some(&id) => byte_ids[b] = id,
                // Dropped, as `tokenizers` does without an unknown token.
                None if absent("unk_token") => {}
                None => return Err("vocab lacks a byte-level character and has an unknown token"),
            }
        }
        let mut merges = Vec::new();
        for m in model["merges"].as_array().ok_or("no merges")? {
            let (a, b) = match m {
                Value::String(s) => s.split_once(' ').ok_or("merge without a space")?,
                Value::Array(p) if p.len() == 2 => (
                    p[0].as_str().ok_or("merge is not text")?,
                    p[1].as_str().ok_or("merge is not text")?,
                ),
                _ => return Err("merge is neither \"a b\" nor [a, b]"),
            };
            let id = |s: &str| {
                vocab
                    .get(s)
                    .copied()
                    .ok_or("merge of a token outside the vocab")
            };
            merges.push((id(a)?, id(b)?, id(&format!("{a}{b}"))?));
        }
        let whole_words = model["ignore_merges"].as_bool().unwrap_or(false).then(|| {
            let inverse: HashMap<char, u8> = alphabet
                .iter()
                .enumerate()
                .map(|(b, &c)| (c, b as u8))
                .collect();
            vocab
                .iter()
                .filter_map(|(k, &id)| {
                    Some((
                        k.chars()
                            .map(|c| inverse.get(&c).copied())
                            .collect::<Option<Vec<u8>>>()?,
                        id,
                    ))
                })
                .collect()
        });
        let added = added_tokens(&t["added_tokens"])
            .ok_or("added tokens strip, match single words or mix normalization")?;
        Ok(FastEncoder {
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            model: BpeModel::new(byte_ids, merges, whole_words),
            added,
        })
    }
}

/// A leftmost-longest matcher over the added tokens, when they behave as plain strings
/// (no `single_word`/`lstrip`/`rstrip`, one `normalized` setting for all). `Some(None)`: none.
#[allow(clippy::option_option)]
fn added_tokens(list: &Value) -> Option<Option<(AhoCorasick, Vec<u32>)>> {
    let list = match list {
        Value::Null => return Some(None),
        v => v.as_array()?,
    };
    if list.is_empty() {
        return Some(None);
    }
    let flag = |t: &Value, k: &str| t[k].as_bool().unwrap_or(false);
    let normalized = flag(&list[0], "normalized");
    let mut contents = Vec::new();
    let mut ids = Vec::new();
    for t in list {
        if flag(t, "single_word")
            || flag(t, "lstrip")
            || flag(t, "rstrip")
            || flag(t, "normalized") != normalized
        {
            return None;
        }
        contents.push(t["content"].as_str()?.to_owned());
        ids.push(u32::try_from(t["id"].as_u64()?).ok()?);
    }
    let matcher = AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&contents)
        .ok()?;
    Some(Some((matcher, ids)))
}

/// Whether a `pre_tokenizer` is Falcon's four-step sequence.
fn is_falcon_pretokenizer(p: &Value) -> bool {
    let steps = match p["pretokenizers"].as_array() {
        Some(s) if p["type"] == "Sequence" && s.len() == 4 => s,
        _ => return false,
    };
    steps[0]["type"] == "Punctuation"
        && steps[0]["behavior"] == "Contiguous"
        && steps[1]["type"] == "ByteLevel"
        && steps[1]["add_prefix_space"] == false
        && steps[1]["use_regex"] != false
        && steps[2]["type"] == "Digits"
        && steps[2]["individual_digits"] == false
        && steps[3]["type"] == "Split"
        && steps[3]["pattern"]["Regex"] == "[0-9][0-9][0-9]"
        && steps[3]["behavior"] == "Isolated"
        && steps[3]["invert"] == false
}

/// GPT-2's byte → character table: printable Latin-1 bytes stand for themselves, the other
/// 68 bytes for U+0100 onwards, in byte order.
pub fn byte_alphabet() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            b as char
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('\0')
        };
    }
    table
}
