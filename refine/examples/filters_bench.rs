//! Per-stage cost of the document filters, one core, on the parity fixture's real texts.
//!
//! ```text
//! cargo run --release -p falconry-refine --example filters_bench -- [--peer PYTHON]
//! ```
//! Prints a Markdown table: documents and MB per second for word splitting, `repetition`,
//! `quality` and `line_correction` each on its own (splitting its own words, as datatrove's
//! filters do), and the three chained as the pipeline runs them (one split, shared); with
//! `--peer`, datatrove 0.10.1's Gopher filters timed by `scripts/gopher_peer_bench.py` in the
//! same run, and our speed-up.

use std::time::{Duration, Instant};

use falconry_refine::filters::line_correction::{LineCorrection, LineCorrectionConfig};
use falconry_refine::filters::quality::{Quality, QualityConfig};
use falconry_refine::filters::repetition::{Repetition, RepetitionConfig};
use falconry_refine::filters::text::{self, Words};
use falconry_refine::{Document, Stage, Verdict};

const FIXTURE: &str = include_str!("../tests/fixtures/gopher_datatrove.jsonl");

/// Documents per second of `f` over `texts`: the fastest of the passes made in two seconds,
/// which other work on a shared machine slows least.
fn rate(texts: &[String], mut f: impl FnMut(&str) -> usize) -> f64 {
    let start = Instant::now();
    let (mut best, mut sink) = (Duration::MAX, 0usize);
    while start.elapsed() < Duration::from_secs(2) {
        let pass = Instant::now();
        for t in texts {
            sink = sink.wrapping_add(f(t));
        }
        best = best.min(pass.elapsed());
    }
    std::hint::black_box(sink);
    texts.len() as f64 / best.as_secs_f64()
}

fn peer(python: &str) -> Option<serde_json::Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/gopher_peer_bench.py"
    );
    let out = std::process::Command::new(python)
        .arg(script)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

fn main() {
    let texts: Vec<String> = FIXTURE
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .filter(|t| !t.is_empty())
        .collect();
    let mb_per_doc = texts.iter().map(String::len).sum::<usize>() as f64 / texts.len() as f64 / 1e6;
    let repetition = Repetition::new(&RepetitionConfig::default());
    let quality = Quality::new(&QualityConfig::default()).expect("default quality stage");
    let line_correction = LineCorrection::new(&LineCorrectionConfig::default());
    let rows = [
        (
            "words (text::split_words)",
            "words",
            rate(&texts, |t| text::words(t).len()),
        ),
        (
            "repetition",
            "repetition",
            rate(&texts, |t| repetition.check(t).map_or(0, str::len)),
        ),
        (
            "quality",
            "quality",
            rate(&texts, |t| quality.check(t, None).map_or(0, str::len)),
        ),
        (
            "line_correction",
            "",
            rate(&texts, |t| {
                line_correction
                    .correct(t, &Words::new(t))
                    .map_or(0, |(s, _)| s.len())
            }),
        ),
        (
            "the three chained, words shared",
            "",
            rate(&texts, |t| {
                let mut doc = Document {
                    content: t.to_string(),
                    ..Default::default()
                };
                let stages: [&dyn Stage; 3] = [&repetition, &quality, &line_correction];
                stages
                    .iter()
                    .take_while(|s| s.apply(&mut doc) == Verdict::Keep)
                    .count()
            }),
        ),
    ];
    // The funnel on these texts, as the pipeline chains the stages.
    let (mut after_repetition, mut after_quality, mut after_lines) = (0, 0, 0);
    for t in &texts {
        if repetition.check(t).is_some() {
            continue;
        }
        after_repetition += 1;
        if quality.check(t, None).is_some() {
            continue;
        }
        after_quality += 1;
        let dropped = line_correction
            .correct(t, &Words::new(t))
            .is_some_and(|(text, removed)| {
                removed > LineCorrectionConfig::default().max_removed_word_fraction
                    || text.is_empty()
            });
        after_lines += usize::from(!dropped);
    }
    let args: Vec<String> = std::env::args().collect();
    let peer = args
        .iter()
        .position(|a| a == "--peer")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| peer(p));
    println!(
        "{} texts, {:.1} KB on average; one core\n",
        texts.len(),
        mb_per_doc * 1e3
    );
    println!(
        "funnel: {} texts -> repetition {after_repetition} -> quality {after_quality} -> line_correction {after_lines}\n",
        texts.len()
    );
    println!("| stage | docs/s | MB/s | datatrove 0.10.1 docs/s | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for (name, key, docs) in rows {
        let theirs = peer.as_ref().and_then(|p| p[key].as_f64());
        let (theirs, ratio) = match theirs {
            Some(t) => (format!("{t:.0}"), format!("{:.0}x", docs / t)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {name} | {docs:.0} | {:.1} | {theirs} | {ratio} |",
            docs * mb_per_doc
        );
    }
}
