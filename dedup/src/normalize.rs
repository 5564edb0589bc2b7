//! Text normalisation and word shingles for MinHash (RefinedWeb §3.3, Appendix G.3.2).
//!
//! As datatrove's `simplify_text` does before shingling: lowercase, punctuation removed,
//! NFD with combining marks (accents) stripped, whitespace collapsed to one space. Unlike
//! datatrove's fixed punctuation table, every character that is neither alphanumeric nor
//! whitespace counts as punctuation here (symbols such as `$` or `©` go too).

use unicode_normalization::char::{decompose_canonical, is_combining_mark};
use xxhash_rust::xxh3::xxh3_64;

/// Writes the normalised form of `text` into `out` (cleared first): words of lowercase
/// letters and digits separated by single spaces, no leading or trailing space.
pub fn normalize_into(text: &str, out: &mut String) {
    out.clear();
    out.reserve(text.len());
    let mut pending_space = false;
    let mut push = |c: char, out: &mut String| {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
        } else if c.is_alphanumeric() {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
        // anything else is punctuation: dropped without splitting the word ("don't" -> "dont")
    };
    for c in text.chars() {
        if c.is_ascii() {
            push(c.to_ascii_lowercase(), out);
            continue;
        }
        for lower in c.to_lowercase() {
            decompose_canonical(lower, |d| {
                if !is_combining_mark(d) {
                    push(d, out);
                }
            });
        }
    }
}

/// The normalised form of `text`.
pub fn normalize(text: &str) -> String {
    let mut out = String::new();
    normalize_into(text, &mut out);
    out
}

/// Appends to `out` one 32-bit hash per `n`-word shingle of the normalised text `norm`
/// (xxh3-64 of the shingle's bytes, words joined by one space, truncated to 32 bits). A text
/// of fewer than `n` words gives one shingle of all its words; an empty text gives none.
/// Repeated shingles repeat: a minimum does not care.
pub fn shingle_hashes(norm: &str, n: usize, out: &mut Vec<u32>) {
    out.clear();
    if norm.is_empty() {
        return;
    }
    // Word starts; normalised text has exactly one space between words.
    let bytes = norm.as_bytes();
    let mut starts = Vec::with_capacity(bytes.len() / 5 + 1);
    starts.push(0usize);
    starts.extend(memchr::memchr_iter(b' ', bytes).map(|i| i + 1));
    let words = starts.len();
    if words <= n {
        out.push(xxh3_64(bytes) as u32);
        return;
    }
    out.reserve(words + 1 - n);
    for i in 0..=words - n {
        let end = if i + n < words {
            starts[i + n] - 1
        } else {
            bytes.len()
        };
        out.push(xxh3_64(&bytes[starts[i]..end]) as u32);
    }
}

/// Exact Jaccard similarity of the `n`-word shingle sets of two texts (normalised here):
/// the ground truth the benchmark holds MinHash against.
pub fn jaccard(a: &str, b: &str, n: usize) -> f64 {
    let set = |t: &str| {
        let mut v = Vec::new();
        shingle_hashes(&normalize(t), n, &mut v);
        v.sort_unstable();
        v.dedup();
        v
    };
    let (x, y) = (set(a), set(b));
    if x.is_empty() && y.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < x.len() && j < y.len() {
        match x[i].cmp(&y[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (x.len() + y.len() - inter) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_punctuation_accents_and_space() {
        assert_eq!(
            normalize("  Héllo,  WORLD!\n\tÇa va? don't  "),
            "hello world ca va dont"
        );
        assert_eq!(normalize("Straße — ÉCOLE  naïve"), "straße ecole naive");
        assert_eq!(normalize("...!!!"), "");
        assert_eq!(normalize("中文 文本"), "中文 文本");
    }

    #[test]
    fn shingles_are_word_five_grams() {
        let mut v = Vec::new();
        shingle_hashes("a b c d e f g", 5, &mut v);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], xxh3_64(b"a b c d e") as u32);
        assert_eq!(v[2], xxh3_64(b"c d e f g") as u32);
        shingle_hashes("a b", 5, &mut v);
        assert_eq!(v, vec![xxh3_64(b"a b") as u32]);
        shingle_hashes("", 5, &mut v);
        assert!(v.is_empty());
    }

    #[test]
    fn jaccard_counts_shared_shingles() {
        assert_eq!(jaccard("a b c d e f", "A, b c d e f!", 5), 1.0);
        // shingles {abcde, bcdef} vs {abcde, bcdeg}: 1 shared of 3
        assert!((jaccard("a b c d e f", "a b c d e g", 5) - 1.0 / 3.0).abs() < 1e-9);
    }
}
