//! Token shards in, random training windows out.
//!
//! The tokenize stage writes `DIR/shard-*.bin` (little-endian u16: 65,024 ids < 2^16) and
//! `DIR/meta.json`, documents separated by EOS; both are read here by the `falconry-shards`
//! crate, tokenize's own reader of its format (without arrow).
//!
//! Splits: `--data DIR` holding `train/` and `validation/` (or `val/`) folders reads each as its
//! split; in one shard folder whose shards name their `split` (as `falconry tokenize` writes
//! them), the shards of each split; in any other shard folder, the last
//! [`VALIDATION_FRACTION`] of the tokens are held out for validation.
//!
//! Windows of `seq_len + 1` tokens start anywhere (nanoGPT's `get_batch`; documents may
//! straddle a window, EOS marks the seam). The start positions of step `s` depend only on the
//! seed and `s`, so a resumed run draws the same batches as an uninterrupted one.

use std::path::{Path, PathBuf};

use falconry_shards::{Dtype, ShardInfo, Split, TokenShards};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Error;

/// Fraction of a single shard folder held out for validation.
pub const VALIDATION_FRACTION: f64 = 0.05;

/// A shard folder's (or an atomic write's) error as the trainer's, naming the file.
pub(crate) fn shard_error(dir: &Path, e: falconry_shards::Error) -> Error {
    match e {
        falconry_shards::Error::Io { path, source } => Error::Io { path, source },
        falconry_shards::Error::Json { path, source } => Error::Data {
            path,
            message: source.to_string(),
        },
        falconry_shards::Error::Shards { path, message } => Error::Data { path, message },
        other => Error::Data {
            path: dir.into(),
            message: other.to_string(),
        },
    }
}

/// Opens a shard folder whose ids are 16-bit, the width the trainer holds them in.
fn open_shards(dir: &Path) -> Result<TokenShards, Error> {
    let shards = TokenShards::open(dir).map_err(|e| shard_error(dir, e))?;
    match shards.meta().dtype {
        Dtype::Uint16 => Ok(shards),
        other => Err(Error::Data {
            path: dir.join(falconry_shards::META_FILE),
            message: format!("dtype `{}`, expected `uint16`", other.name()),
        }),
    }
}

/// The largest id of a file of tokens, kept to check the data against a model.
#[derive(Clone, Debug)]
struct MaxId {
    /// The shard file (or the folder, for tokens given in memory).
    path: PathBuf,
    /// Its largest token id.
    max: u16,
}

/// All tokens of one split, concatenated in shard order.
#[derive(Clone, Debug)]
pub struct TokenSplit {
    tokens: Vec<u16>,
    /// Per shard, its largest id (empty for tokens given in memory).
    max_ids: Vec<MaxId>,
}

impl TokenSplit {
    /// Wraps tokens already in memory.
    pub fn new(tokens: Vec<u16>) -> Self {
        Self {
            tokens,
            max_ids: Vec::new(),
        }
    }

    /// Reads every shard listed in `dir/meta.json`, checking each file's length.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let shards = open_shards(dir)?;
        Self::read(&shards, &shards.meta().shards)
    }

    /// Refuses a token id the model has no embedding for, naming the shard that holds it.
    fn check_ids(&self, vocab_size: usize, dir: &Path) -> Result<(), Error> {
        let in_memory = [MaxId {
            path: dir.into(),
            max: self.tokens.iter().copied().max().unwrap_or(0),
        }];
        let shards = if self.max_ids.is_empty() {
            &in_memory[..]
        } else {
            &self.max_ids[..]
        };
        for shard in shards {
            if shard.max as usize >= vocab_size {
                return Err(Error::Data {
                    path: shard.path.clone(),
                    message: format!(
                        "token id {} is out of the model's vocabulary (vocab_size {vocab_size}): \
                         these shards were made with another tokenizer",
                        shard.max
                    ),
                });
            }
        }
        Ok(())
    }

    /// Reads `shards` of the folder `dir` (their lengths checked against its `meta.json`
    /// when it was opened), in order.
    fn read<'a>(
        dir: &TokenShards,
        shards: impl IntoIterator<Item = &'a ShardInfo>,
    ) -> Result<Self, Error> {
        let mut tokens = Vec::new();
        let mut max_ids = Vec::new();
        for shard in shards {
            let ids = dir.load(shard).map_err(|e| shard_error(dir.dir(), e))?;
            let start = tokens.len();
            // u16 ids (open_shards checked the dtype).
            tokens.extend(ids.iter().map(|t| t as u16));
            // One pass over what was just read: the cheap half of checking it against a model.
            let max = tokens[start..].iter().copied().max().unwrap_or(0);
            max_ids.push(MaxId {
                path: dir.dir().join(&shard.file),
                max,
            });
        }
        Ok(Self { tokens, max_ids })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the split has no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The tokens.
    pub fn tokens(&self) -> &[u16] {
        &self.tokens
    }

    /// `batch` windows of `seq_len + 1` tokens at random starts, row-major `[batch, seq_len + 1]`.
    /// The starts depend only on `(seed, key)`.
    pub fn sample(&self, seed: u64, key: u64, batch: usize, seq_len: usize) -> Vec<u16> {
        let span = self.tokens.len() - seq_len; // starts 0..span keep seq_len + 1 tokens in range
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut out = Vec::with_capacity(batch * (seq_len + 1));
        for _ in 0..batch {
            let start = rng.random_range(0..span);
            out.extend_from_slice(&self.tokens[start..start + seq_len + 1]);
        }
        out
    }
}

