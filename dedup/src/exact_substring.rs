//! Exact substring dedup (RefinedWeb §3.3, after ExactSubstr of Lee et al. 2022): every span
//! of at least `min_span` units that occurs earlier in the corpus is cut out; a document left
//! with fewer than `min_chars` characters is dropped.
//!
//! Units are whitespace-separated words of the original text or UTF-8 bytes
//! ([`SpanUnit`]); RefinedWeb counts 50 Falcon tokens, which will become a third unit once the
//! tokenizer crate is wired in.
//!
//! A repeated span of >= L units is exactly a run of repeated L-unit windows, so the
//! `exact_substring` step works on windows, in bounded memory and as a task array: per shard
//! every L-unit window inside a document is hashed (xxh3-64 of its units) into sorted runs
//! ([`Window`]); per hash range the windows are merged and every one whose content occurred
//! at an earlier `(document, position)` is marked ([`Cut`]); per shard the marked windows
//! merge into cuts ([`merge_windows`]). The first occurrence of a span stays, wherever the
//! copies are: a repeat across shards or task ranges is cut in the later document. A 64-bit
//! hash collision can only add a cut, with probability about windows^2 / 2^64.
//!
//! [`ExactSubstring`] is the single-node form: suffix and LCP arrays by libsais over the whole
//! corpus (one symbol per unit, documents separated by symbol 0, 16 bytes per unit, up to
//! 2^31 units). Adjacent suffixes whose common prefix, cut at the document's end, reaches
//! `min_span` form runs; in each run the suffix that starts first in the corpus keeps its
//! text and every other one loses its first `min_span` units: the same cuts as the windows,
//! which the tests hold it to.
//!
//! Policy, and where we differ: Lee et al.'s tool removes *all* copies of a repeated span;
//! we keep the first, so a quotation's source keeps it and the corpus loses no unique text.

use std::collections::HashMap;

use libsais::suffix_array::AlphabetSize;
use libsais::SuffixArrayConstruction;

use xxhash_rust::xxh3::xxh3_64;

use crate::config::{ExactSubstringConfig, SpanUnit};
use crate::lsh::DocRef;
use crate::sorted_runs::Record;
use crate::{Error, Result};

/// A corpus collected for the suffix array.
pub struct ExactSubstring {
    unit: SpanUnit,
    min_span: usize,
    vocab: HashMap<String, i32>,
    text: Vec<i32>,
    docs: Vec<DocRef>,
    /// Start of each document's symbols in `text`; its end is the next start minus the separator.
    starts: Vec<usize>,
}

/// The cuts of one document: sorted, disjoint `[start, end)` ranges of unit indices.
pub type Cuts = Vec<(u32, u32)>;

impl ExactSubstring {
    /// An empty corpus.
    pub fn new(config: &ExactSubstringConfig) -> Self {
        ExactSubstring {
            unit: config.unit,
            min_span: config.min_span,
            vocab: HashMap::new(),
            text: Vec::new(),
            docs: Vec::new(),
            starts: Vec::new(),
        }
    }

    /// Appends a document; call in corpus order (that order decides which copy stays).
    pub fn add(&mut self, doc: DocRef, content: &str) {
        self.docs.push(doc);
        self.starts.push(self.text.len());
        match self.unit {
            SpanUnit::Bytes => self.text.extend(content.bytes().map(|b| b as i32 + 1)),
            SpanUnit::Words => {
                for word in content.split_whitespace() {
                    let next = self.vocab.len() as i32 + 1;
                    let id = *self.vocab.entry(word.to_string()).or_insert(next);
                    self.text.push(id);
                }
            }
        }
        self.text.push(0);
    }

