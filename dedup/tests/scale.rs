//! Issue 12: `components` and `exact_substring` as task arrays in bounded memory give the
//! clusters of the in-memory union-find and the cuts of the single-node suffix array.

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use falconry_dedup::components::connected_components;
use falconry_dedup::exact_substring::ExactSubstring;
use falconry_dedup::lsh::{doc_ref, split_ref};
use falconry_dedup::near_duplicates::SyntheticCorpus;
use falconry_dedup::{run_dedup, DedupConfig, RunOptions, Step};
use falconry_refine::dataset::read_parquet;
use falconry_refine::folder::Task;
use falconry_refine::Document;
use util::{articles, write_shard};

/// An `exact/shard-S.jsonl` line: row and cuts.
type PlanLine = (u32, Vec<(u32, u32)>);

/// 1,500 synthetic documents (30% edited copies) in 4 shards, with timestamps and ids that
/// tie and cross so the kept document is not simply the first.
fn corpus(dir: &Path) -> Vec<Vec<Document>> {
    let a = articles();
    let docs: Vec<Document> = SyntheticCorpus::new(&a, 0.3, 5)
        .take(1500)
        .enumerate()
        .map(|(i, mut d)| {
            d.timestamp = Some((i as i64 * 7919) % 40);
            d.id = format!("{:08x}", (i as u64 * 2_654_435_761) % (1 << 32));
            d
        })
        .collect();
    let shards: Vec<Vec<Document>> = docs.chunks(375).map(|c| c.to_vec()).collect();
    std::fs::create_dir_all(dir).unwrap();
    for (s, docs) in shards.iter().enumerate() {
        write_shard(&dir.join(format!("part-{s:05}.parquet")), docs);
    }
    shards
}

/// Runs every step as an array of `tasks` tasks (each task in turn, as a Slurm array might).
fn run_tasks(input: &Path, out: &Path, config: &DedupConfig, tasks: usize) {
    for step in Step::ALL {
        for index in 0..tasks {
            let o = RunOptions {
                step: Some(step),
                task: Some(Task {
                    index,
                    count: tasks,
                }),
                ..Default::default()
            };
            run_dedup(&[input.to_path_buf()], out, config, &o).unwrap();
        }
    }
}

fn jsonl(path: PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What the single-task path decides: union-find over the pair files, then per cluster the
/// earliest timestamp, then smallest id, then first document.
fn reference_removed(
    out: &Path,
    shards: &[Vec<Document>],
    buckets: usize,
) -> Vec<Vec<(u32, String)>> {
    let files: Vec<PathBuf> = (0..buckets)
        .map(|b| out.join(format!("buckets/pairs-{b:05}.bin")))
        .collect();
    let c = connected_components(&files).unwrap();
    let doc = |i: usize| {
        let (s, r) = split_ref(c.nodes[i]);
        &shards[s][r as usize]
    };
    let mut best: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, &r) in c.root.iter().enumerate() {
        let b = best.entry(r).or_insert(i);
        let order = |d: &Document| (d.timestamp.unwrap_or(i64::MAX), d.id.clone());
        if order(doc(i)) < order(doc(*b)) {
            *b = i;
        }
    }
    let mut removed = vec![Vec::new(); shards.len()];
    for (i, &r) in c.root.iter().enumerate() {
        let keep = best[&r];
        if keep != i {
            let (s, row) = split_ref(c.nodes[i]);
            removed[s].push((row, doc(keep).id.clone()));
        }
    }
    removed
}

