//! Word and label dictionary with subword hashing and tokenization.
//!
//! The dictionary is the second section of the fastText binary format,
//! following the model args header. It contains the word list, label list,
//! and metadata needed for subword hashing.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;

use crate::args::ModelArgs;
use crate::error::{Error, Result};
use crate::io::BinaryReader;

const EOS: &str = "</s>";

/// [falconry patch 4] A multiply-rotate hasher (rustc's FxHash) for the dictionary's maps:
/// SipHash, the default, was a tenth of prediction time, and these keys come from the model or
/// from the text being classified, not from an adversary.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
   fn finish(&self) -> u64 {
      self.0
   }
   fn write(&mut self, bytes: &[u8]) {
      let mut chunks = bytes.chunks_exact(8);
      for c in &mut chunks {
         self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
      }
      for &b in chunks.remainder() {
         self.add(u64::from(b));
      }
   }
   fn write_u8(&mut self, n: u8) {
      self.add(u64::from(n));
   }
   fn write_u32(&mut self, n: u32) {
      self.add(u64::from(n));
   }
   fn write_i32(&mut self, n: i32) {
      self.add(n as u32 as u64);
   }
   fn write_u64(&mut self, n: u64) {
      self.add(n);
   }
   fn write_usize(&mut self, n: usize) {
      self.add(n as u64);
   }
}

impl FxHasher {
   fn add(&mut self, word: u64) {
      self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
   }
}

type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// [falconry patch 4] What one distinct token of a line contributes, kept so that its repeats
/// are neither looked up nor split into character n-grams again.
#[derive(Clone, Copy)]
enum Token {
   /// A word: its FNV hash and its group in `Line::groups`.
   Word(u32, usize),
   /// A known label.
   Label(i32),
   /// An unknown `__label__` token: ignored.
   Ignored,
}
const LABEL_PREFIX: &str = "__label__";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryType {
   Word = 0,
   Label = 1,
}

#[derive(Debug)]
struct Entry {
   word: String,
   count: i64,
   entry_type: EntryType,
   subwords: Vec<i32>,
}

/// [falconry patch 7] The input rows of a line, grouped: a distinct word's rows once, with
/// the number of times it occurs (then its word n-grams' rows, once). The hidden vector sums
/// each group once and adds the sum per occurrence, instead of every row per occurrence;
/// float sums are associated differently from C++'s row-by-row order (within 1e-5 of Python
/// fastText on falconry's parity fixture).
#[derive(Debug, Default)]
pub(crate) struct Line {
   /// The rows, group after group.
   pub rows: Vec<i32>,
   /// Per group: where its rows end in `rows`, and how many times it counts.
   pub groups: Vec<(usize, u32)>,
}

/// The word/label dictionary loaded from a fastText model.
///
/// Handles tokenization, word lookup, subword n-gram hashing, and word
/// n-gram hashing. The hash function is FNV-1a (32-bit) and must be
/// bit-exact with the C++ implementation.
#[derive(Debug)]
pub(crate) struct Dictionary {
   args: ModelArgs,
   words: Vec<Entry>,
   word2int: FxHashMap<String, usize>,
   pub nwords: i32,
   #[allow(dead_code)]
   pub nlabels: i32,
   pruneidx_size: i64,
   pruneidx: FxHashMap<i32, i32>,
   /// [falconry patch 5] One bit per bucket, set for those in `pruneidx`. Most character n-grams
   /// of a text fall in pruned buckets (lid.176.ftz keeps 42,765 of 2,000,000): the bit answers
   /// them without a lookup.
   kept_buckets: Vec<u64>,
}

