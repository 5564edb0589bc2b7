//! Near duplicates of real text at known Jaccard levels: the ground truth that the quality
//! tests and the benchmark hold MinHash against, and a synthetic corpus for scale runs.
//!
//! Texts come from the extraction benchmark's hand-written article bodies
//! (`shared/data/extraction-bench/ground-truth.json`, 90 English news and blog articles).
//! A copy is edited word by word (substitution, deletion, insertion, in a seeded order);
//! [`edit_to_jaccard`] searches the number of edits that brings the exact 5-gram Jaccard
//! ([`crate::normalize::jaccard`]) closest to a target and reports the level it reached.

use std::path::Path;

use falconry_refine::Document;

use crate::minhash::splitmix64;
use crate::normalize::jaccard;
use crate::{Error, Result};

/// A small seeded generator (SplitMix64): reproducible without a `rand` dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        splitmix64(&mut self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The article bodies of the extraction benchmark's ground truth, sorted by page id.
pub fn load_articles(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let map: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::WorkFile {
            path: path.into(),
            message: e.to_string(),
        })?;
    Ok(map
        .values()
        .filter_map(|v| v.get("articleBody")?.as_str().map(str::to_owned))
        .collect())
}

/// `words` with its first `k` edits applied: edit `j` goes to position `order[j]`, and is a
/// substitution, deletion or insertion of a word drawn from `words` itself.
fn edited(words: &[&str], k: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let n = words.len();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut op = vec![0u8; n]; // 0 keep, 1 substitute, 2 delete, 3 insert before
    let mut fill = vec![""; n];
    for &p in order.iter().take(k) {
        op[p] = 1 + rng.below(3) as u8;
        fill[p] = words[rng.below(n)];
    }
    let mut out = Vec::with_capacity(n + k);
    for i in 0..n {
        match op[i] {
            0 => out.push(words[i]),
            1 => out.push(fill[i]),
            2 => {}
            _ => out.extend([fill[i], words[i]]),
        }
    }
    out.join(" ")
}

/// A copy of `text` edited until its exact `ngram` Jaccard with `text` is as close to
/// `target` as whole edits allow; returns the copy and the Jaccard it has.
pub fn edit_to_jaccard(text: &str, target: f64, ngram: usize, seed: u64) -> (String, f64) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (mut lo, mut hi) = (0usize, words.len());
    // Jaccard falls (nearly) monotonically with the number of edits: bisect.
    while lo < hi {
        let mid = (lo + hi) / 2;
        if jaccard(text, &edited(&words, mid, seed), ngram) > target {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let best = [lo.saturating_sub(1), lo]
        .into_iter()
        .map(|k| {
            let copy = edited(&words, k, seed);
            let j = jaccard(text, &copy, ngram);
            (copy, j)
        })
        .min_by(|a, b| (a.1 - target).abs().total_cmp(&(b.1 - target).abs()));
    best.unwrap_or_else(|| (text.to_string(), 1.0))
}

/// A synthetic corpus for scale runs: documents of 4 to 11 sentences drawn from the
/// articles; a fraction `dup_rate` of them are edited copies (0 to 10% of words) of one of
/// the previous 1,000 documents, and 1% reuse an earlier URL in a later dump.
pub struct SyntheticCorpus {
    sentences: Vec<String>,
    recent: Vec<(String, String)>,
    rng: Rng,
    dup_rate: f64,
    next: u64,
}

impl SyntheticCorpus {
    /// A corpus over `articles`' sentences.
    pub fn new(articles: &[String], dup_rate: f64, seed: u64) -> Self {
        let sentences = articles
            .iter()
            .flat_map(|a| a.split_inclusive(['.', '!', '?', '\n']))
            .map(|s| s.trim().to_string())
            .filter(|s| s.split_whitespace().count() >= 3)
            .collect();
        SyntheticCorpus {
            sentences,
            recent: Vec::new(),
            rng: Rng::new(seed),
            dup_rate,
            next: 0,
        }
    }
}

impl Iterator for SyntheticCorpus {
    type Item = Document;

    fn next(&mut self) -> Option<Document> {
        let i = self.next;
        self.next += 1;
        let rng = &mut self.rng;
        let mut url = format!("https://synthetic.example/{i}");
        let content = if !self.recent.is_empty() && rng.unit() < self.dup_rate {
            let (text, _) = &self.recent[rng.below(self.recent.len())];
            let words: Vec<&str> = text.split_whitespace().collect();
            let k = rng.below(words.len() / 10 + 1);
            edited(&words, k, rng.next_u64())
        } else {
            let n = 4 + rng.below(8);
            (0..n)
                .map(|_| self.sentences[rng.below(self.sentences.len())].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        if !self.recent.is_empty() && rng.below(100) == 0 {
            url = self.recent[rng.below(self.recent.len())].1.clone();
        }
        if self.recent.len() < 1000 {
            self.recent.push((content.clone(), url.clone()));
        } else {
            let slot = rng.below(1000);
            self.recent[slot] = (content.clone(), url.clone());
        }
        Some(Document {
            id: format!("{i:032x}"),
            timestamp: Some(1_600_000_000 + i as i64),
            dump: format!("CC-MAIN-2023-{:02}", 14 + (i * 4 / 1_000_000).min(3) * 10),
            segment: String::new(),
            url,
            content,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_reach_the_target_jaccard() {
        let text = (0..300)
            .map(|i| format!("w{}", (i * 31) % 1009))
            .collect::<Vec<_>>()
            .join(" ");
        for target in [0.5, 0.8, 0.95] {
            let (copy, j) = edit_to_jaccard(&text, target, 5, 7);
            assert!((j - target).abs() < 0.03, "target {target}: got {j}");
            assert!((jaccard(&text, &copy, 5) - j).abs() < 1e-12);
        }
        assert_eq!(edit_to_jaccard(&text, 1.0, 5, 7).1, 1.0);
    }

    #[test]
    fn synthetic_corpus_is_reproducible() {
        let arts =
            vec!["One two three four. Five six seven eight! Nine ten eleven twelve?".to_string()];
        let a: Vec<Document> = SyntheticCorpus::new(&arts, 0.2, 3).take(50).collect();
        let b: Vec<Document> = SyntheticCorpus::new(&arts, 0.2, 3).take(50).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|d| !d.content.is_empty()));
    }
}