#[test]
fn bounded_task_arrays_match_union_find_and_the_suffix_array() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let shards = corpus(&input);
    // 8 KB: every unit writes many small runs, and every merge reads dozens of them.
    let config = DedupConfig {
        memory_limit_gb: 8e3 / (1u64 << 30) as f64,
        ..Default::default()
    };
    let out = tmp.path().join("out");
    run_tasks(&input, &out, &config, 3);
    let runs = std::fs::read_dir(out.join("components/round-001"))
        .unwrap()
        .count();
    assert!(runs > 20, "{runs} run files");

    // Components: the clusters and kept documents of the in-memory union-find.
    let want = reference_removed(&out, &shards, config.minhash.buckets);
    let mut removed_total = 0;
    for (s, want) in want.iter().enumerate() {
        let got: Vec<(u32, String)> = jsonl(out.join(format!("clusters/shard-{s:05}.jsonl")))
            .iter()
            .map(|v| {
                (
                    v["row"].as_u64().unwrap() as u32,
                    v["duplicate_of"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(&got, want, "shard {s}");
        removed_total += got.len();
    }
    assert!(removed_total > 100, "only {removed_total} near duplicates");
    let sizes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("clusters/sizes.json")).unwrap()).unwrap();
    assert_eq!(sizes["removed"].as_u64().unwrap(), removed_total as u64);

    // Exact substring: the suffix array's cuts over the documents MinHash kept.
    let mut sa = ExactSubstring::new(&config.exact_substring);
    for (s, docs) in shards.iter().enumerate() {
        let gone: Vec<u32> = want[s].iter().map(|r| r.0).collect();
        for (row, d) in docs.iter().enumerate() {
            if !gone.contains(&(row as u32)) {
                sa.add(doc_ref(s, row as u32), &d.content);
            }
        }
    }
    let mut want_cuts: Vec<Vec<PlanLine>> = vec![Vec::new(); shards.len()];
    for (d, cuts) in sa.repeated_spans().unwrap() {
        let (s, row) = split_ref(d);
        want_cuts[s].push((row, cuts));
    }
    let mut crossing = 0;
    for (s, want) in want_cuts.iter().enumerate() {
        let got: Vec<PlanLine> = jsonl(out.join(format!("exact/shard-{s:05}.jsonl")))
            .iter()
            .map(|v| {
                (
                    v["row"].as_u64().unwrap() as u32,
                    serde_json::from_value(v["cuts"].clone()).unwrap(),
                )
            })
            .collect();
        assert_eq!(&got, want, "shard {s}");
        crossing += got.len() * s;
    }
    // Later shards cut spans first seen in earlier ones.
    assert!(crossing > 0);

    // One task, the default memory: the same bytes.
    let single = tmp.path().join("single");
    run_dedup(
        std::slice::from_ref(&input),
        &single,
        &DedupConfig::default(),
        &RunOptions::default(),
    )
    .unwrap();
    for s in 0..shards.len() {
        for f in [
            format!("clusters/shard-{s:05}.jsonl"),
            format!("exact/shard-{s:05}.jsonl"),
            format!("part-{s:05}.parquet"),
        ] {
            assert!(
                std::fs::read(out.join(&f)).unwrap() == std::fs::read(single.join(&f)).unwrap(),
                "{f} differs"
            );
        }
    }
    let kept: usize = (0..shards.len())
        .map(|s| {
            read_parquet(&out.join(format!("part-{s:05}.parquet")))
                .unwrap()
                .count()
        })
        .sum();
    assert!(kept < 1500 - removed_total + 1);
}

/// Set in a process this test binary starts as one task of an array: `STEP INDEX COUNT IN OUT`.
const TASK_ENV: &str = "FALCONRY_DEDUP_SCALE_TASK";

/// 32 KB: units write several runs each, and the race has files to lose.
fn together_config() -> DedupConfig {
    DedupConfig {
        memory_limit_gb: 32e3 / (1u64 << 30) as f64,
        ..Default::default()
    }
}

/// Issue 12's Slurm failure without Slurm: the tasks of each step's array start at once on one
/// folder, each in its own process as under Slurm. Before claims, a task redid a unit another
/// was still writing and removed its run files (`components/round-000/unit-00005-00000.idx:
/// No such file`). Every task must succeed, and the folder must hold the bytes of one task's
/// run, with no claim left.
#[test]
fn tasks_of_one_array_started_together_share_the_phases() {
    if let Ok(spec) = std::env::var(TASK_ENV) {
        let f: Vec<&str> = spec.split('\t').collect();
        let o = RunOptions {
            step: Step::from_name(f[0]),
            task: Some(Task {
                index: f[1].parse().unwrap(),
                count: f[2].parse().unwrap(),
            }),
            ..Default::default()
        };
        run_dedup(
            &[PathBuf::from(f[3])],
            Path::new(f[4]),
            &together_config(),
            &o,
        )
        .unwrap();
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    let shards = corpus(&input);
    let config = together_config();
    let single = tmp.path().join("single");
    run_tasks(&input, &single, &config, 1);
    let tasks = 4;
    for attempt in 0..2 {
        let out = tmp.path().join(format!("together-{attempt}"));
        for step in Step::ALL {
            let children: Vec<_> = (0..tasks)
                .map(|index| {
                    let spec = format!(
                        "{}\t{index}\t{tasks}\t{}\t{}",
                        step.name(),
                        input.display(),
                        out.display()
                    );
                    std::process::Command::new(std::env::current_exe().unwrap())
                        .args([
                            "--exact",
                            "tasks_of_one_array_started_together_share_the_phases",
                            "--nocapture",
                            "--test-threads=1",
                        ])
                        .env(TASK_ENV, spec)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            for (i, child) in children.into_iter().enumerate() {
                let done = child.wait_with_output().unwrap();
                assert!(
                    done.status.success(),
                    "{} task {i}: {}",
                    step.name(),
                    String::from_utf8_lossy(&done.stderr)
                );
            }
        }
        for s in 0..shards.len() {
            for f in [
                format!("clusters/shard-{s:05}.jsonl"),
                format!("exact/shard-{s:05}.jsonl"),
                format!("part-{s:05}.parquet"),
            ] {
                assert!(
                    std::fs::read(out.join(&f)).unwrap() == std::fs::read(single.join(&f)).unwrap(),
                    "{f} differs"
                );
            }
        }
        for f in ["clusters/sizes.json", "stats.json"] {
            assert!(
                std::fs::read(out.join(f)).unwrap() == std::fs::read(single.join(f)).unwrap(),
                "{f} differs"
            );
        }
        let claims = std::fs::read_dir(out.join("_claims")).unwrap().count();
        assert_eq!(claims, 0, "claims left");
    }
}
