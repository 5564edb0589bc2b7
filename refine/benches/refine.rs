//! `cargo bench -p falconry-refine --bench refine`: the refine stage per core, stage by stage,
//! beside datatrove in the same run.
//!
//! Two corpora: every `.warc.gz` under `$FALCONRY_TEST_DATA/warc` (real crawls), and a WARC
//! packed here from the real pages of `html/trafilatura-eval` and `extraction-bench` (one
//! response record each). For each: reading (MB/s of decompressed WARC); each stage of the
//! default pipeline alone, on the documents that the stages before it kept, as they left them
//! (so the filters after the first that splits words reuse its split, as in a run); and the
//! whole stage (`run::refine`: read, every stage, Parquet out). Each on one thread (= per core),
//! the fastest of `RUNS` runs (the one that other work on a shared machine slowed least). Then
//! the filters together against extraction, in time per document read.
//!
//! datatrove 0.10.1 runs the same files through `bench/peers/datatrove_refine.py` (needs the
//! peers' venv: `$FALCONRY_PYTHON`, else `.venv/bin/python`): each of its steps alone on what its
//! earlier steps kept (`--mode stages`: its own extraction, so its later steps see other texts
//! than ours), and its whole pipeline (`--mode full`); start-up excluded. datatrove has no
//! line-wise corrections. Prints one Markdown table.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use falconry_refine::folder::Task;
use falconry_refine::run::expand_inputs_with;
use falconry_refine::run::{self, RunOptions};
use falconry_refine::test_data_dir as data_dir;
use falconry_refine::warc::writer::WarcWriter;
use falconry_refine::{Document, Pipeline, ReadItem, RefineConfig, Stage, Verdict, WarcReader};

const RUNS: usize = 15;

/// The files under `dirs` whose names end with `suffix`, sorted.
fn files_under(dirs: &[PathBuf], suffix: &str) -> Vec<PathBuf> {
    expand_inputs_with(dirs, |p| p.to_string_lossy().ends_with(suffix)).expect("shared data files")
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_end(&mut bytes)
        .expect("gunzip");
    bytes
}

/// Packs real HTML pages into one gzip-per-record WARC, as CommonCrawl ships them.
fn html_pack(data: &Path, out: &Path) -> PathBuf {
    let pages = files_under(
        &[
            data.join("html/trafilatura-eval/pages"),
            data.join("extraction-bench/html"),
        ],
        ".html.gz",
    );
    let path = out.join("html-pack.warc.gz");
    let mut w = WarcWriter::gzip(std::fs::File::create(&path).expect("create pack"));
    w.warcinfo(
        "html-pack.warc.gz",
        1_700_000_000,
        &[("isPartOf", "CC-MAIN-2023-50")],
    )
    .expect("write");
    for (i, page) in pages.iter().enumerate() {
        let body = gunzip(page);
        let url = format!("https://pack.example.com/{i}");
        w.response(
            &url,
            1_700_000_000 + i as i64,
            200,
            &[("Content-Type", "text/html")],
            &body,
        )
        .expect("write");
    }
    w.finish().expect("finish");
    path
}

fn fastest(xs: impl IntoIterator<Item = f64>) -> f64 {
    xs.into_iter().fold(f64::INFINITY, f64::min)
}

/// Fewest seconds of `RUNS` calls of `f` on one thread.
fn time_one_core(mut f: impl FnMut() + Send) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    pool.install(|| {
        fastest((0..RUNS).map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        }))
    })
}

/// Fewest seconds of `RUNS` runs of `stage` over fresh copies of `input` (copying untimed), and
/// what it kept.
fn time_stage(stage: &dyn Stage, input: &[Document]) -> (f64, Vec<Document>) {
    let mut kept = Vec::new();
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let mut docs = input.to_vec();
        let t = Instant::now();
        let verdicts: Vec<Verdict> = docs.iter_mut().map(|d| stage.apply(d)).collect();
        times.push(t.elapsed().as_secs_f64());
        kept = docs
            .into_iter()
            .zip(verdicts)
            .filter(|(_, v)| *v == Verdict::Keep)
            .map(|(d, _)| d)
            .collect();
    }
    (fastest(times), kept)
}

struct Corpus {
    name: &'static str,
    files: Vec<PathBuf>,
}

#[derive(Default)]
struct Row {
    corpus: &'static str,
    step: &'static str,
    docs: usize,
    seconds: f64,
    /// Megabytes the step reads, when a byte rate means something for it.
    mb: Option<f64>,
    peer_docs_per_s: Option<f64>,
}

/// Runs the datatrove script in `mode` on `files`; its last stdout line, as JSON.
fn peer(files: &[PathBuf], mode: &str) -> Option<serde_json::Value> {
    let python = std::env::var("FALCONRY_PYTHON").ok().or_else(|| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
        venv.exists().then(|| venv.to_string_lossy().into_owned())
    })?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/peers/datatrove_refine.py");
    let out = Command::new(python)
        .arg(script)
        .arg("--mode")
        .arg(mode)
        .args(files)
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()?
        .to_string();
    serde_json::from_str(&line).ok()
}

