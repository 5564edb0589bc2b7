//! `cargo bench -p falconry-refine --bench refine`: the refine stage per core, beside datatrove in the same run.
//!
//! Two corpora: every `.warc.gz` under `$FALCONRY_TEST_DATA/warc` (real crawls), and a WARC
//! packed here from the real pages of `html/trafilatura-eval` and `extraction-bench` (one
//! response record each). For each: reading (MB/s of decompressed WARC), extraction alone,
//! and the whole stage, each on one rayon thread (= per core), median of `RUNS`. datatrove
//! 0.10.1 runs the same files through `bench/peers/datatrove_refine.py` (needs the peers' venv:
//! `$FALCONRY_PYTHON`, else `.venv/bin/python`); its figure excludes its start-up.
//! Prints one Markdown table.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use falconry_refine::run::{self, RunOptions, Task};
use falconry_refine::warc::writer::WarcWriter;
use falconry_refine::{Extractor, ReadItem, RefineConfig, WarcReader};
use falconry_refine::test_data_dir as data_dir;

const RUNS: usize = 5;

fn files_under(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, suffix, out);
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
    out.sort();
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("open")).read_to_end(&mut bytes).expect("gunzip");
    bytes
}

/// Packs real HTML pages into one gzip-per-record WARC, as CommonCrawl ships them.
fn html_pack(data: &Path, out: &Path) -> PathBuf {
    let mut pages = Vec::new();
    files_under(&data.join("html/trafilatura-eval/pages"), ".html.gz", &mut pages);
    files_under(&data.join("extraction-bench/html"), ".html.gz", &mut pages);
    let path = out.join("html-pack.warc.gz");
    let mut w = WarcWriter::gzip(std::fs::File::create(&path).expect("create pack"));
    w.warcinfo("html-pack.warc.gz", 1_700_000_000, &[("isPartOf", "CC-MAIN-2023-50")]).expect("write");
    for (i, page) in pages.iter().enumerate() {
        let body = gunzip(page);
        let url = format!("https://pack.example.com/{i}");
        w.response(&url, 1_700_000_000 + i as i64, 200, &[("Content-Type", "text/html")], &body).expect("write");
    }
    w.finish().expect("finish");
    path
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median seconds of `RUNS` calls of `f` on one thread.
fn time_one_core(mut f: impl FnMut() + Send) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("pool");
    pool.install(|| {
        median(
            (0..RUNS)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .collect(),
        )
    })
}

struct Corpus {
    name: &'static str,
    files: Vec<PathBuf>,
}

#[derive(Default)]
struct Row {
    corpus: &'static str,
    step: &'static str,
    docs: u64,
    seconds: f64,
    mb: f64,
    peer_docs_per_s: Option<f64>,
}

fn peer(files: &[PathBuf], mode: &str) -> Option<f64> {
    let python = std::env::var("FALCONRY_PYTHON").ok().or_else(|| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
        venv.exists().then(|| venv.to_string_lossy().into_owned())
    })?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/peers/datatrove_refine.py");
    let out = Command::new(python).arg(script).arg("--mode").arg(mode).args(files).output().ok()?;
    let line = String::from_utf8_lossy(&out.stdout).lines().last()?.to_string();
    let v: serde_json::Value = serde_json::from_str(&line).ok()?;
    v["docs_per_s"].as_f64()
}

fn main() {
    let data = data_dir();
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut cc = Vec::new();
    files_under(&data.join("warc"), ".warc.gz", &mut cc);
    let corpora = [
        Corpus { name: "shared/data/warc", files: cc },
        Corpus { name: "HTML pack", files: vec![html_pack(&data, scratch.path())] },
    ];
    let config = RefineConfig::default();
    let extractor = Extractor::new(&config.extraction);
    let mut rows = Vec::new();
    for (c, corpus) in corpora.iter().enumerate() {
        let raw_mb: f64 = corpus.files.iter().map(|f| gunzip(f).len() as f64 / 1e6).sum();
        let mut htmls = Vec::new();
        for f in &corpus.files {
            for item in WarcReader::open(f, &config.read).expect("open") {
                if let ReadItem::Doc(d) = item {
                    htmls.extend(d.html);
                }
            }
        }
        let docs = htmls.len() as u64;
        let html_mb = htmls.iter().map(|h| h.len() as f64 / 1e6).sum();
        let read = time_one_core(|| {
            for f in &corpus.files {
                WarcReader::open(f, &config.read).expect("open").for_each(drop);
            }
        });
        rows.push(Row { corpus: corpus.name, step: "read", docs, seconds: read, mb: raw_mb, ..Default::default() });
        let extract = time_one_core(|| {
            for h in &htmls {
                std::hint::black_box(extractor.extract(h));
            }
        });
        let peer_extract = peer(&corpus.files, "extraction");
        rows.push(Row { corpus: corpus.name, step: "extraction", docs, seconds: extract, mb: html_mb, peer_docs_per_s: peer_extract });
        let mut n = 0;
        let stage = time_one_core(|| {
            let out = scratch.path().join(format!("run-{c}-{n}"));
            n += 1;
            let opts = RunOptions { inputs: &corpus.files, output: &out, task: Task::default(), explain: None, on_file_done: &|_| {} };
            run::refine(&config, &opts).expect("refine");
        });
        let peer_full = peer(&corpus.files, "full");
        rows.push(Row { corpus: corpus.name, step: "whole stage", docs, seconds: stage, mb: raw_mb, peer_docs_per_s: peer_full });
    }
    println!("| corpus | step | docs | docs/s/core | MB/s/core | datatrove docs/s/core | ratio |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let dps = r.docs as f64 / r.seconds;
        let (peer, ratio) = match r.peer_docs_per_s {
            Some(p) => (format!("{p:.1}"), format!("{:.0}x", dps / p)),
            None => ("-".into(), "-".into()),
        };
        println!("| {} | {} | {} | {:.0} | {:.1} | {} | {} |", r.corpus, r.step, r.docs, dps, r.mb / r.seconds, peer, ratio);
    }
    println!("\nMB/s: decompressed WARC for read and whole stage, decoded HTML for extraction. One rayon thread; median of {RUNS} runs.");
}
