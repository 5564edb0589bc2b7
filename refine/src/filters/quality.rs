//! The `quality` stage: Gopher's quality filters (Rae et al. 2021, App. A.1.1), which
//! RefinedWeb applies after the repetition filters (Penedo et al. 2023, §3.1, App. G.1).
//!
//! A document is dropped by the first rule that fires, in the order of datatrove's
//! `GopherQualityFilter`:
//!
//! | rule (= drop reason)         | Gopher's wording                                        | default |
//! |------------------------------|---------------------------------------------------------|---------|
//! | `min_words`, `max_words`     | between 50 and 100,000 words                            | 50, 100000 |
//! | `min_mean_word_length`, `max_mean_word_length` | mean word length 3 to 10 characters   | 3, 10   |
//! | `max_symbol_word_ratio`      | symbol-to-word ratio > 0.1, for `#` or for ellipses     | 0.1     |
//! | `max_bullet_line_fraction`   | > 90% of lines starting with a bullet point             | 0.9     |
//! | `max_ellipsis_line_fraction` | > 30% of lines ending with an ellipsis                  | 0.3     |
//! | `min_alpha_word_fraction`    | < 80% of words with at least one alphabetic character   | 0.8     |
//! | `min_stop_words`             | fewer than 2 of the, be, to, of, and, that, have, with   | 2       |
//!
//! As datatrove 0.10.1 counts: words come from [`split_words`](super::text::split_words); the word count and the
//! mean length leave out punctuation-only tokens, while the symbol and alphabetic ratios divide
//! by all tokens; `#`, `...` and `…` are counted in the raw text; bullets are `•` or `-` after
//! leading whitespace and lines are Python's `splitlines()`; stop words match whole tokens,
//! case-sensitively, each distinct one counted once. Stop words can be set per language (for
//! documents whose `language` was set by `language_id`); the default list is Gopher's.
//!
//! Multilingual mode (RefinedWeb-Europe: `language_id.languages` set to its ten languages):
//! `stop_words_iso` points at stopwords-iso's JSON, and a document labelled with one of
//! `stop_words_iso_languages` must hold `min_stop_words` distinct words of its language's list
//! (lowercase, so matched as datatrove matches, case-sensitively); `stop_words_by_language`
//! still wins for the languages it lists, and any other document keeps Gopher's English list.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::language_id::{StopWords as IsoStopWords, REFINEDWEB_EUROPE};
use super::text::{is_space, py_splitlines, Words};
use crate::{Document, Result, Stage, Verdict};

/// The `quality` stage's settings; defaults are Gopher's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// Whether the stage runs.
    pub enabled: bool,
    /// Gopher "50 .. 100,000 words": fewest words (punctuation tokens left out).
    pub min_words: usize,
    /// Gopher "50 .. 100,000 words": most words.
    pub max_words: usize,
    /// Gopher "mean word length 3 .. 10 characters": shortest mean.
    pub min_mean_word_length: f64,
    /// Gopher "mean word length 3 .. 10 characters": longest mean.
    pub max_mean_word_length: f64,
    /// Gopher "symbol-to-word ratio greater than 0.1 for either the hash symbol or the
    /// ellipsis": the most `#` per word, and the most `...`/`…` per word.
    pub max_symbol_word_ratio: f64,
    /// Gopher "more than 90% of lines starting with a bullet point".
    pub max_bullet_line_fraction: f64,
    /// Gopher "more than 30% ending with an ellipsis".
    pub max_ellipsis_line_fraction: f64,
    /// Gopher "80% of words in a document contain at least one alphabetic character".
    pub min_alpha_word_fraction: f64,
    /// Gopher "at least two of the following English words": fewest distinct stop words.
    pub min_stop_words: usize,
    /// Gopher's stop words: the, be, to, of, and, that, have, with.
    pub stop_words: Vec<String>,
    /// Stop words for documents whose `language` is a key here (e.g. `fr = ["le", ...]`);
    /// other documents use `stop_words_iso`'s list of their language, else `stop_words`.
    pub stop_words_by_language: BTreeMap<String, Vec<String>>,
    /// Multilingual mode: stopwords-iso's `stopwords-iso.json` (`{"de": ["aber", ...], ...}`),
    /// whose lists of `stop_words_iso_languages` are loaded. Unset: Gopher's English only.
    pub stop_words_iso: Option<PathBuf>,
    /// The languages taken from `stop_words_iso`: RefinedWeb-Europe's ten by default.
    pub stop_words_iso_languages: Vec<String>,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            enabled: true,
            min_words: 50,
            max_words: 100_000,
            min_mean_word_length: 3.0,
            max_mean_word_length: 10.0,
            max_symbol_word_ratio: 0.1,
            max_bullet_line_fraction: 0.9,
            max_ellipsis_line_fraction: 0.3,
            min_alpha_word_fraction: 0.8,
            min_stop_words: 2,
            stop_words: ["the", "be", "to", "of", "and", "that", "have", "with"]
                .map(String::from)
                .to_vec(),
            stop_words_by_language: BTreeMap::new(),
            stop_words_iso: None,
            stop_words_iso_languages: REFINEDWEB_EUROPE.map(String::from).to_vec(),
        }
    }
}

