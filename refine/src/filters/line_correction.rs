//! The `line_correction` stage: RefinedWeb's line-wise corrections (Penedo et al. 2023, §3.1,
//! App. G.2), which run after the Gopher filters.
//!
//! Extraction leaves boilerplate lines behind (social counters, navigation, headers). Each line
//! is checked in this order, following DCLM's runnable reproduction
//! (`baselines/baselines_configs/refinedweb.yaml`):
//!
//! | G.2 rule                                  | config key                      | default |
//! |-------------------------------------------|---------------------------------|---------|
//! | mainly composed of uppercase characters   | `max_uppercase_char_fraction`   | 0.5 of its characters |
//! | only composed of numerical characters     | `max_numeric_char_fraction`     | 0.999999 of its non-blank characters |
//! | is a counter (e.g. "3 likes")             | `counter_words`                 | likes, shares, comments, ... |
//! | is only one word                          | `min_line_words`                | 2 |
//! | short and matches a pattern               | `max_pattern_line_words`        | 10 |
//! | ... at its beginning (e.g. "sign-in")     | `prefix_patterns`               | `sign-in` |
//! | ... at its end (e.g. "Read more...")      | `suffix_patterns`               | `read more...` |
//! | ... anywhere (e.g. "items in cart")       | `anywhere_patterns`             | `items in cart` |
//!
//! The first four rules remove the line. A pattern rule removes only the matched text (with
//! one adjacent whitespace character) from a line of at most `max_pattern_line_words` words,
//! and the line only if nothing else is left. Patterns are literal and case-insensitive
//! (DCLM passes them to a regex unescaped, so its `.` matches any character). Blank lines are
//! kept. Finally, "if the words in the flagged lines represent more than 5% of the total
//! document words, the document is discarded" (`max_removed_word_fraction`, drop reason of
//! the same name); words are counted as the Gopher rules count them ([`text::split_words`],
//! punctuation left out), while `min_line_words` and `max_pattern_line_words` count
//! whitespace-separated words, as DCLM does. A document left with no text is dropped as
//! `empty`.

use serde::{Deserialize, Serialize};

use regex::{Regex, RegexBuilder};

use super::text::{self, is_symbol_word, Words};
use crate::{Document, Stage, Verdict};

/// The `line_correction` stage's settings; defaults are RefinedWeb App. G.2 as DCLM runs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LineCorrectionConfig {
    /// Whether the stage runs.
    pub enabled: bool,
    /// G.2 "mainly composed of uppercase characters": a line whose uppercase characters are
    /// more than this fraction of all its characters is removed.
    pub max_uppercase_char_fraction: f64,
    /// G.2 "only composed of numerical characters": a line whose numeric characters are more
    /// than this fraction of its non-whitespace characters is removed (1 - 1e-6: all of them).
    pub max_numeric_char_fraction: f64,
    /// G.2 "is a counter (e.g. 3 likes)": a line that is a number (`1,234`, `5.2k`) followed by
    /// one of these words, with nothing but punctuation around, is removed.
    pub counter_words: Vec<String>,
    /// G.2 "only one word": lines with fewer whitespace-separated words are removed.
    pub min_line_words: usize,
    /// G.2 "short (<= 10 words) and matches a pattern": the most words for the pattern rules.
    pub max_pattern_line_words: usize,
    /// G.2 patterns "at the beginning of the line (e.g. sign-in)".
    pub prefix_patterns: Vec<String>,
    /// G.2 patterns "at the end of the line (e.g. Read more...)".
    pub suffix_patterns: Vec<String>,
    /// G.2 patterns "anywhere in the line (e.g. items in cart)".
    pub anywhere_patterns: Vec<String>,
    /// G.2 "if the words in the flagged lines represent more than 5% of the total document
    /// words, the document is discarded".
    pub max_removed_word_fraction: f64,
}

impl Default for LineCorrectionConfig {
    fn default() -> Self {
        let words = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        LineCorrectionConfig {
            enabled: true,
            max_uppercase_char_fraction: 0.5,
            max_numeric_char_fraction: 0.999999,
            counter_words: words(&[
                "likes",
                "shares",
                "comments",
                "retweets",
                "reposts",
                "quotes",
                "bookmarks",
                "upvotes",
                "downvotes",
                "downloads",
                "views",
                "followers",
            ]),
            min_line_words: 2,
            max_pattern_line_words: 10,
            prefix_patterns: words(&["sign-in"]),
            suffix_patterns: words(&["read more..."]),
            anywhere_patterns: words(&["items in cart"]),
            max_removed_word_fraction: 0.05,
        }
    }
}

