//! MinHash signatures and LSH band keys (RefinedWeb §3.3, Appendix G.3.2: 9,000 hashes over
//! 5-gram word shingles, 450 bands of 20).
//!
//! Each shingle is hashed once (xxh3, [`crate::normalize::shingle_hashes`]); the `k`
//! permutations are then the cheap family `h_i(x) = (a_i * x + b_i) mod 2^32` with odd `a_i`,
//! a bijection of `u32` each. datatrove uses `(a*x + b) mod (2^61 - 1)` on 64-bit values;
//! the 32-bit family is what lets the inner loop run 8 or 16 lanes wide (`vpmulld`,
//! `vpminud`): the hashes go in blocks of 64, the shingles loop inside, and the block's
//! minima stay in registers. Only one 64-bit key per band is kept (xxh3 of its 20 minima,
//! seeded by the band number), so a signature costs 8 bytes per band on disk.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::config::MinhashConfig;
use crate::normalize::{normalize_into, shingle_hashes};

/// Hashes per block of the inner loop: 64 u32 lanes = 8 AVX2 or 4 AVX-512 registers.
const BLOCK: usize = 64;

/// Computes band keys of documents; built once from the config, shared by threads.
#[derive(Clone, Debug)]
pub struct MinHasher {
    bands: usize,
    rows: usize,
    ngram: usize,
    seed: u64,
    /// Multipliers (odd), padded to a multiple of [`BLOCK`].
    a: Vec<u32>,
    /// Offsets, padded like `a`.
    b: Vec<u32>,
}

/// Reusable buffers of one thread: the normalised text, shingle hashes, minima.
#[derive(Default)]
pub struct Scratch {
    norm: String,
    shingles: Vec<u32>,
    mins: Vec<u32>,
}

impl MinHasher {
    /// The hasher of a validated config.
    pub fn new(config: &MinhashConfig) -> Self {
        let (bands, rows) = config.bands_rows();
        let k = bands * rows;
        let padded = k.div_ceil(BLOCK) * BLOCK;
        let mut state = config.seed;
        let mut a = Vec::with_capacity(padded);
        let mut b = Vec::with_capacity(padded);
        for _ in 0..padded {
            let r = splitmix64(&mut state);
            a.push((r as u32) | 1);
            b.push((r >> 32) as u32);
        }
        MinHasher {
            bands,
            rows,
            ngram: config.ngram,
            seed: config.seed,
            a,
            b,
        }
    }

    /// Bands per signature.
    pub fn bands(&self) -> usize {
        self.bands
    }

    /// The `bands x rows` minima of a document's shingle hashes (empty for no shingles).
    pub fn signature(&self, shingles: &[u32], mins: &mut Vec<u32>) {
        mins.clear();
        if shingles.is_empty() {
            return;
        }
        mins.resize(self.a.len(), u32::MAX);
        min_hashes(&self.a, &self.b, shingles, mins);
        mins.truncate(self.bands * self.rows);
    }

