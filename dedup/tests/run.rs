//! End to end: two Parquet shards through all three stages, locally and as task arrays.

mod util;

use std::path::Path;

use falconry_dedup::{run_dedup, DedupConfig, ExplainLine, RunOptions, Step};
use falconry_refine::dataset::read_parquet;
use falconry_refine::folder::Task;
use falconry_refine::Document;
use util::{articles, words, write_shard};

fn doc(id: &str, url: &str, dump: &str, ts: i64, content: String) -> Document {
    Document {
        id: id.into(),
        url: url.into(),
        dump: dump.into(),
        timestamp: Some(ts),
        content,
        ..Default::default()
    }
}

/// Shard 0: articles 0..6 and a near copy of article 1 (later timestamp).
/// Shard 1: an earlier exact copy of article 2; article 7 with 60 words of article 3 in the
/// middle; a document that is only 60 words of article 4 plus "ok"; article 5's URL again in
/// a later dump with new text; article 8.
fn corpus(dir: &Path) {
    let a = articles();
    let art = |i: usize| words(&a[i], 250);
    let mut s0: Vec<Document> = (0..6)
        .map(|i| {
            doc(
                &format!("a{i}"),
                &format!("https://site.org/{i}"),
                "CC-MAIN-2020-34",
                100 + i as i64,
                art(i),
            )
        })
        .collect();
    s0.push(doc(
        "a1-copy",
        "https://mirror.net/1",
        "CC-MAIN-2020-34",
        500,
        art(1).replacen(' ', " , ", 3),
    ));
    let w3: Vec<&str> = a[3].split_whitespace().collect();
    let s1 = vec![
        doc(
            "a2-early",
            "https://other.org/2",
            "CC-MAIN-2020-34",
            1,
            art(2),
        ),
        doc(
            "a7",
            "https://site.org/7",
            "CC-MAIN-2020-34",
            107,
            format!(
                "{} {} {}",
                words(&a[7], 100),
                w3[20..80].join(" "),
                words(&a[7], 200)
                    .split_whitespace()
                    .skip(100)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
        doc(
            "short",
            "https://site.org/s",
            "CC-MAIN-2020-34",
            108,
            format!("{} ok", words(&a[4], 60)),
        ),
        doc(
            "a5-again",
            "HTTPS://SITE.ORG/5#top",
            "CC-MAIN-2021-04",
            109,
            art(9),
        ),
        doc("a8", "https://site.org/8", "CC-MAIN-2020-34", 110, art(8)),
    ];
    write_shard(&dir.join("part-00000.parquet"), &s0);
    write_shard(&dir.join("part-00001.parquet"), &s1);
}

fn ids(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for s in 0..2 {
        let docs = read_parquet(&dir.join(format!("part-{s:05}.parquet"))).unwrap();
        out.extend(docs.map(|d| d.unwrap().id));
    }
    out
}

#[test]
fn all_stages_remove_what_they_should_and_explain_it() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    corpus(&input);
    let inputs = vec![input];
    let out = tmp.path().join("out");
    let stats = run_dedup(
        &inputs,
        &out,
        &DedupConfig::default(),
        &RunOptions {
            explain: true,
            ..Default::default()
        },
    )
    .unwrap();

    let names: Vec<&str> = stats.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["minhash", "exact_substring", "url_dedup"]);
    assert_eq!((stats.stages[0].input, stats.stages[0].output), (12, 10));
    assert_eq!(stats.stages[1].dropped.get("min_chars"), Some(&1));
    assert_eq!(stats.stages[2].dropped.get("duplicate_url"), Some(&1));
    let on_disk: falconry_refine::RunStats =
        serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap();
    assert_eq!(on_disk.stages, stats.stages);

    // The copy of article 2 is earlier, so it stays and a2 goes; a1-copy is later and goes.
    assert_eq!(
        ids(&out),
        ["a0", "a1", "a3", "a4", "a5", "a2-early", "a7", "a8"]
    );
    let explain: Vec<ExplainLine> = std::fs::read_to_string(out.join("explain.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let line = |id: &str| {
        explain
            .iter()
            .find(|l| l.id == id)
            .unwrap_or_else(|| panic!("{id} not explained"))
    };
    assert_eq!(
        (
            line("a2").stage.as_str(),
            line("a2").duplicate_of.as_deref()
        ),
        ("minhash", Some("a2-early"))
    );
    assert_eq!(line("a1-copy").duplicate_of.as_deref(), Some("a1"));
    assert_eq!(
        (line("short").stage.as_str(), line("short").reason.as_str()),
        ("exact_substring", "min_chars")
    );
    assert_eq!(
        (
            line("a5-again").stage.as_str(),
            line("a5-again").duplicate_of.as_deref()
        ),
        ("url_dedup", Some("a5"))
    );
    assert_eq!(explain.len(), 4);

    // a7 lost the 60 words it shares with article 3, and nothing else.
    let a7 = read_parquet(&out.join("part-00001.parquet"))
        .unwrap()
        .map(|d| d.unwrap())
        .find(|d| d.id == "a7")
        .unwrap();
    let a = articles();
    assert!(!a7.content.contains(
        &a[3]
            .split_whitespace()
            .skip(20)
            .take(60)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    assert_eq!(a7.content.split_whitespace().count(), 200);

    let sizes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("clusters/sizes.json")).unwrap()).unwrap();
    assert_eq!(sizes["clusters"], 2);
    assert_eq!(sizes["sizes"]["2"], 2);
}

#[test]
fn task_arrays_and_resume_give_the_same_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    corpus(&input);
    let inputs = vec![input];
    let config = DedupConfig::default();
    let local = tmp.path().join("local");
    run_dedup(&inputs, &local, &config, &RunOptions::default()).unwrap();

    let sharded = tmp.path().join("sharded");
    let early = RunOptions {
        step: Some(Step::Buckets),
        task: Some(Task { index: 0, count: 3 }),
        ..Default::default()
    };
    let err = run_dedup(&inputs, &sharded, &config, &early).unwrap_err();
    assert!(err.to_string().contains("needs `signatures`"), "{err}");
    for step in Step::ALL {
        for task in 0..3 {
            let o = RunOptions {
                step: Some(step),
                task: Some(Task {
                    index: task,
                    count: 3,
                }),
                ..Default::default()
            };
            run_dedup(&inputs, &sharded, &config, &o).unwrap();
        }
    }
    assert_eq!(ids(&local), ids(&sharded));
    // Every file, work files and markers included, is the same bytes.
    assert_same_files(&local, &sharded);

    // An interrupted filter unit is redone; finished ones are skipped.
    std::fs::remove_file(sharded.join("_done/filter-00001.json")).unwrap();
    std::fs::remove_file(sharded.join("part-00001.parquet")).unwrap();
    run_dedup(&inputs, &sharded, &config, &RunOptions::default()).unwrap();
    assert_same_files(&local, &sharded);
    let no_stage = RunOptions {
        task: Some(Task { index: 0, count: 2 }),
        ..Default::default()
    };
    assert!(run_dedup(&inputs, &sharded, &config, &no_stage).is_err());
}

