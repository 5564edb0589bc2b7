//! Parity with datatrove 0.10.1's `GopherRepetitionFilter` and `GopherQualityFilter`.
//!
//! `tests/fixtures/gopher_datatrove.jsonl` holds real extracted texts and datatrove's verdicts
//! (made by `scripts/gopher_fixture.py`). Our `repetition` and `quality` stages must agree on at
//! least 99% of them, and every disagreement must be one of `EXPLAINED` below (see also
//! `src/filters/PARITY.md`).

use falconry_refine::filters::quality::{Quality, QualityConfig};
use falconry_refine::filters::repetition::{Repetition, RepetitionConfig};
use falconry_refine::filters::text;

/// Disagreements we understand: (fixture source, filter, why).
const EXPLAINED: &[(&str, &str, &str)] = &[];

/// datatrove's drop reasons, renamed to ours (= our config keys).
fn ours(reason: &str) -> String {
    let renamed = match reason {
        "dup_para_frac" => "duplicate_paragraph_fraction",
        "dup_para_char_frac" => "duplicate_paragraph_char_fraction",
        "dup_line_frac" => "duplicate_line_fraction",
        "dup_line_char_frac" => "duplicate_line_char_fraction",
        "gopher_short_doc" => "min_words",
        "gopher_long_doc" => "max_words",
        "gopher_below_avg_threshold" => "min_mean_word_length",
        "gopher_above_avg_threshold" => "max_mean_word_length",
        "gopher_too_many_hashes" | "gopher_too_many_ellipsis" => "max_symbol_word_ratio",
        "gopher_too_many_bullets" => "max_bullet_line_fraction",
        "gopher_too_many_end_ellipsis" => "max_ellipsis_line_fraction",
        "gopher_below_alpha_threshold" => "min_alpha_word_fraction",
        "gopher_enough_stop_words" => "min_stop_words",
        other => {
            if let Some(n) = other
                .strip_prefix("top_")
                .and_then(|r| r.strip_suffix("_gram"))
            {
                return format!("top_{n}gram_char_fraction");
            }
            if let Some(n) = other
                .strip_prefix("duplicated_")
                .and_then(|r| r.strip_suffix("_n_grams"))
            {
                return format!("duplicate_{n}gram_char_fraction");
            }
            other
        }
    };
    renamed.to_string()
}

#[test]
fn agrees_with_datatrove() {
    let fixture = include_str!("fixtures/gopher_datatrove.jsonl");
    let repetition = Repetition::new(&RepetitionConfig::default());
    let quality = Quality::new(&QualityConfig::default()).expect("default quality stage");
    let (mut rows, mut same_words) = (0usize, 0usize);
    let mut agree = [0usize; 2];
    let mut unexplained = Vec::new();
    let mut seen_explained = Vec::new();
    for line in fixture.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("fixture row is JSON");
        let (source, text) = (
            row["source"].as_str().unwrap_or_default(),
            row["text"].as_str().unwrap_or_default(),
        );
        rows += 1;
        same_words += usize::from(
            text::words(text).len() as u64 == row["words"].as_u64().unwrap_or(u64::MAX),
        );
        let verdicts = [
            (
                "repetition",
                repetition.check(text).unwrap_or("keep"),
                &row["repetition"],
            ),
            (
                "quality",
                quality.check(text, None).unwrap_or("keep"),
                &row["quality"],
            ),
        ];
        for (k, (filter, mine, theirs)) in verdicts.into_iter().enumerate() {
            let theirs = ours(theirs.as_str().unwrap_or_default());
            if mine == theirs {
                agree[k] += 1;
            } else if EXPLAINED
                .iter()
                .any(|&(s, f, _)| s == source && f == filter)
            {
                seen_explained.push((source.to_string(), filter));
            } else {
                unexplained.push(format!(
                    "{source} [{filter}]: ours {mine}, datatrove {theirs}"
                ));
            }
        }
    }
    let pct = |n: usize| 100.0 * n as f64 / rows as f64;
    eprintln!(
        "{rows} texts: repetition {:.2}% agree, quality {:.2}% agree, word counts identical on {:.2}%",
        pct(agree[0]),
        pct(agree[1]),
        pct(same_words)
    );
    assert!(rows >= 300, "fixture too small: {rows}");
    assert!(
        unexplained.is_empty(),
        "unexplained disagreements:\n{}",
        unexplained.join("\n")
    );
    for &(source, filter, _) in EXPLAINED {
        assert!(
            seen_explained
                .iter()
                .any(|(s, f)| s == source && *f == filter),
            "{source} [{filter}] is explained but now agrees: remove it from EXPLAINED"
        );
    }
    assert!(
        pct(agree[0]) >= 99.0 && pct(agree[1]) >= 99.0,
        "agreement below 99%"
    );
}