impl Dictionary {
   /// Load a dictionary from the binary format.
   pub fn load<R: Read>(reader: &mut BinaryReader<R>, args: &ModelArgs) -> Result<Self> {
      let size = reader.read_i32_as_usize()?;
      let nwords = reader.read_i32()?;
      let nlabels = reader.read_i32()?;
      let _ntokens = reader.read_i64()?;
      let pruneidx_size = reader.read_i64()?;

      let mut words = Vec::with_capacity(size);
      let mut word2int = FxHashMap::with_capacity_and_hasher(size, Default::default());

      for i in 0..size {
         let word = reader.read_string()?;
         let count = reader.read_i64()?;
         let entry_type = match reader.read_u8()? {
            0 => EntryType::Word,
            1 => EntryType::Label,
            t => return Err(Error::InvalidModel(format!("unknown entry type: {t}"))),
         };

         word2int.insert(word.clone(), i);
         words.push(Entry {
            word,
            count,
            entry_type,
            subwords: Vec::new(),
         });
      }

      let mut pruneidx = FxHashMap::default();
      let mut kept_buckets = Vec::new();
      for _ in 0..pruneidx_size.max(0) {
         let first = reader.read_i32()?;
         let second = reader.read_i32()?;
         pruneidx.insert(first, second);
         let (word, bit) = (first as u32 as usize / 64, first as u32 % 64);
         if kept_buckets.len() <= word {
            kept_buckets.resize(word + 1, 0);
         }
         kept_buckets[word] |= 1 << bit;
      }

      let mut dict = Self {
         args: args.clone(),
         words,
         word2int,
         nwords,
         nlabels,
         pruneidx_size,
         pruneidx,
         kept_buckets,
      };

      dict.init_ngrams();

      Ok(dict)
   }

   /// FNV-1a 32-bit hash, bit-exact with the C++ fastText implementation.
   ///
   /// The C++ version sign-extends each byte before XOR:
   /// `h = h ^ uint32_t(int8_t(c))`. We replicate this via `byte as i8 as
   /// u32`.
   pub fn hash(word: &[u8]) -> u32 {
      let mut h: u32 = 2_166_136_261;
      for &byte in word {
         h ^= (byte as i8) as u32;
         h = h.wrapping_mul(16_777_619);
      }
      h
   }

   /// Tokenize input text into word IDs and subword hashes for prediction.
   ///
   /// Returns `(words, labels)` where `words` contains word IDs and
   /// subword hash indices, and `labels` contains any label IDs found in
   /// the input.
   pub fn get_line(&self, text: &str) -> (Line, Vec<i32>) {
      // [falconry patch 4] Sized for a line of prose (a distinct token per 12 bytes, 10 rows a
      // token), so that a document is not copied through growing vectors.
      let mut line = Line {
         rows: Vec::with_capacity(text.len()),
         groups: Vec::with_capacity(text.len() / 12),
      };
      let mut labels = Vec::new();
      let mut word_hashes = Vec::with_capacity(text.len() / 6);

      // [falconry patch 1] fastText's readWord splits on these seven bytes only; `split_whitespace`
      // also split on U+00A0, U+3000, ... which fastText keeps inside words.
      let tokens = text
         .split([' ', '\n', '\r', '\t', '\x0b', '\x0c', '\0'])
         .filter(|t| !t.is_empty());
      // [falconry patch 7] A word's rows are kept once, with its number of occurrences.
      let mut seen: FxHashMap<&str, Token> =
         FxHashMap::with_capacity_and_hasher(text.len() / 16, Default::default());
      for token in tokens.chain(std::iter::once(EOS)) {
         let known = match seen.entry(token) {
            Slot::Occupied(e) => {
               if let Token::Word(_, group) = *e.get() {
                  line.groups[group].1 += 1;
               }
               *e.get()
            }
            Slot::Vacant(e) => *e.insert(self.token(token, &mut line)),
         };
         match known {
            Token::Word(h, _) => word_hashes.push(h),
            Token::Label(l) => labels.push(l),
            Token::Ignored => {}
         }
      }

      let before = line.rows.len();
      self.add_word_ngrams(&mut line.rows, &word_hashes, self.args.word_ngrams);
      if line.rows.len() > before {
         line.groups.push((line.rows.len(), 1));
      }
      (line, labels)
   }

