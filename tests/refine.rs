//! `falconry refine` end to end on the real crawls in the shared data set.

use std::path::Path;

use crate::util::{data_dir, stage, TestCommand};

/// Each stage sees exactly what the one before it passed on, and counts add up.
fn assert_funnel_consistent(stats: &serde_json::Value) {
    let stages = stats["stages"].as_array().expect("stages");
    assert_eq!(stages[0]["name"], "read");
    for pair in stages.windows(2) {
        assert_eq!(
            pair[1]["in"], pair[0]["out"],
            "{} -> {}",
            pair[0]["name"], pair[1]["name"]
        );
    }
    for s in stages {
        let dropped: u64 = s["dropped"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(
            s["in"].as_u64().unwrap(),
            s["out"].as_u64().unwrap() + dropped,
            "{s}"
        );
    }
}

fn parquet_rows(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "parquet") {
            n += falconry_refine::dataset::read_parquet(&p).unwrap().count();
        }
    }
    n
}

#[test]
fn shared_crawls_refine_with_a_consistent_funnel() {
    let t = TestCommand::new();
    let input = data_dir().join("warc");
    let out = t.path("out");
    let explain = t.path("explain.jsonl");
    t.assert_exit_code(
        &[
            "refine",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--explain",
            explain.to_str().unwrap(),
        ],
        0,
    );
    let stats = t.stats("out");
    assert_funnel_consistent(&stats);
    let read = stage(&stats, "read");
    // The 2xx HTML responses (16 + 22 + 15 + 1 + 1, most of aut's 140) and the WET record.
    assert!(read["out"].as_u64().unwrap() >= 150, "{read}");
    assert!(
        read["dropped"]["http_status"].as_u64().unwrap() > 0,
        "{read}"
    );
    assert!(read["dropped"]["request"].as_u64().unwrap() > 0);
    let last = stats["stages"].as_array().unwrap().last().unwrap()["out"]
        .as_u64()
        .unwrap();
    assert!(last > 0, "nothing survived: {stats}");
    assert_eq!(parquet_rows(&out), last as usize);
    let lines = std::fs::read_to_string(&explain).unwrap();
    assert_eq!(lines.lines().count() as u64, read["out"].as_u64().unwrap());
    let kept = lines
        .lines()
        .filter(|l| l.contains("\"kept\":true"))
        .count();
    assert_eq!(kept as u64, last);
    assert!(out.join("funnel.png").exists());
}

#[test]
fn tasks_and_resume_give_the_single_run_result() {
    let t = TestCommand::new();
    let input = data_dir().join("warc");
    let whole = t.path("whole");
    let split = t.path("split");
    t.assert_exit_code(
        &[
            "refine",
            "-q",
            "--input",
            input.to_str().unwrap(),
            "--output",
            whole.to_str().unwrap(),
        ],
        0,
    );
    for task in ["0", "1"] {
        t.assert_exit_code(
            &[
                "refine",
                "-q",
                "--input",
                input.to_str().unwrap(),
                "--output",
                split.to_str().unwrap(),
                "--task",
                task,
                "--tasks",
                "2",
            ],
            0,
        );
    }
    let strip = |mut v: serde_json::Value| {
        v["seconds"] = 0.into();
        v
    };
    assert_eq!(strip(t.stats("split")), strip(t.stats("whole")));
    // An interrupted file (no marker) is redone; finished ones are not touched.
    let mut markers: Vec<_> = std::fs::read_dir(split.join("_done"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    markers.sort();
    let part_of = |marker: &Path| {
        split.join(
            marker
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .replace(".json", ".parquet"),
        )
    };
    let (marker, other) = (&markers[0], part_of(&markers[1]));
    std::fs::remove_file(marker).unwrap();
    let before = std::fs::metadata(&other).unwrap().modified().unwrap();
    t.assert_exit_code(
        &[
            "refine",
            "-q",
            "--input",
            input.to_str().unwrap(),
            "--output",
            split.to_str().unwrap(),
        ],
        0,
    );
    assert!(marker.exists() && part_of(marker).exists());
    assert_eq!(
        std::fs::metadata(&other).unwrap().modified().unwrap(),
        before
    );
    assert_eq!(strip(t.stats("split")), strip(t.stats("whole")));
    assert_eq!(parquet_rows(&split), parquet_rows(&whole));
}