/// The train and validation splits of a data folder.
#[derive(Clone, Debug)]
pub struct TokenData {
    /// Training tokens.
    pub train: TokenSplit,
    /// Validation tokens.
    pub validation: TokenSplit,
    /// The folder read.
    dir: PathBuf,
    /// Each `meta.json` read and the `vocab_size` it states.
    vocabularies: Vec<(PathBuf, Option<usize>)>,
}

impl TokenData {
    /// The `tokenizer.json` that the (training) shards' `meta.json` names, as it was given to
    /// `falconry tokenize`; `None` when it names none.
    pub fn tokenizer(&self) -> Result<Option<PathBuf>, Error> {
        let (meta, _) = &self.vocabularies[0];
        let dir = meta.parent().unwrap_or(Path::new("."));
        let name = open_shards(dir)?.meta().tokenizer.clone();
        Ok((!name.is_empty()).then(|| PathBuf::from(name)))
    }

    /// Opens `dir` (see the module docs for the two layouts) and checks both splits can hold a
    /// window of `seq_len + 1` tokens.
    pub fn open(dir: &Path, seq_len: usize) -> Result<Self, Error> {
        let sub = |names: &[&str]| {
            names
                .iter()
                .map(|n| dir.join(n))
                .find(|p| p.join("meta.json").is_file())
        };
        let vocab = |s: &TokenShards| {
            (
                s.dir().join(falconry_shards::META_FILE),
                Some(s.meta().vocab_size),
            )
        };
        let data = match (sub(&["train"]), sub(&["validation", "val"])) {
            (Some(train), Some(val)) => {
                let (train, val) = (open_shards(&train)?, open_shards(&val)?);
                Self {
                    train: TokenSplit::read(&train, &train.meta().shards)?,
                    validation: TokenSplit::read(&val, &val.meta().shards)?,
                    dir: dir.into(),
                    vocabularies: vec![vocab(&train), vocab(&val)],
                }
            }
            _ => {
                let shards = open_shards(dir)?;
                let vocabularies = vec![vocab(&shards)];
                if shards.meta().shards.iter().any(|s| s.split.is_some()) {
                    let split = |split| TokenSplit::read(&shards, shards.shards(split));
                    Self {
                        train: split(Split::Train)?,
                        validation: split(Split::Validation)?,
                        dir: dir.into(),
                        vocabularies,
                    }
                } else {
                    let all = TokenSplit::read(&shards, &shards.meta().shards)?;
                    let cut = all.len() - (all.len() as f64 * VALIDATION_FRACTION).ceil() as usize;
                    // The held-out tail keeps the shard maxima: one check covers both halves.
                    Self {
                        train: TokenSplit {
                            tokens: all.tokens[..cut].to_vec(),
                            max_ids: all.max_ids,
                        },
                        validation: TokenSplit::new(all.tokens[cut..].to_vec()),
                        dir: dir.into(),
                        vocabularies,
                    }
                }
            }
        };
        for (name, split) in [("train", &data.train), ("validation", &data.validation)] {
            if split.len() <= seq_len {
                return Err(Error::Data {
                    path: PathBuf::from(dir),
                    message: format!(
                        "the {name} split has {} tokens, fewer than seq_len + 1 = {}",
                        split.len(),
                        seq_len + 1
                    ),
                });
            }
        }
        Ok(data)
    }