   /// Looks `token` up, appends its input rows to `line` as a new group when it is a word, and
   /// says what it is.
   fn token(&self, token: &str, line: &mut Line) -> Token {
      let wid = self.get_id(token);
      let entry_type = if wid < 0 {
         Self::get_type_by_token(token)
      } else {
         self.words[wid as usize].entry_type
      };
      match entry_type {
         EntryType::Word => {
            self.add_subwords(&mut line.rows, token, wid);
            line.groups.push((line.rows.len(), 1));
            Token::Word(Self::hash(token.as_bytes()), line.groups.len() - 1)
         }
         EntryType::Label if wid >= 0 => Token::Label(wid - self.nwords),
         EntryType::Label => Token::Ignored,
      }
   }

   /// Get the label string for a label index.
   pub fn get_label(&self, lid: i32) -> &str {
      &self.words[(lid + self.nwords) as usize].word
   }

   /// Get the label counts in dictionary order (descending by count).
   ///
   /// Used to build the Huffman tree for hierarchical softmax prediction.
   pub fn get_label_counts(&self) -> Vec<i64> {
      self
         .words
         .iter()
         .filter(|e| e.entry_type == EntryType::Label)
         .map(|e| e.count)
         .collect()
   }

   /// Look up a word in the dictionary, returning its index or -1 if not
   /// found.
   fn get_id(&self, word: &str) -> i32 {
      self.word2int.get(word).map(|&id| id as i32).unwrap_or(-1)
   }

   /// Determine the entry type of a token based on the label prefix.
   fn get_type_by_token(token: &str) -> EntryType {
      if token.starts_with(LABEL_PREFIX) {
         EntryType::Label
      } else {
         EntryType::Word
      }
   }

   /// Initialize precomputed subword n-grams for all dictionary entries.
   fn init_ngrams(&mut self) {
      for i in 0..self.words.len() {
         self.words[i].subwords.clear();
         self.words[i].subwords.push(i as i32);
         if self.words[i].word != EOS {
            let mut subwords = Vec::new();
            self.compute_sub_words_with_markers(self.words[i].word.as_bytes(), &mut subwords);
            self.words[i].subwords.extend(subwords);
         }
      }
   }

   /// Compute character n-gram hashes for a word (with BOW/EOW markers).
   ///
   /// Iterates over UTF-8 character boundaries and hashes n-grams
   /// incrementally using the FNV-1a property: the hash of a prefix
   /// can be extended one byte at a time. This avoids allocating a
   /// temporary byte vector for each n-gram.
   fn compute_sub_words(&self, word: &[u8], ngrams: &mut Vec<i32>) {
      if self.args.maxn <= 0 {
         return;
      }

      let minn = self.args.minn as usize;
      let maxn = self.args.maxn as usize;

      for i in 0..word.len() {
         // Skip UTF-8 continuation bytes
         if (word[i] & 0xC0) == 0x80 {
            continue;
         }

         let mut h: u32 = 2_166_136_261; // FNV offset basis
         let mut j = i;
         let mut n: usize = 1;

         while j < word.len() && n <= maxn {
            // Hash the next byte
            h ^= (word[j] as i8) as u32;
            h = h.wrapping_mul(16_777_619);
            j += 1;

            // Consume remaining bytes of the current UTF-8 character
            while j < word.len() && (word[j] & 0xC0) == 0x80 {
               h ^= (word[j] as i8) as u32;
               h = h.wrapping_mul(16_777_619);
               j += 1;
            }

            // Exclude single-char n-grams that are BOW or EOW markers
            if n >= minn && !(n == 1 && (i == 0 || j == word.len())) {
               self.push_hash(ngrams, (h % self.args.bucket as u32) as i32);
            }

            n += 1;
         }
      }
   }