impl LineCorrectionConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (key, value) in [
            (
                "max_uppercase_char_fraction",
                self.max_uppercase_char_fraction,
            ),
            ("max_numeric_char_fraction", self.max_numeric_char_fraction),
            ("max_removed_word_fraction", self.max_removed_word_fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!(
                    "line_correction.{key} must be within 0..=1, got {value}"
                ));
            }
        }
        Ok(())
    }
}

/// RefinedWeb's line-wise corrections, built once from [`LineCorrectionConfig`].
pub struct LineCorrection {
    config: LineCorrectionConfig,
    counter: Option<Regex>,
    /// Pattern rules in DCLM's order: anywhere, suffix, prefix.
    patterns: Vec<Regex>,
}

/// One alternation of literal, case-insensitive patterns between `before` and `after`.
fn alternation(patterns: &[String], before: &str, after: &str) -> Option<Regex> {
    if patterns.is_empty() {
        return None;
    }
    let alts: Vec<String> = patterns.iter().map(|p| regex::escape(p)).collect();
    let source = format!("{before}(?:{}){after}", alts.join("|"));
    RegexBuilder::new(&source)
        .case_insensitive(true)
        .build()
        .ok()
}

impl LineCorrection {
    /// Builds the stage.
    pub fn new(config: &LineCorrectionConfig) -> Self {
        let patterns = [
            alternation(&config.anywhere_patterns, r"\s?", ""),
            alternation(&config.suffix_patterns, r"\s?", "$"),
            alternation(&config.prefix_patterns, "^", r"\s?"),
        ];
        LineCorrection {
            config: config.clone(),
            counter: alternation(&config.counter_words, r"^\W*\d[,.\d]*[kmb]?\s+", r"\W*$"),
            patterns: patterns.into_iter().flatten().collect(),
        }
    }

    /// Whether a line goes whole: uppercase, numeric, counter or single-word.
    fn drops_line(&self, line: &str) -> bool {
        let c = &self.config;
        let (chars, upper, solid, numeric) = char_counts(line);
        if solid == 0 {
            return false;
        }
        upper as f64 / chars as f64 > c.max_uppercase_char_fraction
            || numeric as f64 / solid as f64 > c.max_numeric_char_fraction
            || self.counter.as_ref().is_some_and(|re| re.is_match(line))
            || (c.min_line_words > 0 && !more_words_than(line, c.min_line_words - 1))
    }

    /// The line after the pattern rules: unchanged, edited, or `None` when nothing is left.
    fn edit_line<'a>(&self, line: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        let mut out = std::borrow::Cow::Borrowed(line);
        for re in &self.patterns {
            if more_words_than(&out, self.config.max_pattern_line_words) {
                continue;
            }
            if let std::borrow::Cow::Owned(edited) = re.replace_all(&out, "") {
                if edited.trim().is_empty() {
                    return None;
                }
                out = std::borrow::Cow::Owned(edited);
            }
        }
        Some(out)
    }

    /// The corrected text and the fraction of its words removed, or `None` when nothing changed;
    /// `words` are those of `text`.
    pub fn correct(&self, text: &str, words: &Words) -> Option<(String, f64)> {
        let mut out = String::new();
        let mut removed_words = 0usize;
        let mut changed = false;
        let (mut start, mut word) = (0, 0);
        for (i, line) in text.split('\n').enumerate() {
            let end = start + line.len();
            start = end + 1;
            let line_words = words.counted_until(&mut word, end);
            let kept = if self.drops_line(line) {
                None
            } else {
                self.edit_line(line)
            };
            let unchanged = matches!(&kept, Some(std::borrow::Cow::Borrowed(_)));
            if !unchanged {
                removed_words += line_words;
                if let Some(edited) = &kept {
                    removed_words = removed_words.saturating_sub(count_words(edited));
                }
                changed = true;
            }
            if let Some(kept) = kept {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&kept);
            }
        }
        if !changed {
            return None;
        }
        let total = words.counted();
        let fraction = if total == 0 {
            0.0
        } else {
            removed_words as f64 / total as f64
        };
        Some((out.trim().to_string(), fraction))
    }
}

