//! The dedup benchmark: MinHash quality against exact Jaccard, signature speed per core,
//! and an end-to-end run over a synthetic corpus with peak RSS.
//!
//! `cargo run --release -p falconry-dedup --example bench -- [DOCS] [WORK_DIR]`
//! (DOCS defaults to 1,000,000; WORK_DIR to a temporary folder). Prints Markdown tables.

use std::path::{Path, PathBuf};
use std::time::Instant;

use falconry_dedup::near_duplicates::{edit_to_jaccard, load_articles, SyntheticCorpus};
use falconry_dedup::{
    run_dedup, ClusterReport, DedupConfig, MinHasher, MinhashConfig, Preset, RunOptions, Scratch,
};
use falconry_refine::dataset::ShardWriter;
use falconry_refine::test_data_dir as data_dir;
use falconry_refine::{Document, OutputConfig};

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn quality(articles: &[String]) {
    let presets = [Preset::Refinedweb, Preset::Dclm, Preset::Fineweb];
    let hashers: Vec<MinHasher> = presets
        .iter()
        .map(|&p| MinHasher::new(&MinhashConfig::preset(p)))
        .collect();
    let configs: Vec<MinhashConfig> = presets.iter().map(|&p| MinhashConfig::preset(p)).collect();
    let targets = [
        0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0,
    ];
    let bins = [
        (0.0, 0.5),
        (0.5, 0.6),
        (0.6, 0.7),
        (0.7, 0.75),
        (0.75, 0.8),
        (0.8, 0.85),
        (0.85, 0.9),
        (0.9, 0.95),
        (0.95, 1.01),
    ];
    // per bin: pairs, sum of J, found per preset
    let mut table = vec![(0u32, 0.0f64, [0u32; 3]); bins.len()];
    let mut scratch = Scratch::default();
    for seed in 0..3u64 {
        for (i, text) in articles.iter().enumerate() {
            let keys: Vec<Vec<u64>> = hashers
                .iter()
                .map(|h| {
                    let mut k = Vec::new();
                    h.band_keys(text, &mut scratch, &mut k);
                    k
                })
                .collect();
            for (t, &target) in targets.iter().enumerate() {
                let (copy, j) =
                    edit_to_jaccard(text, target, 5, seed * 100_000 + (i * 100 + t) as u64);
                let Some(bin) = bins.iter().position(|&(lo, hi)| j >= lo && j < hi) else {
                    continue;
                };
                let row = &mut table[bin];
                row.0 += 1;
                row.1 += j;
                for (p, h) in hashers.iter().enumerate() {
                    let mut k = Vec::new();
                    h.band_keys(&copy, &mut scratch, &mut k);
                    row.2[p] += keys[p].iter().zip(&k).any(|(a, b)| a == b) as u32;
                }
            }
        }
    }
    println!(
        "## MinHash vs exact 5-gram Jaccard ({} articles x {} targets x 3 seeds)\n",
        articles.len(),
        targets.len()
    );
    println!("| exact J | pairs | mean J | refinedweb 450x20 found | P(dup) | dclm 93x15 found | P(dup) | fineweb 14x8 found | P(dup) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for ((lo, hi), (n, sum, found)) in bins.iter().zip(&table) {
        if *n == 0 {
            continue;
        }
        let mean = sum / *n as f64;
        let cells: Vec<String> = (0..3)
            .map(|p| {
                format!(
                    "{:.4} | {:.3}",
                    found[p] as f64 / *n as f64,
                    configs[p].p_duplicate(mean)
                )
            })
            .collect();
        println!(
            "| [{lo:.2}, {:.2}) | {n} | {mean:.3} | {} |",
            hi.min(1.0),
            cells.join(" | ")
        );
    }
    let agg = |pred: &dyn Fn(f64) -> bool| {
        let (n, f) = bins
            .iter()
            .zip(&table)
            .filter(|((lo, _), _)| pred(*lo))
            .fold((0, 0), |(n, f), (_, r)| (n + r.0, f + r.2[0]));
        (n, f as f64 / n.max(1) as f64)
    };
    let (nh, recall) = agg(&|lo| lo >= 0.85);
    let (nl, fp) = agg(&|lo| lo < 0.5);
    println!("\nrefinedweb preset: recall at J >= 0.85 = {recall:.4} ({nh} pairs; target >= 0.99), false positives at J < 0.5 = {fp:.4} ({nl} pairs; target <= 0.01)\n");
}