impl QualityConfig {
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if self.min_words > self.max_words {
            return Err(format!(
                "quality.min_words ({}) exceeds quality.max_words ({})",
                self.min_words, self.max_words
            ));
        }
        if self.min_mean_word_length > self.max_mean_word_length {
            return Err("quality.min_mean_word_length exceeds quality.max_mean_word_length".into());
        }
        for (key, value) in [
            ("max_bullet_line_fraction", self.max_bullet_line_fraction),
            (
                "max_ellipsis_line_fraction",
                self.max_ellipsis_line_fraction,
            ),
            ("min_alpha_word_fraction", self.min_alpha_word_fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("quality.{key} must be within 0..=1, got {value}"));
            }
        }
        if self.max_symbol_word_ratio.is_nan() || self.max_symbol_word_ratio < 0.0 {
            return Err(format!(
                "quality.max_symbol_word_ratio must be >= 0, got {}",
                self.max_symbol_word_ratio
            ));
        }
        Ok(())
    }
}

/// A stop-word list as a lookup from word to its index, so distinct hits can be counted.
type StopWords = HashMap<String, usize>;

fn stop_words<'a>(list: impl IntoIterator<Item = &'a String>) -> StopWords {
    let mut map = StopWords::new();
    for w in list {
        let next = map.len();
        map.entry(w.clone()).or_insert(next);
    }
    map
}

/// Gopher's quality rules, built once from [`QualityConfig`].
pub struct Quality {
    config: QualityConfig,
    stop_words: StopWords,
    stop_words_by_language: HashMap<String, StopWords>,
}

impl Quality {
    /// Builds the stage, reading `stop_words_iso` when it is set.
    pub fn new(config: &QualityConfig) -> Result<Self> {
        let mut by_language = HashMap::new();
        if let Some(path) = &config.stop_words_iso {
            let iso = IsoStopWords::load_iso_json(path, &config.stop_words_iso_languages)?;
            for language in &config.stop_words_iso_languages {
                if let Some(words) = iso.get(language) {
                    // Sorted: the same indices on every run.
                    let mut words: Vec<&String> = words.iter().collect();
                    words.sort();
                    by_language.insert(language.clone(), stop_words(words));
                }
            }
        }
        for (language, words) in &config.stop_words_by_language {
            by_language.insert(language.clone(), stop_words(words));
        }
        Ok(Quality {
            config: config.clone(),
            stop_words: stop_words(&config.stop_words),
            stop_words_by_language: by_language,
        })
    }

