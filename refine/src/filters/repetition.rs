//! The `repetition` stage: Gopher's repetition removal (Rae et al. 2021, App. A.1.1, Table A1),
//! which RefinedWeb applies after language identification (Penedo et al. 2023, §3.1, App. G.1).
//!
//! A document is dropped when the repeated part of it is too large, by the first of these rules
//! that fires, cheapest first (the order of datatrove's `GopherRepetitionFilter`):
//!
//! | rule (= drop reason)                | Table A1 row                           | default |
//! |-------------------------------------|----------------------------------------|---------|
//! | `duplicate_paragraph_fraction`      | duplicate paragraph fraction           | 0.30    |
//! | `duplicate_paragraph_char_fraction` | duplicate paragraph character fraction | 0.20    |
//! | `duplicate_line_fraction`           | duplicate line fraction                | 0.30    |
//! | `duplicate_line_char_fraction`      | duplicate line character fraction      | 0.20    |
//! | `top_{2,3,4}gram_char_fraction`     | top 2/3/4-gram character fraction      | 0.20 / 0.18 / 0.16 |
//! | `duplicate_{5..10}gram_char_fraction` | duplicate 5..10-gram character fraction | 0.15 .. 0.10 |
//!
//! Definitions follow datatrove 0.10.1 exactly: paragraphs are split on two or more newlines
//! (of the stripped text), lines on one or more; a "duplicate" is an item equal to an earlier
//! one; character fractions are over all characters of the document; words come from
//! [`split_words`](super::text::split_words) (punctuation tokens included); top n-grams are counted joined by
//! spaces, duplicated n-grams joined without separator and counted left to right, skipping
//! `n` words past each repeat. An empty document is dropped as `empty`.
//! Every threshold is an upper bound; 1.0 turns a rule off.

use serde::{Deserialize, Serialize};

use super::text::{char_len, duplicates, py_strip, Ngrams, Words};
use crate::{Document, Stage, Verdict};

/// The `repetition` stage's settings; defaults are Gopher's Table A1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepetitionConfig {
    /// Whether the stage runs.
    pub enabled: bool,
    /// Table A1 "duplicate line fraction": most lines that may repeat an earlier line.
    pub duplicate_line_fraction: f64,
    /// Table A1 "duplicate paragraph fraction".
    pub duplicate_paragraph_fraction: f64,
    /// Table A1 "duplicate line character fraction": most characters in repeated lines.
    pub duplicate_line_char_fraction: f64,
    /// Table A1 "duplicate paragraph character fraction".
    pub duplicate_paragraph_char_fraction: f64,
    /// Table A1 "top 2-gram character fraction": most characters in the most frequent 2-gram.
    pub top_2gram_char_fraction: f64,
    /// Table A1 "top 3-gram character fraction".
    pub top_3gram_char_fraction: f64,
    /// Table A1 "top 4-gram character fraction".
    pub top_4gram_char_fraction: f64,
    /// Table A1 "duplicate 5-gram character fraction": most characters in repeated 5-grams.
    pub duplicate_5gram_char_fraction: f64,
    /// Table A1 "duplicate 6-gram character fraction".
    pub duplicate_6gram_char_fraction: f64,
    /// Table A1 "duplicate 7-gram character fraction".
    pub duplicate_7gram_char_fraction: f64,
    /// Table A1 "duplicate 8-gram character fraction".
    pub duplicate_8gram_char_fraction: f64,
    /// Table A1 "duplicate 9-gram character fraction".
    pub duplicate_9gram_char_fraction: f64,
    /// Table A1 "duplicate 10-gram character fraction".
    pub duplicate_10gram_char_fraction: f64,
}

impl Default for RepetitionConfig {
    fn default() -> Self {
        RepetitionConfig {
            enabled: true,
            duplicate_line_fraction: 0.30,
            duplicate_paragraph_fraction: 0.30,
            duplicate_line_char_fraction: 0.20,
            duplicate_paragraph_char_fraction: 0.20,
            top_2gram_char_fraction: 0.20,
            top_3gram_char_fraction: 0.18,
            top_4gram_char_fraction: 0.16,
            duplicate_5gram_char_fraction: 0.15,
            duplicate_6gram_char_fraction: 0.14,
            duplicate_7gram_char_fraction: 0.13,
            duplicate_8gram_char_fraction: 0.12,
            duplicate_9gram_char_fraction: 0.11,
            duplicate_10gram_char_fraction: 0.10,
        }
    }
}