/// Every file under `dir` (relative path, bytes), sorted.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    out.sort();
    out
}

fn assert_same_files(a: &Path, b: &Path) {
    let (fa, fb) = (files(a), files(b));
    let names =
        |f: &[(std::path::PathBuf, Vec<u8>)]| f.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&fa), names(&fb));
    for ((name, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(x == y, "{} differs", name.display());
    }
}

/// Issue 11: a dedup folder is keyed by its input list (every step depends on every shard):
/// a shard added (or removed) between runs is refused, then redone in full when allowed, with
/// no document twice and none missing.
#[test]
fn a_changed_input_list_is_refused_then_redone_when_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    corpus(&input);
    let inputs = vec![input.clone()];
    let config = DedupConfig::default();
    let out = tmp.path().join("out");
    run_dedup(&inputs, &out, &config, &RunOptions::default()).unwrap();
    let before = ids(&out);
    let a = articles();
    let extra = vec![doc(
        "a10",
        "https://site.org/10",
        "CC-MAIN-2020-34",
        120,
        words(&a[10], 250),
    )];
    write_shard(&input.join("part-00002.parquet"), &extra);
    let err = run_dedup(&inputs, &out, &config, &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1 added")
            && err.contains("part-00002.parquet")
            && err.contains("--allow-changed-inputs"),
        "{err}"
    );
    let allow = RunOptions {
        allow_changed_inputs: true,
        ..Default::default()
    };
    let stats = run_dedup(&inputs, &out, &config, &allow).unwrap();
    assert_eq!(stats.stages[0].input, 13);
    let mut now = ids(&out);
    now.extend(
        read_parquet(&out.join("part-00002.parquet"))
            .unwrap()
            .map(|d| d.unwrap().id),
    );
    assert_eq!(now, [before.clone(), vec!["a10".to_string()]].concat());
    run_dedup(&inputs, &out, &config, &RunOptions::default()).unwrap();
    // A shard removed: its part goes with it.
    std::fs::remove_file(input.join("part-00002.parquet")).unwrap();
    assert!(run_dedup(&inputs, &out, &config, &RunOptions::default())
        .unwrap_err()
        .to_string()
        .contains("1 removed"));
    let stats = run_dedup(&inputs, &out, &config, &allow).unwrap();
    assert_eq!(stats.stages[0].input, 12);
    assert!(!out.join("part-00002.parquet").exists());
    assert_eq!(ids(&out), before);
}

