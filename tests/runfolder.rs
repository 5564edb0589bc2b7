//! Output folders that nothing can corrupt: one writer at a time, resume keyed by input
//! identity, interruption (issue 11, items 4, 5 and 7).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{stage, TestCommand};

/// `files` JSONL files of `lines` documents each in `dir`, named `f{i}.jsonl` from `first`.
fn jsonl_inputs(dir: &Path, first: usize, files: usize, lines: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for f in first..first + files {
        let text: String = (0..lines)
            .map(|i| {
                let body = format!("Document {i} of file {f} tells how the river town rebuilt its library, street by street. ").repeat(4);
                format!("{}\n", serde_json::json!({"text": body, "url": format!("https://town.example/{f}/{i}")}))
            })
            .collect();
        std::fs::write(dir.join(format!("f{f:02}.jsonl")), text).unwrap();
    }
}

fn spawn(t: &TestCommand, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_falconry"))
        .args(args)
        .current_dir(crate::util::repo())
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn falconry in {:?}: {e}", t.dir.path()))
}

/// Waits up to 60 s for `ready`; false if the process ended first.
fn wait_for(child: &mut Child, ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if ready() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("not ready after 60 s");
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn parquet_rows(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .map(|p| falconry_refine::dataset::read_parquet(p).unwrap().count() as u64)
        .sum()
}

fn last_out(stats: &serde_json::Value) -> u64 {
    stats["stages"].as_array().unwrap().last().unwrap()["out"]
        .as_u64()
        .unwrap()
}

/// Issue 11: two runs into one folder shared temporary names and markers; the winner exited
/// 0 with unreadable parts. The second writer is refused, the first's output is whole.
#[test]
fn a_second_writer_is_refused_and_the_first_finishes_intact() {
    let t = TestCommand::new();
    let input = t.path("in");
    jsonl_inputs(&input, 0, 4, 2500);
    let out = t.path("out");
    let args = [
        "refine",
        "-q",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ];
    let mut first = spawn(&t, &args);
    assert!(
        wait_for(&mut first, || out.join("_lock/task-00000.json").exists()),
        "first run ended before the check"
    );
    let second = t.assert_exit_code(&args, 1);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another falconry run is writing this folder")
            && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    let status = first.wait_with_output().unwrap();
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let stats = t.stats("out");
    assert_eq!(stage(&stats, "read")["out"], 10_000);
    assert_eq!(parquet_rows(&out), last_out(&stats));
    assert!(
        !out.join("_lock/task-00000.json").exists(),
        "the lock goes with its run"
    );
    // And a third run, after it, resumes (nothing to do) instead of being refused.
    t.assert_exit_code(&args, 0);
}

/// A lock file left by a process that no longer runs is taken over.
#[test]
fn a_stale_lock_is_taken_over() {
    let t = TestCommand::new();
    let out = t.path("out");
    std::fs::create_dir_all(out.join("_lock")).unwrap();
    let host = falconry_refine::lock::hostname();
    let stale = serde_json::json!({"pid": 4_000_000_000u32, "host": host, "task": 0, "tasks": 1, "started": "2020-01-01T00:00:00Z"});
    std::fs::write(out.join("_lock/task-00000.json"), stale.to_string()).unwrap();
    t.assert_exit_code(
        &[
            "refine",
            "-q",
            "--input",
            "examples/sample.warc.gz",
            "--output",
            out.to_str().unwrap(),
        ],
        0,
    );
    assert!(out.join("stats.json").exists());
}

/// Issue 11: resume was keyed by an input's place in the sorted list: a file added between
/// runs made the rerun skip the new file and redo an old one (18 duplicate rows, exit 0).
#[test]
fn an_added_input_is_refused_then_refined_without_duplicates_when_allowed() {
    let t = TestCommand::new();
    let input = t.path("in");
    jsonl_inputs(&input, 1, 2, 9);
    let out = t.path("out");
    // The filters off: this is about which files are read, not about quality.
    let config = t.path("reading-only.toml");
    std::fs::write(&config, "[language_id]\nenabled = false\n[repetition]\nenabled = false\n[quality]\nenabled = false\n[line_correction]\nenabled = false\n").unwrap();
    let args = [
        "refine",
        "-q",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    t.assert_exit_code(&args, 0);
    let first = last_out(&t.stats("out"));
    assert_eq!(first, 18);
    // f00 sorts before both: it takes the place (and, before, the part name) of f01.
    jsonl_inputs(&input, 0, 1, 9);
    let o = t.assert_exit_code(&args, 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("1 added")
            && err.contains("f00.jsonl")
            && err.contains("--allow-changed-inputs"),
        "{err}"
    );
    assert_eq!(parquet_rows(&out), first, "a refused run writes nothing");
    t.assert_exit_code(&[&args[..], &["--allow-changed-inputs"]].concat(), 0);
    let stats = t.stats("out");
    assert_eq!(stage(&stats, "read")["out"], 27);
    let mut urls: Vec<String> = files_under(&out)
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .flat_map(|p| {
            falconry_refine::dataset::read_parquet(p)
                .unwrap()
                .map(|d| d.unwrap().url)
                .collect::<Vec<_>>()
        })
        .collect();
    let n = urls.len();
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), n, "no document twice");
    assert_eq!(n, 27);
    assert_eq!(
        urls.iter()
            .filter(|u| u.starts_with("https://town.example/0/"))
            .count(),
        9,
        "the new file is in"
    );
}

/// Issue 11: SIGINT left `.tmp` files and ended the process by the signal (Python saw -2)
/// instead of the README's exit code 130. Interrupted, the run removes its temporary files and
/// exits 130; the same command then finishes the job with the result of an uninterrupted run.
#[test]
fn sigint_leaves_no_temporary_file_exits_130_and_resumes() {
    let t = TestCommand::new();
    let input = t.path("in");
    jsonl_inputs(&input, 0, 6, 2500);
    let (out, whole) = (t.path("out"), t.path("whole"));
    let args = |o: &Path| {
        [
            "refine",
            "-q",
            "--input",
            input.to_str().unwrap(),
            "--output",
            o.to_str().unwrap(),
        ]
        .map(String::from)
    };
    let tmp_files = |dir: &Path| -> Vec<PathBuf> {
        if !dir.exists() {
            return Vec::new();
        }
        files_under(dir)
            .into_iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"))
            .collect()
    };
    let mut child = spawn(&t, &args(&out).each_ref().map(String::as_str));
    assert!(
        wait_for(&mut child, || !tmp_files(&out).is_empty()),
        "the run ended before it wrote anything"
    );
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(tmp_files(&out), Vec::<PathBuf>::new());
    t.assert_exit_code(&args(&out).each_ref().map(String::as_str), 0);
    t.assert_exit_code(&args(&whole).each_ref().map(String::as_str), 0);
    let strip = |mut v: serde_json::Value| {
        v["seconds"] = 0.into();
        v
    };
    assert_eq!(strip(t.stats("out")), strip(t.stats("whole")));
    assert_eq!(parquet_rows(&out), parquet_rows(&whole));
}
