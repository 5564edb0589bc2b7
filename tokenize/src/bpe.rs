//! A byte-level BPE model that merges exactly as HuggingFace `tokenizers` does, with a cache.
//!
//! `tokenizers`' `Word::merge_all` pops merges from a heap ordered by (rank, position), skips
//! entries whose pair has since changed (checked by the merged id, as it does), and pushes
//! the pairs a merge creates. [`BpeModel::merge`] is that algorithm over ids. Most pre-tokens
//! repeat, so [`WordCache`] keeps pre-token bytes → ids per thread; a hit skips the merge loop.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// The merges of a BPE vocabulary, over token ids.
#[derive(Debug)]
pub struct BpeModel {
    /// Id of the byte-level character of each byte; [`MISSING`] where the vocabulary lacks
    /// it (Falcon lacks 28, such as control bytes): without an unknown token, `tokenizers`
    /// drops such characters before merging, so their neighbours may merge across them.
    byte_ids: [u32; 256],
    /// (left id, right id) → (rank, merged id).
    merges: FastMap<u64, (u32, u32)>,
    /// Byte-level string → id, consulted first when `ignore_merges` is set.
    whole_words: Option<FastMap<Vec<u8>, u32>>,
}

impl BpeModel {
    /// A model from the ids of the 256 byte characters, the ranked merges as
    /// `(left, right, merged)` ids, and (for `ignore_merges`) the vocabulary keyed by raw bytes.
    pub fn new(
        byte_ids: [u32; 256],
        merges: impl IntoIterator<Item = (u32, u32, u32)>,
        whole_words: Option<HashMap<Vec<u8>, u32>>,
    ) -> Self {
        let mut map = FastMap::default();
        for (rank, (a, b, merged)) in merges.into_iter().enumerate() {
            // A repeated pair keeps its last rank, as `tokenizers` builds its map.
            map.insert(pair(a, b), (rank as u32, merged));
        }
        BpeModel {
            byte_ids,
            merges: map,
            whole_words: whole_words.map(|w| w.into_iter().collect()),
        }
    }

    /// Appends the ids of one pre-token (raw bytes) to `out`.
    pub fn merge(&self, word: &[u8], out: &mut Vec<u32>) {
        if let Some(id) = self.whole_words.as_ref().and_then(|w| w.get(word)) {
            out.push(*id);
            return;
        }
        let mut syms: Vec<Symbol> = word
            .iter()
            .map(|&b| self.byte_ids[b as usize])
            .filter(|&id| id != MISSING)
            .enumerate()
            .map(|(i, id)| Symbol {
                id,
                prev: i as i32 - 1,
                next: i as i32 + 1,
                live: true,
            })
            .collect();
        let n = syms.len();
        if n <= 1 {
            out.extend(syms.first().map(|s| s.id));
            return;
        }
        syms[n - 1].next = -1;
        let mut heap: BinaryHeap<Merge> = syms
            .windows(2)
            .enumerate()
            .filter_map(|(pos, w)| {
                self.merges
                    .get(&pair(w[0].id, w[1].id))
                    .map(|&(rank, new_id)| Merge { rank, pos, new_id })
            })
            .collect();
        while let Some(top) = heap.pop() {
            let cur = syms[top.pos];
            if !cur.live || cur.next < 0 {
                continue;
            }
            let next = cur.next as usize;
            let right = syms[next];
            match self.merges.get(&pair(cur.id, right.id)) {
                Some(&(_, id)) if id == top.new_id => {}
                _ => continue, // an expired entry
            }
            syms[top.pos].id = top.new_id;
            syms[top.pos].next = right.next;
            syms[next].live = false;
            if right.next >= 0 {
                syms[right.next as usize].prev = top.pos as i32;
            }
            let cur = syms[top.pos];
            if cur.prev >= 0 {
                let prev = cur.prev as usize;
                if let Some(&(rank, new_id)) = self.merges.get(&pair(syms[prev].id, cur.id)) {
                    heap.push(Merge {
                        rank,
                        pos: prev,
                        new_id,
                    });
                }
            }
            if cur.next >= 0 {
                if let Some(&(rank, new_id)) =
                    self.merges.get(&pair(cur.id, syms[cur.next as usize].id))
                {
                    heap.push(Merge {
                        rank,
                        pos: top.pos,
                        new_id,
                    });
                }
            }
        }
        out.extend(syms.iter().filter(|s| s.live).map(|s| s.id));
    }
}

/// Marks a byte whose character is not in the vocabulary.
pub const MISSING: u32 = u32::MAX;

#[inline]
fn pair(a: u32, b: u32) -> u64 {
    (a as u64) << 32 | b as u64
}

#[derive(Clone, Copy, Debug)]
struct Symbol {
    id: u32,
    prev: i32,
    next: i32,
    live: bool,
}

/// A heap entry; the heap pops the lowest rank, then the leftmost position.
#[derive(PartialEq, Eq)]
struct Merge {
    rank: u32,
    pos: usize,
    new_id: u32,
}

impl Ord for Merge {
    fn cmp(&self, other: &Self) -> Ordering {
        other.rank.cmp(&self.rank).then(other.pos.cmp(&self.pos))
    }
}

impl PartialOrd for Merge {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Pre-token bytes → ids, for one thread. Cleared when full, so memory stays bounded.
#[derive(Default)]
pub struct WordCache {
    map: FastMap<Box<[u8]>, Box<[u32]>>,
}

impl WordCache {
    /// Entries kept before the cache starts over (~ 60 MB at worst).
    const CAPACITY: usize = 1 << 19;
    /// Longer pre-tokens are rare and not worth keeping.
    const MAX_WORD: usize = 48;

    /// Appends the ids of `word` to `out`, from the cache or by merging.
    #[inline]
    pub fn encode(&mut self, model: &BpeModel, word: &[u8], out: &mut Vec<u32>) {
        if word.len() > Self::MAX_WORD {
            return model.merge(word, out);
        }
        if let Some(ids) = self.map.get(word) {
            out.extend_from_slice(ids);
            return;
        }
        let start = out.len();
        model.merge(word, out);
        if self.map.len() >= Self::CAPACITY {
            self.map.clear();
        }
        self.map.insert(word.into(), out[start..].into());
    }
}

/// A `HashMap` with [`FxHasher`]: keys here are short and not attacker-chosen in a way that
/// matters for a batch job.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The Fx hash (rustc's): a multiply-rotate over 8-byte words.
#[derive(Default)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}