/// Characters of `line`, and how many are uppercase, not whitespace, and numeric (and not
/// whitespace), as `char` tells them.
fn char_counts(line: &str) -> (usize, usize, usize, usize) {
    if !line.is_ascii() {
        let (mut chars, mut upper, mut solid, mut numeric) = (0, 0, 0, 0);
        for ch in line.chars() {
            chars += 1;
            upper += usize::from(ch.is_uppercase());
            if !ch.is_whitespace() {
                solid += 1;
                numeric += usize::from(ch.is_numeric());
            }
        }
        return (chars, upper, solid, numeric);
    }
    // Most lines are ASCII, where bytes answer as chars would, without decoding.
    let (mut upper, mut solid, mut numeric) = (0, 0, 0);
    for &b in line.as_bytes() {
        upper += usize::from(b.is_ascii_uppercase());
        solid += usize::from(!is_ascii_space(b));
        numeric += usize::from(b.is_ascii_digit());
    }
    (line.len(), upper, solid, numeric)
}

/// `char::is_whitespace` for an ASCII byte (which, unlike `u8::is_ascii_whitespace`, counts
/// the vertical tab).
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ')
}

/// Whether `line` has more than `n` whitespace-separated words; stops counting there.
fn more_words_than(line: &str, n: usize) -> bool {
    if line.is_ascii() {
        let words = line.as_bytes().split(|&b| is_ascii_space(b));
        return words.filter(|w| !w.is_empty()).nth(n).is_some();
    }
    line.split_whitespace().nth(n).is_some()
}

/// Words as the Gopher rules count them (tokens that are not only punctuation), of a line
/// that an edit changed.
fn count_words(text: &str) -> usize {
    text::words(text)
        .iter()
        .filter(|w| !is_symbol_word(w))
        .count()
}

impl Stage for LineCorrection {
    fn name(&self) -> &'static str {
        "line_correction"
    }
    fn apply(&self, doc: &mut Document) -> Verdict {
        let Some((text, removed)) = self.correct(&doc.content, doc.words.of(&doc.content)) else {
            return Verdict::Keep;
        };
        if removed > self.config.max_removed_word_fraction {
            return Verdict::Drop("max_removed_word_fraction");
        }
        if text.is_empty() {
            return Verdict::Drop("empty");
        }
        doc.content = text;
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 94 words of prose.
    fn prose() -> String {
        let sentence = "The river runs past the old mill and the fields beyond it in the spring.";
        let mut text = String::new();
        for _ in 0..6 {
            text.push_str(sentence);
            text.push(' ');
        }
        text.push_str("It is quiet there.");
        text
    }

    fn run(text: &str) -> (Verdict, String) {
        let stage = LineCorrection::new(&LineCorrectionConfig::default());
        let mut doc = Document {
            content: text.to_string(),
            ..Default::default()
        };
        let verdict = stage.apply(&mut doc);
        (verdict, doc.content)
    }

    #[test]
    fn clean_text_is_untouched() {
        let text = format!("{}\n\n{}", prose(), prose());
        assert_eq!(run(&text), (Verdict::Keep, text.clone()));
    }

    #[test]
    fn one_case_per_rule() {
        let p = prose();
        for line in [
            "SUBSCRIBE TO OUR NEWSLETTER",
            "2019",
            "12 345",
            "3 likes",
            "1,204 Comments",
            "Share",
        ] {
            let (verdict, text) = run(&format!("{p}\n{line}\n{p}"));
            assert_eq!(verdict, Verdict::Keep, "{line}");
            assert_eq!(text, format!("{p}\n{p}"), "{line}");
        }
        let edits = [
            ("Sign-in to comment on this", "to comment on this"),
            ("The full story. Read more...", "The full story."),
            ("You have 3 items in cart now", "You have 3 now"),
        ];
        for (line, edited) in edits {
            let (verdict, text) = run(&format!("{p}\n{line}"));
            assert_eq!(
                (verdict, text),
                (Verdict::Keep, format!("{p}\n{edited}")),
                "{line}"
            );
        }
        // Too long for the pattern rules: left alone.
        let long =
            "Read more... about the history of the mill and the river in the village archive";
        assert_eq!(run(&format!("{p}\n{long}")).1, format!("{p}\n{long}"));
    }

    #[test]
    fn drops_when_too_many_words_go() {
        let p = prose();
        // Six removed words of 100: over 5%.
        let text = format!("{p}\nSHARE THIS STORY WITH YOUR FRIENDS");
        assert_eq!(run(&text).0, Verdict::Drop("max_removed_word_fraction"));
        // Two removed words: under 5%.
        assert_eq!(run(&format!("{p}\nLOG IN")).0, Verdict::Keep);
    }
}