impl RepetitionConfig {
    fn fractions(&self) -> [(&'static str, f64); 13] {
        [
            ("duplicate_line_fraction", self.duplicate_line_fraction),
            (
                "duplicate_paragraph_fraction",
                self.duplicate_paragraph_fraction,
            ),
            (
                "duplicate_line_char_fraction",
                self.duplicate_line_char_fraction,
            ),
            (
                "duplicate_paragraph_char_fraction",
                self.duplicate_paragraph_char_fraction,
            ),
            ("top_2gram_char_fraction", self.top_2gram_char_fraction),
            ("top_3gram_char_fraction", self.top_3gram_char_fraction),
            ("top_4gram_char_fraction", self.top_4gram_char_fraction),
            (
                "duplicate_5gram_char_fraction",
                self.duplicate_5gram_char_fraction,
            ),
            (
                "duplicate_6gram_char_fraction",
                self.duplicate_6gram_char_fraction,
            ),
            (
                "duplicate_7gram_char_fraction",
                self.duplicate_7gram_char_fraction,
            ),
            (
                "duplicate_8gram_char_fraction",
                self.duplicate_8gram_char_fraction,
            ),
            (
                "duplicate_9gram_char_fraction",
                self.duplicate_9gram_char_fraction,
            ),
            (
                "duplicate_10gram_char_fraction",
                self.duplicate_10gram_char_fraction,
            ),
        ]
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        for (key, value) in self.fractions() {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!(
                    "repetition.{key} must be within 0..=1, got {value}"
                ));
            }
        }
        Ok(())
    }
}

/// Gopher's repetition rules, built once from [`RepetitionConfig`].
pub struct Repetition {
    config: RepetitionConfig,
}

impl Repetition {
    /// Builds the stage.
    pub fn new(config: &RepetitionConfig) -> Self {
        Repetition {
            config: config.clone(),
        }
    }

    /// The rule a text breaks, if any (`None` keeps it).
    pub fn check(&self, text: &str) -> Option<&'static str> {
        self.check_words(text, &Words::new(text))
    }

    /// [`Repetition::check`] with the words of `text` already split.
    pub fn check_words(&self, text: &str, words: &Words) -> Option<&'static str> {
        let c = &self.config;
        if text.is_empty() {
            return Some("empty");
        }
        let chars = char_len(text) as f64;

        let paragraphs: Vec<&str> = split_newline_runs(py_strip(text), 2).collect();
        let (dup, dup_chars) = duplicates(&paragraphs);
        if dup as f64 / paragraphs.len() as f64 > c.duplicate_paragraph_fraction {
            return Some("duplicate_paragraph_fraction");
        }
        if dup_chars as f64 / chars > c.duplicate_paragraph_char_fraction {
            return Some("duplicate_paragraph_char_fraction");
        }
        let lines: Vec<&str> = split_newline_runs(text, 1).collect();
        let (dup, dup_chars) = duplicates(&lines);
        if dup as f64 / lines.len() as f64 > c.duplicate_line_fraction {
            return Some("duplicate_line_fraction");
        }
        if dup_chars as f64 / chars > c.duplicate_line_char_fraction {
            return Some("duplicate_line_char_fraction");
        }

        let mut ngrams = Ngrams::new(text, words);
        let top = [
            (2, c.top_2gram_char_fraction, "top_2gram_char_fraction"),
            (3, c.top_3gram_char_fraction, "top_3gram_char_fraction"),
            (4, c.top_4gram_char_fraction, "top_4gram_char_fraction"),
        ];
        for (n, max, reason) in top {
            if ngrams.top_char_count(n) as f64 / chars > max {
                return Some(reason);
            }
        }
        let duplicated = [
            (
                5,
                c.duplicate_5gram_char_fraction,
                "duplicate_5gram_char_fraction",
            ),
            (
                6,
                c.duplicate_6gram_char_fraction,
                "duplicate_6gram_char_fraction",
            ),
            (
                7,
                c.duplicate_7gram_char_fraction,
                "duplicate_7gram_char_fraction",
            ),
            (
                8,
                c.duplicate_8gram_char_fraction,
                "duplicate_8gram_char_fraction",
            ),
            (
                9,
                c.duplicate_9gram_char_fraction,
                "duplicate_9gram_char_fraction",
            ),
            (
                10,
                c.duplicate_10gram_char_fraction,
                "duplicate_10gram_char_fraction",
            ),
        ];
        for (n, max, reason) in duplicated {
            if ngrams.duplicate_char_count(n) as f64 / chars > max {
                return Some(reason);
            }
        }
        None
    }
}

impl Stage for Repetition {
    fn name(&self) -> &'static str {
        "repetition"
    }
    fn apply(&self, doc: &mut Document) -> Verdict {
        match self.check_words(&doc.content, doc.words.of(&doc.content)) {
            Some(reason) => Verdict::Drop(reason),
            None => Verdict::Keep,
        }
    }
}