    /// Appends the band keys of `text` to `keys`: `bands` values, or none when the text has
    /// no word (such a document is never a duplicate). Returns whether keys were written.
    pub fn band_keys(&self, text: &str, scratch: &mut Scratch, keys: &mut Vec<u64>) -> bool {
        normalize_into(text, &mut scratch.norm);
        shingle_hashes(&scratch.norm, self.ngram, &mut scratch.shingles);
        self.signature(&scratch.shingles, &mut scratch.mins);
        if scratch.mins.is_empty() {
            return false;
        }
        let mut bytes = Vec::with_capacity(self.rows * 4);
        for (band, rows) in scratch.mins.chunks_exact(self.rows).enumerate() {
            bytes.clear();
            rows.iter()
                .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
            // The band number seeds the key, so equal keys of different bands do not meet.
            keys.push(xxh3_64_with_seed(
                &bytes,
                self.seed ^ (band as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ));
        }
        true
    }
}

/// `mins[i] = min over x of a[i] * x + b[i]` (wrapping), picking the widest vector unit
/// the CPU has at run time.
fn min_hashes(a: &[u32], b: &[u32], xs: &[u32], mins: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected on this CPU just above.
            return unsafe { min_hashes_avx512(a, b, xs, mins) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { min_hashes_avx2(a, b, xs, mins) };
        }
    }
    min_hashes_portable(a, b, xs, mins)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn min_hashes_avx512(a: &[u32], b: &[u32], xs: &[u32], mins: &mut [u32]) {
    min_hashes_portable(a, b, xs, mins)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn min_hashes_avx2(a: &[u32], b: &[u32], xs: &[u32], mins: &mut [u32]) {
    min_hashes_portable(a, b, xs, mins)
}

/// The branch-free kernel; inlined into each target-feature wrapper so LLVM vectorises it
/// for that unit. Lengths are multiples of [`BLOCK`].
#[inline(always)]
fn min_hashes_portable(a: &[u32], b: &[u32], xs: &[u32], mins: &mut [u32]) {
    for ((a, b), m) in a
        .chunks_exact(BLOCK)
        .zip(b.chunks_exact(BLOCK))
        .zip(mins.chunks_exact_mut(BLOCK))
    {
        let (Ok(a), Ok(b), Ok(m)) = (
            <&[u32; BLOCK]>::try_from(a),
            <&[u32; BLOCK]>::try_from(b),
            <&mut [u32; BLOCK]>::try_from(m),
        ) else {
            unreachable!("chunks_exact yields BLOCK-long chunks")
        };
        let mut acc = *m;
        for &x in xs {
            for j in 0..BLOCK {
                acc[j] = acc[j].min(a[j].wrapping_mul(x).wrapping_add(b[j]));
            }
        }
        *m = acc;
    }
}

/// SplitMix64: the seeded generator of the permutation parameters.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::jaccard;

    fn estimate(h: &MinHasher, x: &str, y: &str) -> f64 {
        let mut s = Scratch::default();
        let sig = |t: &str, s: &mut Scratch| {
            normalize_into(t, &mut s.norm);
            shingle_hashes(&s.norm, 5, &mut s.shingles);
            let mut m = Vec::new();
            h.signature(&s.shingles, &mut m);
            m
        };
        let (p, q) = (sig(x, &mut s), sig(y, &mut s));
        p.iter().zip(&q).filter(|(a, b)| a == b).count() as f64 / p.len() as f64
    }

    #[test]
    fn kernels_agree_with_scalar_definition() {
        let h = MinHasher::new(&MinhashConfig::default());
        let xs: Vec<u32> = (0..37u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        let mut mins = Vec::new();
        h.signature(&xs, &mut mins);
        assert_eq!(mins.len(), 9000);
        for i in [0, 1, 63, 64, 8999] {
            let want = xs
                .iter()
                .map(|&x| h.a[i].wrapping_mul(x).wrapping_add(h.b[i]))
                .min()
                .unwrap();
            assert_eq!(mins[i], want, "hash {i}");
        }
    }

    #[test]
    fn signature_agreement_estimates_jaccard() {
        let h = MinHasher::new(&MinhashConfig::default());
        let words: Vec<String> = (0..400)
            .map(|i| format!("w{}", (i * 7919) % 1000))
            .collect();
        let x = words.join(" ");
        let mut edited = words.clone();
        for i in (0..400).step_by(13) {
            edited[i] = format!("z{i}");
        }
        let y = edited.join(" ");
        let (est, exact) = (estimate(&h, &x, &y), jaccard(&x, &y, 5));
        // 9,000 hashes: the estimate's standard error is below 0.006.
        assert!(
            (est - exact).abs() < 0.03,
            "estimate {est} vs exact {exact}"
        );
        assert_eq!(estimate(&h, &x, &x.to_uppercase()), 1.0);
    }

    #[test]
    fn empty_text_has_no_keys_and_equal_texts_equal_keys() {
        let h = MinHasher::new(&MinhashConfig::default());
        let mut s = Scratch::default();
        let mut k = Vec::new();
        assert!(!h.band_keys(" ... ", &mut s, &mut k));
        assert!(k.is_empty());
        assert!(h.band_keys("The quick brown fox jumps over it.", &mut s, &mut k));
        let mut k2 = Vec::new();
        h.band_keys("the QUICK brown fox, jumps over it", &mut s, &mut k2);
        assert_eq!(k.len(), 450);
        assert_eq!(k, k2);
    }
}