    /// Units collected so far (separators included).
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// Whether no document was added.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Builds the suffix and LCP arrays and returns the cuts of every document that has one.
    pub fn repeated_spans(mut self) -> Result<Vec<(DocRef, Cuts)>> {
        let n = self.text.len();
        if n <= self.docs.len() {
            return Ok(Vec::new()); // separators only: no text
        }
        if n >= i32::MAX as usize {
            return Err(Error::SuffixArray(format!(
                "{n} units exceed the single-node limit of 2^31"
            )));
        }
        let alphabet = match self.unit {
            SpanUnit::Bytes => 257,
            SpanUnit::Words => self.vocab.len() + 1,
        };
        self.vocab = HashMap::new();
        let err = |e: libsais::LibsaisError| Error::SuffixArray(format!("{e:?}"));
        let mut construction = SuffixArrayConstruction::for_text_mut(&mut self.text)
            .in_owned_buffer32()
            .single_threaded();
        // SAFETY: every symbol is in 0..alphabet (word ids are 1..=vocab, bytes 1..=256).
        construction =
            unsafe { construction.with_alphabet_size(AlphabetSize::new(alphabet as i32)) };
        let sa = construction.run().map_err(err)?;
        let with_plcp = sa
            .plcp_construction()
            .single_threaded()
            .run()
            .map_err(err)?;
        let with_lcp = with_plcp
            .lcp_construction()
            .single_threaded()
            .run()
            .map_err(err)?;
        let (sa, lcp, _, _) = with_lcp.into_parts();
        let (sa, lcp): (&[i32], &[i32]) = (&sa, &lcp);

        let ends: Vec<usize> = self
            .starts
            .iter()
            .skip(1)
            .map(|s| s - 1)
            .chain([n - 1])
            .collect();
        // Units from `p` to its document's end.
        let to_end = |p: usize| ends[ends.partition_point(|&e| e < p)] - p;
        let span = self.min_span;
        let mut starts_cut: Vec<usize> = Vec::new();
        let mut i = 1;
        while i < n {
            let reaches = |i: usize| {
                lcp[i] as usize >= span
                    && to_end(sa[i] as usize) >= span
                    && to_end(sa[i - 1] as usize) >= span
            };
            if !reaches(i) {
                i += 1;
                continue;
            }
            let first = i - 1;
            while i < n && reaches(i) {
                i += 1;
            }
            let run = &sa[first..i];
            let keep = run.iter().copied().min().unwrap_or_default();
            starts_cut.extend(run.iter().filter(|&&p| p != keep).map(|&p| p as usize));
        }
        starts_cut.sort_unstable();

        let mut out: Vec<(DocRef, Cuts)> = Vec::new();
        let mut k = 0;
        while k < starts_cut.len() {
            let d = self.starts.partition_point(|&s| s <= starts_cut[k]) - 1;
            let mut j = k;
            while j < starts_cut.len()
                && starts_cut[j] < self.starts.get(d + 1).copied().unwrap_or(n)
            {
                j += 1;
            }
            let local: Vec<u32> = starts_cut[k..j]
                .iter()
                .map(|&p| (p - self.starts[d]) as u32)
                .collect();
            out.push((self.docs[d], merge_windows(&local, span as u32)));
            k = j;
        }
        Ok(out)
    }
}

/// Windows `[p, p + span)` starting at the sorted positions `starts` of one document, merged
/// into disjoint ranges (touching windows join).
pub fn merge_windows(starts: &[u32], span: u32) -> Cuts {
    let mut cuts: Cuts = Vec::new();
    for &p in starts {
        match cuts.last_mut() {
            Some((_, end)) if p <= *end => *end = (*end).max(p + span),
            _ => cuts.push((p, p + span)),
        }
    }
    cuts
}

/// Calls `f(position, hash)` for every window of `span` units of `content`, in order.
pub fn for_each_window(content: &str, unit: SpanUnit, span: usize, mut f: impl FnMut(u32, u64)) {
    match unit {
        SpanUnit::Bytes => {
            for (p, w) in content.as_bytes().windows(span).enumerate() {
                f(p as u32, xxh3_64(w));
            }
        }
        SpanUnit::Words => {
            let words: Vec<u8> = content
                .split_whitespace()
                .flat_map(|w| xxh3_64(w.as_bytes()).to_le_bytes())
                .collect();
            let n = words.len() / 8;
            for p in 0..(n + 1).saturating_sub(span) {
                f(p as u32, xxh3_64(&words[p * 8..(p + span) * 8]));
            }
        }
    }
}

/// An L-unit window of a document: its content hash, then corpus order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    /// xxh3-64 of the window's units.
    pub hash: u64,
    /// The document.
    pub doc: DocRef,
    /// The window's first unit.
    pub pos: u32,
}