fn main() {
    let data = data_dir();
    let scratch = tempfile::tempdir().expect("temp dir");
    let cc = files_under(&[data.join("warc")], ".warc.gz");
    let corpora = [
        Corpus {
            name: "shared/data/warc",
            files: cc,
        },
        Corpus {
            name: "HTML pack",
            files: vec![html_pack(&data, scratch.path())],
        },
    ];
    let config = RefineConfig::default();
    let pipeline = Pipeline::from_config(&config).expect("pipeline");
    let mut rows = Vec::new();
    let mut totals = Vec::new();
    for (c, corpus) in corpora.iter().enumerate() {
        let raw_mb: f64 = corpus
            .files
            .iter()
            .map(|f| gunzip(f).len() as f64 / 1e6)
            .sum();
        let mut docs = Vec::new();
        for f in &corpus.files {
            for item in WarcReader::open(f, &config.read).expect("open") {
                if let ReadItem::Doc(d) = item {
                    docs.push(d);
                }
            }
        }
        let read_docs = docs.len();
        let read = time_one_core(|| {
            for f in &corpus.files {
                WarcReader::open(f, &config.read)
                    .expect("open")
                    .for_each(drop);
            }
        });
        rows.push(Row {
            corpus: corpus.name,
            step: "read",
            docs: read_docs,
            seconds: read,
            mb: Some(raw_mb),
            ..Default::default()
        });

        let peer_stages = peer(&corpus.files, "stages");
        let (mut extraction, mut filters) = (0.0, 0.0);
        for stage in pipeline.stages() {
            let mb = match stage.name() {
                "url_filter" => None,
                "extraction" => Some(
                    docs.iter()
                        .filter_map(|d| d.html.as_ref())
                        .map(|h| h.len() as f64 / 1e6)
                        .sum(),
                ),
                _ => Some(docs.iter().map(|d| d.content.len() as f64 / 1e6).sum()),
            };
            let n = docs.len();
            let (seconds, kept) = time_stage(stage.as_ref(), &docs);
            if stage.name() == "extraction" {
                extraction += seconds;
            } else {
                filters += seconds;
            }
            let peer_docs_per_s = peer_stages.as_ref().and_then(|p| {
                let s = &p["stages"][stage.name()];
                Some(s["docs"].as_f64()? / s["seconds"].as_f64()?)
            });
            rows.push(Row {
                corpus: corpus.name,
                step: stage.name(),
                docs: n,
                seconds,
                mb,
                peer_docs_per_s,
            });
            docs = kept;
        }
        totals.push((corpus.name, read_docs, extraction, filters));

        let mut n = 0;
        let stage = time_one_core(|| {
            let out = scratch.path().join(format!("run-{c}-{n}"));
            n += 1;
            let opts = RunOptions {
                inputs: &corpus.files,
                output: &out,
                task: Task::default(),
                explain: None,
                on_file_done: &|_| {},
                allow_changed_inputs: false,
            };
            run::refine(&config, &opts).expect("refine");
        });
        let peer_full = peer(&corpus.files, "full").and_then(|p| p["docs_per_s"].as_f64());
        rows.push(Row {
            corpus: corpus.name,
            step: "whole stage",
            docs: read_docs,
            seconds: stage,
            mb: Some(raw_mb),
            peer_docs_per_s: peer_full,
        });
    }
    println!("| corpus | step | docs in | docs/s/core | ms/doc | MB/s/core | datatrove docs/s/core | ratio |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let dps = r.docs as f64 / r.seconds;
        let mb =
            r.mb.map_or("-".into(), |mb| format!("{:.1}", mb / r.seconds));
        let (peer, ratio) = match r.peer_docs_per_s {
            Some(p) => (format!("{p:.1}"), format!("{:.0}x", dps / p)),
            None => ("-".into(), "-".into()),
        };
        let ms = 1e3 * r.seconds / r.docs as f64;
        println!(
            "| {} | {} | {} | {dps:.0} | {ms:.3} | {mb} | {peer} | {ratio} |",
            r.corpus, r.step, r.docs
        );
    }
    println!();
    for (name, docs, extraction, filters) in totals {
        let per_doc = |s: f64| 1e3 * s / docs as f64;
        println!(
            "{name}: the filters together (url_filter, language_id, repetition, quality, line_correction) \
             take {:.3} ms per document read, extraction {:.3} ms: {:.2}x of extraction.",
            per_doc(filters),
            per_doc(extraction),
            filters / extraction
        );
    }
    println!(
        "\nEach stage alone on the documents the stages before it kept (docs in); ms/doc per document in. \
         MB/s: decompressed WARC for read and whole stage, decoded HTML for extraction, text for the filters. \
         One thread; fastest of {RUNS} runs. datatrove's steps see its own extraction's texts; \
         its url_filter checks its bundled 4.56M-domain blocklist, ours the default config's curated \
         sources only (the lists are not shipped). The whole stage loads the language-ID model on each run."
    );
}