    /// The rule a text breaks, if any (`None` keeps it); `language` picks the stop words.
    pub fn check(&self, text: &str, language: Option<&str>) -> Option<&'static str> {
        self.check_words(text, &Words::new(text), language)
    }

    /// [`Quality::check`] with the words of `text` already split.
    pub fn check_words(
        &self,
        text: &str,
        words: &Words,
        language: Option<&str>,
    ) -> Option<&'static str> {
        let c = &self.config;
        let (n_words, word_chars) = (words.counted(), words.counted_chars());
        if n_words < c.min_words {
            return Some("min_words");
        }
        if n_words > c.max_words {
            return Some("max_words");
        }
        if n_words > 0 {
            let mean = word_chars as f64 / n_words as f64;
            if mean < c.min_mean_word_length {
                return Some("min_mean_word_length");
            }
            if mean > c.max_mean_word_length {
                return Some("max_mean_word_length");
            }
        }
        // Ratios over all tokens, punctuation included, as datatrove divides.
        let tokens = words.len().max(1) as f64;
        let hashes = memchr::memchr_iter(b'#', text.as_bytes()).count();
        if hashes as f64 / tokens > c.max_symbol_word_ratio {
            return Some("max_symbol_word_ratio");
        }
        let ellipses = text.matches("...").count() + text.matches('…').count();
        if ellipses as f64 / tokens > c.max_symbol_word_ratio {
            return Some("max_symbol_word_ratio");
        }
        let (mut lines, mut bullets, mut trailing) = (0usize, 0usize, 0usize);
        for line in py_splitlines(text) {
            lines += 1;
            let start = line.trim_start_matches(is_space);
            bullets += usize::from(start.starts_with('•') || start.starts_with('-'));
            let end = line.trim_end_matches(is_space);
            trailing += usize::from(end.ends_with("...") || end.ends_with('…'));
        }
        let lines = lines.max(1) as f64;
        if bullets as f64 / lines > c.max_bullet_line_fraction {
            return Some("max_bullet_line_fraction");
        }
        if trailing as f64 / lines > c.max_ellipsis_line_fraction {
            return Some("max_ellipsis_line_fraction");
        }
        if (words.alphabetic() as f64) / tokens < c.min_alpha_word_fraction {
            return Some("min_alpha_word_fraction");
        }
        let stop = language
            .and_then(|l| self.stop_words_by_language.get(l))
            .unwrap_or(&self.stop_words);
        if count_distinct(words.iter(text), stop, c.min_stop_words) < c.min_stop_words {
            return Some("min_stop_words");
        }
        None
    }
}

/// Distinct stop words among `words`, counting no further than `enough`.
fn count_distinct<'a>(
    words: impl Iterator<Item = &'a str>,
    stop: &StopWords,
    enough: usize,
) -> usize {
    let mut seen = vec![false; stop.len()];
    let mut found = 0;
    for w in words {
        if found >= enough {
            break;
        }
        if let Some(&i) = stop.get(w) {
            if !seen[i] {
                seen[i] = true;
                found += 1;
            }
        }
    }
    found
}