fn signature_speed(docs: &[Document]) {
    println!(
        "## Signature speed, one thread ({} synthetic documents, mean {:.0} words)\n",
        docs.len(),
        docs.iter()
            .map(|d| d.content.split_whitespace().count())
            .sum::<usize>() as f64
            / docs.len() as f64
    );
    println!("| preset | hashes | docs/s per core | MB/s per core | datatrove docs/s, same preset | ratio | ratio to datatrove at 112 hashes |");
    println!("|---|---|---|---|---|---|---|");
    let mb = docs.iter().map(|d| d.content.len()).sum::<usize>() as f64 / 1e6;
    // datatrove 0.10.1 on this machine, one thread, after start-up, same kind of documents
    // (`scripts/bench_datatrove_minhash.py 2000`, 121 words mean): 31 / 100 / 135 docs/s.
    for (preset, peer) in [
        (Preset::Refinedweb, 31.0),
        (Preset::Dclm, 100.0),
        (Preset::Fineweb, 135.0),
    ] {
        let config = MinhashConfig::preset(preset);
        let h = MinHasher::new(&config);
        let mut scratch = Scratch::default();
        let mut keys = Vec::new();
        let start = Instant::now();
        for d in docs {
            keys.clear();
            h.band_keys(&d.content, &mut scratch, &mut keys);
        }
        let s = start.elapsed().as_secs_f64();
        let (b, r) = config.bands_rows();
        let rate = docs.len() as f64 / s;
        println!(
            "| {preset:?} {b}x{r} | {} | {rate:.0} | {:.2} | {peer:.0} | {:.0}x | {:.0}x |",
            b * r,
            mb / s,
            rate / peer,
            rate / 135.0
        );
    }
    println!();
}

fn end_to_end(articles: &[String], n: usize, work: &Path) {
    let input = work.join("input");
    std::fs::create_dir_all(&input).unwrap();
    let shards = 8.max(n / 125_000);
    let start = Instant::now();
    let mut corpus = SyntheticCorpus::new(articles, 0.2, 42);
    let per = n.div_ceil(shards);
    let mut bytes = 0usize;
    for s in 0..shards {
        let mut w = ShardWriter::create(
            &input.join(format!("part-{s:05}.parquet")),
            &OutputConfig::default(),
        )
        .unwrap();
        for d in corpus.by_ref().take(per.min(n - (s * per).min(n))) {
            bytes += d.content.len();
            w.write(d).unwrap();
        }
        w.finish().unwrap();
    }
    let gen_s = start.elapsed().as_secs_f64();
    let rss_gen = peak_rss_mib();
    let out = work.join("output");
    let start = Instant::now();
    let stats = run_dedup(
        &[input],
        &out,
        &DedupConfig::default(),
        &RunOptions::default(),
    )
    .unwrap();
    let wall = start.elapsed().as_secs_f64();
    println!("## End to end: {n} synthetic documents ({:.2} GB of text, {shards} shards), all stages, refinedweb preset\n", bytes as f64 / 1e9);
    println!("| step | seconds |\n|---|---|");
    let mut per_step: std::collections::BTreeMap<String, f64> = Default::default();
    for e in std::fs::read_dir(out.join("_done")).unwrap().flatten() {
        let name = e
            .file_name()
            .to_string_lossy()
            .split('-')
            .next()
            .unwrap_or_default()
            .to_string();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        *per_step.entry(name).or_default() += v["seconds"].as_f64().unwrap_or(0.0);
    }
    for step in falconry_dedup::Step::ALL {
        println!(
            "| {} | {:.1} |",
            step.name(),
            per_step.get(step.name()).copied().unwrap_or(0.0)
        );
    }
    println!("| **wall, 2 cores** | **{wall:.1}** |\n");
    println!("| stage | in | out | dropped |\n|---|---|---|---|");
    for r in &stats.stages {
        println!(
            "| {} | {} | {} | {:?} |",
            r.name, r.input, r.output, r.dropped
        );
    }
    let report: ClusterReport =
        serde_json::from_slice(&std::fs::read(out.join("clusters/sizes.json")).unwrap()).unwrap();
    let top: Vec<String> = report
        .sizes
        .iter()
        .take(8)
        .map(|(s, c)| format!("{s}: {c}"))
        .collect();
    println!(
        "\nclusters {} (documents {}, removed {}, candidate pairs {}); sizes {{{}}}",
        report.clusters,
        report.documents,
        report.removed,
        report.pairs,
        top.join(", ")
    );
    let cut_docs: usize = (0..shards)
        .map(|s| {
            std::fs::read_to_string(out.join(format!("exact/shard-{s:05}.jsonl")))
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum();
    println!("exact_substring: {cut_docs} documents cut or dropped");
    let disk: u64 = ["signatures", "buckets"]
        .iter()
        .map(|d| dir_size(&out.join(d)))
        .sum();
    println!("work files (signatures + buckets): {:.2} GB; corpus generation {gen_s:.1} s (peak RSS then {rss_gen:.0} MiB)", disk as f64 / 1e9);
    println!(
        "**peak RSS (VmHWM) of the whole run: {:.0} MiB**",
        peak_rss_mib()
    );
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            if e.path().is_dir() {
                dir_size(&e.path())
            } else {
                e.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let work = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let articles = load_articles(&data_dir().join("extraction-bench/ground-truth.json")).unwrap();
    println!(
        "machine: {} cores\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if std::env::var_os("SKIP_QUALITY").is_none() {
        quality(&articles);
    }
    let sample: Vec<Document> = SyntheticCorpus::new(&articles, 0.0, 7).take(2000).collect();
    signature_speed(&sample);
    if n > 0 {
        end_to_end(&articles, n, &work);
    }
}
