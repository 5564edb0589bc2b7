//! Per-core cost of the `url_filter` and `language_id` stages, as a Markdown table.
//!
//! `cargo bench -p falconry-refine --bench filters` (one thread: the numbers are per core).
//! Inputs are real: the texts of `refine/tests/fixtures/lid_parity.jsonl` (pages from
//! `../shared/data`) and URLs from the shared URL list and extraction-bench ground truth.
//! Lists come from `FALCONRY_TEST_DATA` (default `../shared/data`); set
//! `FALCONRY_URL_BLOCKLIST` to datatrove's `url_filterblacklistsv0_3_0.tar.gz` to load the full
//! 4.56M-domain list instead of the shared 1% sample (its load time and memory are reported).

use std::path::{Path, PathBuf};
use std::time::Instant;

use falconry_refine::filters::language_id::{LanguageId, LanguageIdConfig};
use falconry_refine::filters::url_filter::{UrlFilter, UrlFilterConfig};
use falconry_refine::test_data_dir as data;
use falconry_refine::{Document, Stage};

/// Peak and current resident memory of this process, in MiB (Linux).
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Runs `stage` over `docs` `rounds` times on one thread; returns (docs/s, MB/s, kept fraction)
/// of the fastest round, which other work on a shared machine slows least.
fn measure(stage: &dyn Stage, docs: &[Document], bytes: usize, rounds: usize) -> (f64, f64, f64) {
    let mut best = f64::INFINITY;
    let mut kept = 0usize;
    for _ in 0..rounds {
        let mut copies = docs.to_vec();
        let start = Instant::now();
        kept = copies
            .iter_mut()
            .map(|d| stage.apply(d))
            .filter(|v| *v == falconry_refine::Verdict::Keep)
            .count();
        best = best.min(start.elapsed().as_secs_f64());
    }
    (
        docs.len() as f64 / best,
        bytes as f64 / best / 1e6,
        kept as f64 / docs.len() as f64,
    )
}

fn main() {
    // Cargo passes `--bench`; there are no options.
    let data = data();
    let lists = data.join("filters/datatrove-url-filter");
    let full = std::env::var_os("FALCONRY_URL_BLOCKLIST").map(PathBuf::from);

    let (peak_before, rss_before) = memory_mib();
    let start = Instant::now();
    let url_filter = UrlFilter::new(&UrlFilterConfig {
        blocklist_domains: Some(
            full.clone()
                .unwrap_or_else(|| lists.join("blocklist_domains.sample-every-100th.txt")),
        ),
        blocklist_urls: Some(lists.join("blocklist_urls.txt")),
        strict_words: Some(lists.join("banned_subwords.txt")),
        hard_words: Some(lists.join("banned_words.txt")),
        soft_words: Some(lists.join("soft_banned_words.txt")),
        ..UrlFilterConfig::default()
    })
    .expect("url lists load");
    let load_secs = start.elapsed().as_secs_f64();
    let (peak_after, rss_after) = memory_mib();

    // URLs: the listed (adult) URLs as crawled pages, and the ground-truth news URLs.
    let mut urls: Vec<String> = std::fs::read_to_string(lists.join("blocklist_urls.txt"))
        .expect("URL list")
        .lines()
        .map(|l| format!("https://{l}"))
        .collect();
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("extraction-bench/ground-truth.json")).expect("truth"),
    )
    .expect("truth JSON");
    let clean: Vec<String> = truth
        .as_object()
        .map(|o| {
            o.values()
                .filter_map(|v| v["url"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // As many clean URLs as listed ones: a crawl is mostly clean.
    urls.extend(clean.iter().cycle().take(urls.len()).cloned());
    let url_docs: Vec<Document> = urls
        .iter()
        .map(|u| Document {
            url: u.clone(),
            ..Default::default()
        })
        .collect();
    let url_bytes: usize = urls.iter().map(String::len).sum();

    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lid_parity.jsonl");
    let text_docs: Vec<Document> = std::fs::read_to_string(fixture)
        .expect("fixture")
        .lines()
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).expect("fixture row");
            Document {
                content: row["text"].as_str().unwrap_or_default().into(),
                ..Default::default()
            }
        })
        .collect();
    let text_bytes: usize = text_docs.iter().map(|d| d.content.len()).sum();
    let language_id = LanguageId::new(&LanguageIdConfig::default()).expect("lid model");

    let rows = [
        (
            "url_filter",
            measure(&url_filter, &url_docs, url_bytes, 20),
            url_docs.len(),
        ),
        (
            "language_id",
            measure(&language_id, &text_docs, text_bytes, 30),
            text_docs.len(),
        ),
    ];
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("| stage | docs | docs/s per core | MB/s per core | kept |");
    println!("|---|---:|---:|---:|---:|");
    for (name, (docs_s, mb_s, kept), n) in rows {
        println!(
            "| {name} | {n} | {docs_s:.0} | {mb_s:.1} | {:.1}% |",
            kept * 100.0
        );
    }
    println!();
    println!(
        "url_filter lists ({}): loaded in {load_secs:.2} s; resident memory +{:.0} MiB (peak +{:.0} MiB). \
         One thread, fastest of 20 / 30 rounds; machine: {threads} hardware threads. language_id MB/s counts text bytes; \
         url_filter MB/s counts URL bytes.",
        if full.is_some() { "full 4.56M-domain list" } else { "1% domain sample" },
        rss_after - rss_before,
        peak_after - peak_before,
    );
}