/// Python's `re.split(r"\n{min,}", text)` for `min` of 1 or 2.
fn split_newline_runs(text: &str, min: usize) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut from = 0;
        loop {
            let Some(at) = memchr::memchr(b'\n', &s.as_bytes()[from..]).map(|i| from + i) else {
                rest = None;
                return Some(s);
            };
            let run = s.as_bytes()[at..]
                .iter()
                .take_while(|&&b| b == b'\n')
                .count();
            if run >= min {
                rest = Some(&s[at + run..]);
                return Some(&s[..at]);
            }
            from = at + run;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Option<&'static str> {
        Repetition::new(&RepetitionConfig::default()).check(text)
    }

    /// Distinct filler words, so that only the rule under test fires.
    fn filler(from: usize, n: usize) -> String {
        (from..from + n)
            .map(|i| format!("w{i:04}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn clean_text_passes() {
        let text = "The quick brown fox jumps over the lazy dog near the river bank.\n\
                    A second line talks about something else entirely, with other words.\n\
                    Finally, the third line closes this short passage without repeating itself.";
        assert_eq!(check(text), None);
    }

    #[test]
    fn one_case_per_reason() {
        assert_eq!(check(""), Some("empty"));
        let para = format!(
            "{}\n\n{}\n\n{}\n\n{}",
            filler(0, 3),
            filler(0, 3),
            filler(0, 3),
            filler(10, 40)
        );
        assert_eq!(check(&para), Some("duplicate_paragraph_fraction"));
        let para_chars = format!(
            "{}\n\n{}\n\n{}\n\n{}",
            filler(0, 30),
            filler(0, 30),
            filler(100, 20),
            filler(200, 20)
        );
        assert_eq!(
            check(&para_chars),
            Some("duplicate_paragraph_char_fraction")
        );
        let lines = format!(
            "{}\n{}\n{}\n{}",
            filler(0, 3),
            filler(0, 3),
            filler(0, 3),
            filler(10, 40)
        );
        assert_eq!(check(&lines), Some("duplicate_line_fraction"));
        let line_chars = format!(
            "{}\n{}\n{}\n{}",
            filler(0, 30),
            filler(0, 30),
            filler(100, 20),
            filler(200, 20)
        );
        assert_eq!(check(&line_chars), Some("duplicate_line_char_fraction"));
        let top2: Vec<String> = (0..12)
            .map(|i| format!("aa bb {}", filler(3000 + i, 1)))
            .collect();
        assert_eq!(check(&top2.join(" ")), Some("top_2gram_char_fraction"));
        // A repeated 3-gram (or 4-gram) implies a repeated 2-gram (and 3-gram): space the
        // repeats so that only the longer one crosses its bound.
        let spaced = |prefix: &str, gap: usize| -> String {
            let units: Vec<String> = (0..10)
                .map(|i| format!("{prefix} {}", filler(3000 + i * gap, gap)))
                .collect();
            units.join(" ")
        };
        assert_eq!(
            check(&spaced("aa bb cc", 4)),
            Some("top_3gram_char_fraction")
        );
        assert_eq!(
            check(&spaced("aa bb cc dd", 7)),
            Some("top_4gram_char_fraction")
        );
        let bounds = [0.15, 0.14, 0.13, 0.12, 0.11, 0.10];
        for (n, bound) in (5..=10).zip(bounds) {
            // An n-word phrase said ten times, with fresh words between, sized to land just over
            // the n-gram bound (and so under the bounds of shorter n-grams and of the top n-grams).
            let phrase = filler(1000, n);
            let repeated_chars = 9 * 5 * n;
            let total = (repeated_chars as f64 / (bound + 0.003)) as usize;
            let gap = (total - 10 * 6 * n) / 60;
            let parts: Vec<String> = (0..10)
                .map(|r| format!("{phrase} {}", filler(2000 + r * gap, gap)))
                .collect();
            let expected = format!("duplicate_{n}gram_char_fraction");
            assert_eq!(check(&parts.join(" ")), Some(expected.as_str()), "n = {n}");
        }
    }

    #[test]
    fn splits_like_re_split() {
        let parts: Vec<_> = split_newline_runs("a\nb\n\n\nc\n", 2).collect();
        assert_eq!(parts, ["a\nb", "c\n"]);
        let parts: Vec<_> = split_newline_runs("\na\n\nb\n", 1).collect();
        assert_eq!(parts, ["", "a", "b", ""]);
    }
}