impl Stage for Quality {
    fn name(&self) -> &'static str {
        "quality"
    }
    fn apply(&self, doc: &mut Document) -> Verdict {
        let words = doc.words.of(&doc.content);
        match self.check_words(&doc.content, words, doc.language.as_deref()) {
            Some(reason) => Verdict::Drop(reason),
            None => Verdict::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "The village sits on the bank of a slow river, and most of the people who live \
        there have worked the same fields for generations. In spring the water rises to the edge of \
        the orchards; in autumn the children help with the harvest and the markets fill with apples, \
        pears and walnuts. Visitors come for the old stone bridge, which was built in the twelfth \
        century and still carries carts to the mill that gives the place its name.";

    const NO_STOP: &str = "Visitors often admire old stone bridges near quiet rivers while farmers grow \
        apples pears plums cherries or walnuts. Children help during harvest time. Markets open early every \
        morning where traders sell bread cheese honey wine fish eggs herbs or flowers. Travellers arrive by \
        train or bus, stay in small inns, eat local food, walk along green hills or visit churches museums \
        gardens castles lakes or forests.";

    fn check(text: &str) -> Option<&'static str> {
        Quality::new(&QualityConfig::default())
            .unwrap()
            .check(text, None)
    }

    #[test]
    fn clean_text_passes() {
        assert_eq!(check(CLEAN), None);
    }

    #[test]
    fn one_case_per_reason() {
        assert_eq!(check("The cat and the dog."), Some("min_words"));
        let config = QualityConfig {
            max_words: 60,
            ..Default::default()
        };
        assert_eq!(
            Quality::new(&config)
                .unwrap()
                .check(&format!("{CLEAN} {CLEAN}"), None),
            Some("max_words")
        );
        assert_eq!(
            check(&"a of the is it to be an on ".repeat(6)),
            Some("min_mean_word_length")
        );
        assert_eq!(
            check(&format!("the and {}", "extraordinarily ".repeat(60))),
            Some("max_mean_word_length")
        );
        assert_eq!(
            check(&format!("{CLEAN} {}", "#tag ".repeat(12))),
            Some("max_symbol_word_ratio")
        );
        assert_eq!(
            check(&format!("{CLEAN} {}", "wait... ".repeat(12))),
            Some("max_symbol_word_ratio")
        );
        let bullets = format!(
            "- {CLEAN}\n{}",
            "- an item of the list with words\n".repeat(10)
        );
        assert_eq!(check(&bullets), Some("max_bullet_line_fraction"));
        let ellipses = format!("{CLEAN}\n{}", "and then the story goes on…\n".repeat(2));
        assert_eq!(check(&ellipses), Some("max_ellipsis_line_fraction"));
        assert_eq!(
            check(&format!("{CLEAN} {}", "1 2 3 4 5 6 7 8 9 10 ".repeat(4))),
            Some("min_alpha_word_fraction")
        );
        assert_eq!(check(NO_STOP), Some("min_stop_words"));
    }

    /// Multilingual mode on real pages of `../shared/data` (trafilatura's evaluation set): each
    /// is kept by `language_id` in its language, and passes `min_stop_words` with its
    /// language's stopwords-iso list where Gopher's English list drops it.
    #[test]
    fn multilingual_stop_words_from_stopwords_iso() {
        use crate::filters::language_id::{LanguageId, LanguageIdConfig};
        use crate::filters::test_data;
        use std::io::Read;

        let languages: Vec<String> = REFINEDWEB_EUROPE.map(String::from).to_vec();
        let lid = LanguageId::new(&LanguageIdConfig {
            languages,
            ..Default::default()
        })
        .unwrap();
        let extractor = crate::Extractor::new(&Default::default());
        let english = Quality::new(&QualityConfig::default()).unwrap();
        let iso = test_data().join("filters/stopwords-iso/stopwords-iso.json");
        let europe = Quality::new(&QualityConfig {
            stop_words_iso: Some(iso.clone()),
            ..Default::default()
        })
        .unwrap();
        let pages = [
            ("bfn.de-verden", "de"),
            ("blog.mondediplo.net.turpitude", "fr"),
            ("24horas.cl-segundo", "es"),
            ("campograndenews.com.br-adolescente", "pt"),
        ];
        for (page, language) in pages {
            let path = test_data().join(format!("html/trafilatura-eval/pages/{page}.html.gz"));
            let mut html = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
                .read_to_string(&mut html)
                .unwrap();
            let mut doc = Document {
                html: Some(html),
                ..Default::default()
            };
            assert_eq!(extractor.apply(&mut doc), Verdict::Keep, "{page}");
            assert_eq!(lid.apply(&mut doc), Verdict::Keep, "{page}");
            assert_eq!(doc.language.as_deref(), Some(language), "{page}");
            assert_eq!(
                english.apply(&mut doc),
                Verdict::Drop("min_stop_words"),
                "{page}"
            );
            assert_eq!(europe.apply(&mut doc), Verdict::Keep, "{page}");
        }
        // English documents keep Gopher's list; a language missing from the file is an error.
        assert_eq!(europe.check(CLEAN, Some("en")), None);
        assert_eq!(europe.check(NO_STOP, Some("en")), Some("min_stop_words"));
        let missing = QualityConfig {
            stop_words_iso: Some(iso),
            stop_words_iso_languages: vec!["xx".into()],
            ..Default::default()
        };
        assert!(Quality::new(&missing).is_err());
    }

    #[test]
    fn stop_words_follow_language() {
        let mut config = QualityConfig::default();
        config
            .stop_words_by_language
            .insert("fr".into(), vec!["le".into(), "la".into()]);
        let quality = Quality::new(&config).unwrap();
        assert_eq!(quality.check(CLEAN, Some("fr")), Some("min_stop_words"));
        assert_eq!(quality.check(CLEAN, Some("de")), None);
    }
}