   /// Push a hashed subword index, respecting pruning state.
   ///
   /// - `pruneidx_size < 0` (e.g., -1): no pruning, push directly
   /// - `pruneidx_size == 0`: all subwords pruned, push nothing
   /// - `pruneidx_size > 0`: remap through `pruneidx`, skip if not found
   fn push_hash(&self, hashes: &mut Vec<i32>, id: i32) {
      if self.pruneidx_size == 0 || id < 0 {
         return;
      }
      if self.pruneidx_size > 0 {
         let (word, bit) = (id as usize / 64, id as u32 % 64);
         let kept = self.kept_buckets.get(word).is_some_and(|w| w >> bit & 1 == 1);
         if let Some(&remapped) = kept.then(|| self.pruneidx.get(&id)).flatten() {
            hashes.push(self.nwords + remapped);
         }
         return;
      }
      // pruneidx_size < 0: no pruning, push raw hash index
      hashes.push(self.nwords + id);
   }

   /// Add word IDs and/or subword hashes for a token to the line.
   fn add_subwords(&self, line: &mut Vec<i32>, token: &str, wid: i32) {
      if wid < 0 {
         // Out of vocabulary: compute subwords on the fly
         if token != EOS {
            self.compute_sub_words_with_markers(token.as_bytes(), line);
         }
      } else if self.args.maxn <= 0 {
         // In vocabulary without subwords
         line.push(wid);
      } else {
         // In vocabulary with precomputed subwords
         line.extend_from_slice(&self.words[wid as usize].subwords);
      }
   }

   /// Compute subwords for a token by prepending "<" and appending ">"
   /// without allocating a new string. Uses a small stack buffer for
   /// tokens up to 256 bytes.
   fn compute_sub_words_with_markers(&self, token: &[u8], ngrams: &mut Vec<i32>) {
      let total_len = token.len() + 2; // "<" + token + ">"
      if total_len <= 258 {
         // Stack-allocated path for typical tokens
         let mut buf = [0u8; 258];
         buf[0] = b'<';
         buf[1..1 + token.len()].copy_from_slice(token);
         buf[1 + token.len()] = b'>';
         self.compute_sub_words(&buf[..total_len], ngrams);
      } else {
         // Heap-allocated fallback for very long tokens
         let mut word = Vec::with_capacity(total_len);
         word.push(b'<');
         word.extend_from_slice(token);
         word.push(b'>');
         self.compute_sub_words(&word, ngrams);
      }
   }

   /// Add word n-gram hashes (bigrams, trigrams, etc.) to the line.
   ///
   /// Uses 64-bit arithmetic with the word n-gram hash constant
   /// `116049371`, matching the C++ implementation.
   fn add_word_ngrams(&self, line: &mut Vec<i32>, hashes: &[u32], n: i32) {
      // [falconry patch 3] C++ keeps word hashes as int32_t and widens them to uint64_t with
      // sign extension.
      let widen = |h: u32| h as i32 as i64 as u64;
      for i in 0..hashes.len() {
         let mut h = widen(hashes[i]);
         for hash in hashes
            .iter()
            .take(hashes.len().min(i + n as usize))
            .skip(i + 1)
         {
            h = h.wrapping_mul(116_049_371).wrapping_add(widen(*hash));
            self.push_hash(line, (h % (self.args.bucket as u64)) as i32);
         }
      }
   }
}

#[cfg(test)]
mod tests {
   use super::*;

   #[test]
   fn hash_matches_cpp_fnv1a() {
      // Known FNV-1a values with C++ sign-extension behavior
      assert_eq!(Dictionary::hash(b"hello"), 1_335_831_723);
      assert_eq!(Dictionary::hash(b"world"), 933_488_787);
      assert_eq!(Dictionary::hash(b""), 2_166_136_261); // FNV offset basis
   }

   #[test]
   fn hash_empty_string_is_offset_basis() {
      assert_eq!(Dictionary::hash(b""), 0x811C_9DC5);
   }
}