impl Record for Window {
    fn key(&self) -> u64 {
        self.hash
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hash.to_le_bytes());
        out.extend_from_slice(&self.doc.to_le_bytes());
        out.extend_from_slice(&self.pos.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Window {
            hash: u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            doc: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
            pos: u32::from_le_bytes(b.get(16..20)?.try_into().ok()?),
        })
    }
}

/// A window whose content occurred earlier: it is cut. Sorted by document, then position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cut {
    /// The document.
    pub doc: DocRef,
    /// The window's first unit.
    pub pos: u32,
}

impl Record for Cut {
    fn key(&self) -> u64 {
        self.doc
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.doc.to_le_bytes());
        out.extend_from_slice(&self.pos.to_le_bytes());
    }
    fn decode(b: &[u8]) -> Option<Self> {
        Some(Cut {
            doc: u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            pos: u32::from_le_bytes(b.get(8..12)?.try_into().ok()?),
        })
    }
}

/// `content` without the units in `cuts` (as [`ExactSubstring::repeated_spans`] gave them).
/// A cut word takes the whitespace after it, so the text stays readable.
pub fn apply_cuts(content: &str, unit: SpanUnit, cuts: &[(u32, u32)]) -> String {
    // Byte range of each cut.
    let ranges: Vec<(usize, usize)> = match unit {
        SpanUnit::Bytes => cuts
            .iter()
            .map(|&(s, e)| (s as usize, (e as usize).min(content.len())))
            .collect(),
        SpanUnit::Words => {
            let words: Vec<usize> = content
                .split_whitespace()
                .map(|w| w.as_ptr() as usize - content.as_ptr() as usize)
                .collect();
            let at = |i: u32| words.get(i as usize).copied().unwrap_or(content.len());
            cuts.iter().map(|&(s, e)| (at(s), at(e))).collect()
        }
    };
    let bytes = content.as_bytes();
    let mut out = Vec::with_capacity(content.len());
    let mut pos = 0;
    for (s, e) in ranges {
        if s >= pos {
            out.extend_from_slice(&bytes[pos..s]);
        }
        pos = pos.max(e);
    }
    out.extend_from_slice(&bytes[pos.min(bytes.len())..]);
    // Byte cuts can split a character: keep what decodes.
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(unit: SpanUnit, min_span: usize) -> ExactSubstringConfig {
        ExactSubstringConfig {
            unit,
            min_span,
            ..Default::default()
        }
    }

    #[test]
    fn later_copies_of_long_spans_are_cut_first_kept() {
        let shared = (0..60)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let a = format!("intro of a. {shared} outro of a.");
        let b = format!("b starts. {shared}");
        let c = "short shared w0 w1 w2 only".to_string();
        let mut es = ExactSubstring::new(&config(SpanUnit::Words, 50));
        for (i, t) in [&a, &b, &c].iter().enumerate() {
            es.add(i as u64, t);
        }
        let spans = es.repeated_spans().unwrap();
        assert_eq!(spans, vec![(1, vec![(2, 62)])]);
        assert_eq!(apply_cuts(&b, SpanUnit::Words, &spans[0].1), "b starts. ");
    }

    #[test]
    fn spans_do_not_cross_documents_and_short_repeats_stay() {
        // "x y" at the end of one document and the start of the next never joins them.
        let mut es = ExactSubstring::new(&config(SpanUnit::Bytes, 8));
        es.add(0, "abcd");
        es.add(1, "abcd");
        es.add(2, "0123456789 and 0123456789");
        let spans = es.repeated_spans().unwrap();
        assert_eq!(spans, vec![(2, vec![(15, 25)])]);
        assert_eq!(
            apply_cuts("0123456789 and 0123456789", SpanUnit::Bytes, &spans[0].1),
            "0123456789 and "
        );
    }

    #[test]
    fn empty_corpus_has_no_spans() {
        let es = ExactSubstring::new(&config(SpanUnit::Words, 50));
        assert!(es.is_empty());
        assert!(es.repeated_spans().unwrap().is_empty());
        let mut blank = ExactSubstring::new(&config(SpanUnit::Words, 2));
        blank.add(0, "  ");
        blank.add(1, "");
        assert!(blank.repeated_spans().unwrap().is_empty());
    }
}