    /// Checks the data against the model before the first step, with errors that name the
    /// file at fault: every `meta.json`'s `vocab_size` equals the model's (ids from another
    /// tokenizer would train into the wrong rows, or past the embedding), and every token id
    /// is below it (Burn would panic on the first batch that holds one). Costs one pass over
    /// the tokens, done while reading them.
    pub fn check_model(&self, model: &crate::config::FalconConfig) -> Result<(), Error> {
        let vocab_size = model.vocab_size;
        for (path, meta_vocab) in &self.vocabularies {
            if let Some(v) = meta_vocab.filter(|&v| v != vocab_size) {
                return Err(Error::Data {
                    path: path.clone(),
                    message: format!(
                        "vocab_size {v} (the tokenizer's) differs from the model's vocab_size {vocab_size}: \
                         tokenize with the model's tokenizer, or set the model's vocab_size to {v}"
                    ),
                });
            }
        }
        self.train.check_ids(vocab_size, &self.dir)?;
        self.validation.check_ids(vocab_size, &self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_shards(dir: &Path, tokens: &[u16]) {
        std::fs::create_dir_all(dir).unwrap();
        let (a, b) = tokens.split_at(tokens.len() / 2);
        for (i, part) in [a, b].iter().enumerate() {
            let bytes: Vec<u8> = part.iter().flat_map(|t| t.to_le_bytes()).collect();
            std::fs::write(dir.join(format!("shard-{i:05}.bin")), bytes).unwrap();
        }
        let meta = serde_json::json!({"tokenizer": "falcon", "vocab_size": 65024, "dtype": "uint16", "eos_id": 11,
            "shards": [{"file": "shard-00000.bin", "tokens": a.len(), "documents": 1},
                       {"file": "shard-00001.bin", "tokens": b.len(), "documents": 1}]});
        std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    }

    #[test]
    fn reads_shards_in_order_and_holds_out_the_tail() {
        let tmp = tempfile::tempdir().unwrap();
        let tokens: Vec<u16> = (0..1000).map(|i| (i * 7 % 65024) as u16).collect();
        write_shards(tmp.path(), &tokens);
        let data = TokenData::open(tmp.path(), 16).unwrap();
        assert_eq!(data.train.len(), 950);
        assert_eq!(
            [data.train.tokens(), data.validation.tokens()].concat(),
            tokens
        );
    }

    #[test]
    fn train_and_validation_folders() {
        let tmp = tempfile::tempdir().unwrap();
        write_shards(&tmp.path().join("train"), &[1; 100]);
        write_shards(&tmp.path().join("validation"), &[2; 40]);
        let data = TokenData::open(tmp.path(), 16).unwrap();
        assert_eq!((data.train.len(), data.validation.len()), (100, 40));
        assert!(
            TokenData::open(tmp.path(), 64).is_err(),
            "validation shorter than a window"
        );
    }

    /// The tokenize stage's layout: one folder, each shard marked with its split.
    #[test]
    fn shards_marked_with_their_split() {
        let tmp = tempfile::tempdir().unwrap();
        write_shards(tmp.path(), &[[3u16; 60].as_slice(), &[4; 40]].concat());
        let meta_path = tmp.path().join("meta.json");
        let mut meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
        meta["shards"][0]["split"] = "validation".into();
        meta["shards"][1]["split"] = "train".into();
        std::fs::write(&meta_path, meta.to_string()).unwrap();
        let data = TokenData::open(tmp.path(), 16).unwrap();
        // write_shards cut the tokens in halves: [3; 50] | [3; 10] + [4; 40].
        assert_eq!(data.validation.tokens(), [3u16; 50]);
        assert_eq!(
            data.train.tokens(),
            [[3u16; 10].as_slice(), &[4; 40]].concat()
        );
    }

    /// Issue 11: an id past the model's vocabulary panicked inside Burn (exit 101); a
    /// meta.json of another vocabulary trained without complaint.
    #[test]
    fn data_is_checked_against_the_model_naming_the_file() {
        let model = crate::config::FalconConfig::falcon_tiny();
        let tmp = tempfile::tempdir().unwrap();
        let mut tokens: Vec<u16> = (0..1000).map(|i| (i * 7 % 65024) as u16).collect();
        write_shards(tmp.path(), &tokens);
        TokenData::open(tmp.path(), 16)
            .unwrap()
            .check_model(&model)
            .unwrap();
        // One id out of range, in the second shard.
        tokens[900] = 65_024;
        write_shards(tmp.path(), &tokens);
        let err = TokenData::open(tmp.path(), 16)
            .unwrap()
            .check_model(&model)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("shard-00001.bin")
                && err.contains("token id 65024")
                && err.contains("vocab_size 65024"),
            "{err}"
        );
        // A tokenizer of another vocabulary, even with ids in range.
        tokens[900] = 1;
        write_shards(tmp.path(), &tokens);
        let meta_path = tmp.path().join("meta.json");
        let meta = std::fs::read_to_string(&meta_path)
            .unwrap()
            .replace("65024", "50277");
        std::fs::write(&meta_path, meta).unwrap();
        let err = TokenData::open(tmp.path(), 16)
            .unwrap()
            .check_model(&model)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("meta.json") && err.contains("vocab_size 50277") && err.contains("65024"),
            "{err}"
        );
    }

    #[test]
    fn truncated_shard_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write_shards(tmp.path(), &[5; 100]);
        std::fs::write(tmp.path().join("shard-00001.bin"), [0u8; 10]).unwrap();
        assert!(TokenSplit::open(tmp.path()).is_err());
    }

    #[test]
    fn windows_are_contiguous_and_seeded() {
        let split = TokenSplit::new((0..500).collect());
        let a = split.sample(7, 3, 4, 10);
        assert_eq!(a, split.sample(7, 3, 4, 10));
        assert_ne!(a, split.sample(7, 4, 4, 10));
        for w in a.chunks(11) {
            assert!(w.windows(2).all(|p| p[1] == p[0] + 1), "{w:?}");
        }
    }
}
