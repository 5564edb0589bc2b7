//! Micro-benchmark of the `read` stage on one core: MB/s of decompressed WARC and docs/s.
//!
//! Two corpora: every `.warc.gz` under `$FALCONRY_TEST_DATA/warc` (real crawls, read in turn),
//! and a CommonCrawl-shaped WARC packed here with [`WarcWriter`] from the real pages of
//! `html/trafilatura-eval/pages` and `extraction-bench/html` (warcinfo, then a request and a
//! response per page, gzip per record), repeated to about 100 MB decompressed. Beside each
//! figure: a plain gunzip of the same bytes with flate2's `MultiGzDecoder` (same zlib-rs
//! backend), the floor any reader pays. Median of `RUNS` runs. Prints one Markdown table.
//!
//! Run: `cargo run --release -p falconry-refine --example read_bench [-- RUNS]`

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use falconry_refine::run::expand_inputs_with;
use falconry_refine::test_data_dir as data_dir;
use falconry_refine::warc::WarcWriter;
use falconry_refine::{ReadConfig, ReadItem, WarcReader};

/// The target, MB/s of decompressed WARC per core.
const TARGET_MB_S: f64 = 150.0;

/// The files under `dirs` whose names end with `suffix`, sorted.
fn files_under(dirs: &[PathBuf], suffix: &str) -> falconry_refine::Result<Vec<PathBuf>> {
    expand_inputs_with(dirs, |p| p.to_string_lossy().ends_with(suffix))
}

fn gunzip(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path)?).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Packs the real pages into a gzip-per-record WARC of about `target_bytes` decompressed.
fn html_pack(data: &Path, out: &Path, target_bytes: usize) -> std::io::Result<()> {
    let pages = files_under(
        &[
            data.join("html/trafilatura-eval/pages"),
            data.join("extraction-bench/html"),
        ],
        ".html.gz",
    )
    .map_err(std::io::Error::other)?;
    let bodies = pages
        .iter()
        .map(|p| gunzip(p))
        .collect::<std::io::Result<Vec<_>>>()?;
    let per_round: usize = bodies.iter().map(|b| b.len() + 700).sum();
    let rounds = target_bytes.div_ceil(per_round.max(1));
    let mut w = WarcWriter::gzip(std::io::BufWriter::new(std::fs::File::create(out)?));
    w.warcinfo(
        "html-pack.warc.gz",
        1_700_000_000,
        &[("isPartOf", "CC-MAIN-2023-50")],
    )?;
    for round in 0..rounds {
        for (i, body) in bodies.iter().enumerate() {
            let url = format!("https://pack{round}.example.com/page/{i}");
            let t = 1_700_000_000 + (round * bodies.len() + i) as i64;
            w.request(&url, t)?;
            w.response(
                &url,
                t,
                200,
                &[("Content-Type", "text/html"), ("Server", "bench")],
                body,
            )?;
        }
    }
    w.finish()?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Row {
    corpus: String,
    compressed: u64,
    decompressed: u64,
    docs: u64,
    gunzip_s: f64,
    read_s: f64,
}

fn measure(name: &str, files: &[PathBuf], runs: usize) -> std::io::Result<Row> {
    let compressed = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    let decompressed = files
        .iter()
        .map(|f| gunzip(f).map(|b| b.len() as u64))
        .sum::<std::io::Result<u64>>()?;
    let config = ReadConfig::default();
    let (mut gunzip_t, mut read_t) = (Vec::new(), Vec::new());
    let mut docs = 0;
    let mut sink = vec![0u8; 256 << 10];
    for _ in 0..runs {
        let t = Instant::now();
        for f in files {
            let mut gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(
                256 << 10,
                std::fs::File::open(f)?,
            ));
            while gz.read(&mut sink)? > 0 {}
        }
        gunzip_t.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        docs = 0;
        for f in files {
            for item in WarcReader::open(f, &config).map_err(std::io::Error::other)? {
                if let ReadItem::Doc(d) = item {
                    docs += 1;
                    std::hint::black_box(d);
                }
            }
        }
        read_t.push(t.elapsed().as_secs_f64());
    }
    Ok(Row {
        corpus: name.into(),
        compressed,
        decompressed,
        docs,
        gunzip_s: median(gunzip_t),
        read_s: median(read_t),
    })
}

fn main() -> std::io::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let data = data_dir();
    let shared = files_under(&[data.join("warc")], ".gz").map_err(std::io::Error::other)?;
    let dir = std::env::temp_dir().join(format!("falconry-read-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pack = dir.join("html-pack.warc.gz");
    html_pack(&data, &pack, 100 << 20)?;

    let rows = [
        measure("shared/data/warc (9 real files)", &shared, runs * 10)?,
        measure("html pack (real pages, CC-shaped)", &[pack], runs)?,
    ];
    std::fs::remove_dir_all(&dir)?;

    println!("| corpus | compressed MB | decompressed MB | docs | gunzip MB/s | read MB/s | read / gunzip | docs/s | vs {TARGET_MB_S} MB/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let mb = r.decompressed as f64 / 1e6;
        let read = mb / r.read_s;
        println!(
            "| {} | {:.1} | {:.1} | {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2}x |",
            r.corpus,
            r.compressed as f64 / 1e6,
            mb,
            r.docs,
            mb / r.gunzip_s,
            read,
            r.gunzip_s / r.read_s,
            r.docs as f64 / r.read_s,
            read / TARGET_MB_S
        );
    }
    println!("\nOne thread, median of {runs} runs (x10 for the small real files); MB = 10^6 bytes of decompressed WARC.");
    Ok(())
}