/// Issue 12: URL dedup is a sort on disk: a small `memory_limit_gb` spills the URL records
/// into many sorted runs per shard (a task holds one record per run, not a partition), with
/// the same output: the same documents dropped, the same `duplicate_of`.
#[test]
fn a_small_memory_limit_spills_url_records_into_runs_with_the_same_output() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    corpus(&input);
    let inputs = vec![input];
    let default = DedupConfig::default();
    let wide = tmp.path().join("default");
    let explain = RunOptions {
        explain: true,
        ..Default::default()
    };
    run_dedup(&inputs, &wide, &default, &explain).unwrap();
    let small = DedupConfig {
        memory_limit_gb: 1e-6,
        ..DedupConfig::default()
    };
    let narrow = tmp.path().join("small");
    for step in Step::ALL {
        for task in 0..2 {
            let o = RunOptions {
                step: Some(step),
                task: Some(Task {
                    index: task,
                    count: 2,
                }),
                ..explain.clone()
            };
            run_dedup(&inputs, &narrow, &small, &o).unwrap();
        }
    }
    let runs = |dir: &Path| {
        files(&dir.join("urls/work/urls"))
            .iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "run"))
            .count()
    };
    assert!(
        runs(&wide) <= 2,
        "at most one run per shard: {}",
        runs(&wide)
    );
    assert!(runs(&narrow) > runs(&wide) + 2, "{}", runs(&narrow));
    // The same URL drops, with the same kept document.
    let url_lines = |dir: &Path| {
        let mut lines: Vec<String> = files(&dir.join("urls"))
            .into_iter()
            .filter(|(p, _)| p.extension().is_some_and(|e| e == "jsonl"))
            .flat_map(|(_, b)| {
                String::from_utf8(b)
                    .unwrap()
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        lines.sort();
        lines
    };
    assert!(!url_lines(&wide).is_empty());
    assert_eq!(url_lines(&wide), url_lines(&narrow));
    assert_eq!(ids(&wide), ids(&narrow));
    for name in [
        "explain.jsonl",
        "stats.json",
        "part-00000.parquet",
        "part-00001.parquet",
    ] {
        let read = |d: &Path| std::fs::read(d.join(name)).unwrap();
        assert!(read(&wide) == read(&narrow), "{name} differs");
    }
}
