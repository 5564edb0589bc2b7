//! Dedup at scale: a synthetic corpus with planted near-duplicate clusters, every step run as
//! a task array of child processes under a small memory limit; prints per-step wall time,
//! the peak RSS of the largest task (its VmHWM) and the work files on disk.
//!
//! `cargo run --release -p falconry-dedup --example scale -- DOCS WORK_DIR [TASKS] [MEMORY_GB] [PRESET]`
//! (TASKS 4, MEMORY_GB 0.25, PRESET `fineweb`: 14 band keys per document, so 10M documents
//! fit this machine's disk; `refinedweb` writes 450). WORK_DIR is removed at the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use falconry_dedup::near_duplicates::{load_articles, SyntheticCorpus};
use falconry_dedup::{run_dedup, DedupConfig, MinhashConfig, Preset, RunOptions, Step};
use falconry_refine::dataset::ShardWriter;
use falconry_refine::folder::Task;
use falconry_refine::test_data_dir as data_dir;
use falconry_refine::OutputConfig;

const DOCS_PER_SHARD: usize = 250_000;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn config(memory_gb: f64, preset: &str) -> DedupConfig {
    let preset = match preset {
        "refinedweb" => Preset::Refinedweb,
        "dclm" => Preset::Dclm,
        _ => Preset::Fineweb,
    };
    DedupConfig {
        memory_limit_gb: memory_gb,
        minhash: MinhashConfig::preset(preset),
        ..Default::default()
    }
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A child: one task of one step; prints its peak RSS in MiB.
fn child(args: &[String]) {
    let step = Step::from_name(&args[2]).expect("step");
    let (index, count): (usize, usize) = (args[3].parse().unwrap(), args[4].parse().unwrap());
    let work = PathBuf::from(&args[5]);
    let config = config(args[6].parse().unwrap(), &args[7]);
    let o = RunOptions {
        step: Some(step),
        task: Some(Task { index, count }),
        ..Default::default()
    };
    run_dedup(&[work.join("input")], &work.join("output"), &config, &o).unwrap();
    println!("{:.1}", peak_rss_mib());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args);
    }
    let n: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let work = PathBuf::from(args.get(2).expect("WORK_DIR"));
    let tasks: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(4);
    let memory_gb: f64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(0.25);
    let preset = args.get(5).cloned().unwrap_or_else(|| "fineweb".into());

    let articles = load_articles(&data_dir().join("extraction-bench/ground-truth.json")).unwrap();
    let input = work.join("input");
    std::fs::create_dir_all(&input).unwrap();
    let start = Instant::now();
    let shards = n.div_ceil(DOCS_PER_SHARD);
    let mut corpus = SyntheticCorpus::new(&articles, 0.2, 42);
    let (mut bytes, mut words) = (0usize, 0usize);
    for s in 0..shards {
        let path = input.join(format!("part-{s:05}.parquet"));
        let mut w = ShardWriter::create(&path, &OutputConfig::default()).unwrap();
        for d in corpus
            .by_ref()
            .take(DOCS_PER_SHARD.min(n - s * DOCS_PER_SHARD))
        {
            bytes += d.content.len();
            words += d.content.split_whitespace().count();
            w.write(d).unwrap();
        }
        w.finish().unwrap();
    }
    println!(
        "## {n} synthetic documents: {:.2} GB of text, {words} words, {shards} shards ({:.0} s to generate); {tasks} tasks per step, memory_limit_gb = {memory_gb}, preset {preset}, {} cores\n",
        bytes as f64 / 1e9,
        start.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| step | tasks | wall s | peak RSS of the largest task, MiB | work files after, GB |"
    );
    println!("|---|---|---|---|---|");
    let exe = std::env::current_exe().unwrap();
    let out = work.join("output");
    let mut total = 0.0;
    for step in Step::ALL {
        let start = Instant::now();
        let mut peak = 0.0f64;
        let count = step.units(&config(memory_gb, &preset), shards).min(tasks);
        for index in 0..count {
            let o = Command::new(&exe)
                .args([
                    "--child",
                    step.name(),
                    &index.to_string(),
                    &count.to_string(),
                ])
                .arg(&work)
                .args([memory_gb.to_string(), preset.clone()])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let rss: f64 = String::from_utf8_lossy(&o.stdout)
                .trim()
                .lines()
                .last()
                .and_then(|l| l.parse().ok())
                .unwrap_or(0.0);
            peak = peak.max(rss);
        }
        let s = start.elapsed().as_secs_f64();
        total += s;
        println!(
            "| {} | {count} | {s:.1} | {peak:.0} | {:.2} |",
            step.name(),
            dir_size(&out) as f64 / 1e9
        );
    }
    println!("| **all** | | **{total:.1}** | | |\n");
    let sizes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("clusters/sizes.json")).unwrap()).unwrap();
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap();
    let rounds = std::fs::read_dir(out.join("components"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("round-"))
        .count();
    println!(
        "clusters {} over {} documents, removed {}, {} pair edges; components rounds {rounds}",
        sizes["clusters"], sizes["documents"], sizes["removed"], sizes["pairs"]
    );
    for s in stats["stages"].as_array().unwrap() {
        println!(
            "{}: in {} out {} dropped {}",
            s["name"], s["in"], s["out"], s["dropped"]
        );
    }
    for d in ["signatures", "buckets", "components", "exact"] {
        println!("work {d}: {:.2} GB", dir_size(&out.join(d)) as f64 / 1e9);
    }
    std::fs::remove_dir_all(&work).unwrap();
}
