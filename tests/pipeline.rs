//! `falconry run` (issue 11): every stage in one run folder; the same bytes from two clean
//! runs, and after `kill -9` at random points and the same command again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{data_dir, repo, TestCommand};

/// A pipeline config in the test's folder: the repository's stage configs, `tokenizer`, and
/// shards small enough that a crawl of a few MB makes several.
pub fn pipeline_config(t: &TestCommand, tokenizer: &Path) -> PathBuf {
    let configs = repo().join("configs");
    let text = format!(
        "[refine]\nconfig = {:?}\n[dedup]\nconfig = {:?}\n[tokenize]\ntokenizer = {:?}\nshard_tokens = 20000\nvalidation_fraction = 0.05\n",
        configs.join("refinedweb.toml"),
        configs.join("dedup.toml"),
        tokenizer,
    );
    let path = t.path("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn falcon_tokenizer() -> PathBuf {
    data_dir().join("tokenizer/falcon/tokenizer.json")
}

fn run_command(config: &Path, input: &Path, output: &Path, threads: usize) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_falconry"));
    cmd.args(["-q", "run", "--config"])
        .arg(config)
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .current_dir(repo())
        .env("RAYON_NUM_THREADS", threads.to_string())
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs to the end; panics unless it exits 0.
pub fn run_clean(config: &Path, input: &Path, output: &Path, threads: usize) -> String {
    let out = run_command(config, input, output, threads)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every file under `dir` by relative path, with its bytes; lock files (the holder's pid) are
/// left out, and `manifest.json` without its timings; so is what `falconry slurm` adds to a
/// run folder (`slurm/`, the manifest's `slurm`), checked by `tests/slurm.rs`.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                if entry.file_name() != "_lock" && rel != Path::new("slurm") {
                    walk(root, &path, out);
                }
            } else if rel == Path::new("manifest.json") {
                let mut m: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                m.as_object_mut().unwrap().remove("slurm");
                for stage in m["stages"].as_array_mut().unwrap() {
                    stage.as_object_mut().unwrap().remove("seconds");
                    if let Some(train) = stage["stats"].as_object_mut() {
                        train.remove("tokens_per_sec");
                    }
                }
                out.insert(rel, serde_json::to_vec_pretty(&m).unwrap());
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Asserts two run folders hold the same files with the same bytes.
pub fn assert_same_tree(want: &Path, got: &Path) {
    let (a, b) = (tree(want), tree(got));
    let names = |t: &BTreeMap<PathBuf, Vec<u8>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "the same files");
    for (name, bytes) in &a {
        assert!(
            b[name] == *bytes,
            "{} differs ({} vs {} bytes)",
            name.display(),
            bytes.len(),
            b[name].len()
        );
    }
}

#[test]
fn run_on_the_sample_writes_every_stage_the_manifest_and_the_funnel() {
    let t = TestCommand::new();
    let run = t.path("run");
    let out = t.assert_exit_code(
        &[
            "-q",
            "run",
            "--config",
            "configs/pipeline.toml",
            "--output",
            run.to_str().unwrap(),
        ],
        0,
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("tokenize/meta.json")).unwrap()).unwrap();
    let train = meta["split"]["train"]["tokens"].as_u64().unwrap();
    let validation = meta["split"]["validation"]["tokens"].as_u64().unwrap();
    assert!(train > 1000, "{meta}");
    // One table from WARC records to tokens.
    for row in [
        "| read (documents in) | 8 |",
        "| language_id |",
        "| url_dedup |",
        "| tokenize | 4 |",
        &format!("| tokens (train + validation) | {train} + {validation} |"),
    ] {
        assert!(table.contains(row), "no `{row}` in\n{table}");
    }
    let png = std::fs::read(run.join("funnel.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["falconry"], env!("CARGO_PKG_VERSION"));
    let stages: Vec<&str> = manifest["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["refine", "dedup", "tokenize"]);
    assert!(manifest["stages"][2]["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(manifest["stages"][2]["stats"]["train"]["tokens"], train);
    let input = &manifest["inputs"][0];
    let size = std::fs::metadata(repo().join("examples/sample.warc.gz"))
        .unwrap()
        .len();
    assert_eq!(input["size"], size);
    assert_eq!(input["xxh3"].as_str().unwrap().len(), 16);
    let configs: Vec<&str> = manifest["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["of"].as_str().unwrap())
        .collect();
    assert_eq!(configs, ["pipeline", "refine", "dedup", "train"]);
    let pipeline = std::fs::read_to_string(repo().join("configs/pipeline.toml")).unwrap();
    assert_eq!(manifest["configs"][0]["text"], pipeline);
    for stage in ["refine", "dedup", "tokenize"] {
        assert!(run.join(stage).join("stats.json").exists(), "{stage}");
    }

    // A stage alone reads the folder of the one before it; a name that is none is a usage error.
    let again = t.assert_exit_code(
        &[
            "-q",
            "run",
            "--config",
            "configs/pipeline.toml",
            "--output",
            run.to_str().unwrap(),
            "--stages",
            "tokenize",
        ],
        0,
    );
    assert_eq!(String::from_utf8(again.stdout).unwrap(), table);
    t.assert_exit_code(
        &[
            "run",
            "--config",
            "configs/pipeline.toml",
            "--stages",
            "refine,sort",
        ],
        2,
    );
}

/// The same inputs and config give the same bytes, on one thread or four, and with each
/// stage split into three tasks (dedup: each step in turn).
#[test]
fn the_same_bytes_whatever_the_threads_or_tasks() {
    let t = TestCommand::new();
    let tokenizer = falcon_tokenizer();
    let config = pipeline_config(&t, &tokenizer);
    let input = data_dir().join("warc");
    let run = t.path("run");
    run_clean(&config, &input, &run, 1);
    let first = t.path("first");
    std::fs::rename(&run, &first).unwrap();
    run_clean(&config, &input, &run, 4);
    assert_same_tree(&first, &run);
    let shards = std::fs::read_dir(run.join("tokenize"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".bin"))
        .count();
    assert!(shards > 1, "{shards} token shards");

    // Three tasks per stage, each reading the run's folder of the stage before.
    let at = |p: &Path| p.to_str().unwrap().to_string();
    let refine_dir = t.path("tasks/refine");
    let dedup_dir = t.path("tasks/dedup");
    let tokenize_dir = t.path("tasks/tokenize");
    let mut commands: Vec<Vec<String>> = Vec::new();
    for task in 0..3 {
        commands.push(vec![
            "refine".into(),
            "--input".into(),
            at(&input),
            "--output".into(),
            at(&refine_dir),
        ]);
        commands
            .last_mut()
            .unwrap()
            .extend(["--task".into(), task.to_string()]);
    }
    for step in [
        "signatures",
        "buckets",
        "components",
        "exact_substring",
        "url_dedup",
        "filter",
    ] {
        for task in 0..3 {
            commands.push(vec![
                "dedup".into(),
                "--input".into(),
                at(&run.join("refine")),
                "--output".into(),
                at(&dedup_dir),
                "--config".into(),
                "configs/dedup.toml".into(),
                "--stage".into(),
                step.into(),
                "--task".into(),
                task.to_string(),
            ]);
        }
    }
    for task in 0..3 {
        commands.push(vec![
            "tokenize".into(),
            "--input".into(),
            at(&run.join("dedup")),
            "--output".into(),
            at(&tokenize_dir),
            "--tokenizer".into(),
            at(&tokenizer),
            "--shard-tokens".into(),
            "20000".into(),
            "--validation-fraction".into(),
            "0.05".into(),
            "--task".into(),
            task.to_string(),
        ]);
    }
    for args in &commands {
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(["--tasks", "3", "-q"]);
        t.assert_exit_code(&args, 0);
    }
    for (stage, dir) in [
        ("refine", &refine_dir),
        ("dedup", &dedup_dir),
        ("tokenize", &tokenize_dir),
    ] {
        // The stage commands draw their funnel; `falconry run` draws one for the run.
        let _ = std::fs::remove_file(dir.join("funnel.png"));
        assert_same_tree(&run.join(stage), dir);
    }
}

/// A small xorshift: the kill points come from a seed, so a failure replays.
struct Points(u64);

impl Points {
    fn next_fraction(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `kill -9` at seeded random points of `falconry run`, then the same command again, killed
/// once more while it resumes, then once to the end: the bytes of an uninterrupted run in
/// every stage's folder (dedup's steps and tokenize's shards included), no temporary file
/// left. Each point starts from an empty folder; the points spread over the clean run's time.
#[test]
fn kill_9_at_random_points_then_the_same_command_gives_the_same_bytes() {
    let t = TestCommand::new();
    let cases = [
        (
            repo().join("examples/sample.warc.gz"),
            repo().join("examples/tokenizer.json"),
        ),
        (data_dir().join("warc"), falcon_tokenizer()),
    ];
    const POINTS: usize = 3;
    for (case, (input, tokenizer)) in cases.iter().enumerate() {
        let config = pipeline_config(&t, tokenizer);
        let run = t.path(&format!("run-{case}"));
        let start = Instant::now();
        run_clean(&config, input, &run, 2);
        let clean = start.elapsed();
        let reference = t.path(&format!("reference-{case}"));
        std::fs::rename(&run, &reference).unwrap();

        let mut random = Points(0x5eed_0000 + case as u64);
        let mut killed = Vec::new();
        for point in 0..POINTS {
            // Point k falls in the k-th of POINTS slices of the first 90% of a clean run.
            let first = (point as f64 + random.next_fraction()) / POINTS as f64 * 0.9;
            let second = random.next_fraction() * (1.0 - first);
            for fraction in [first, second] {
                let mut child = run_command(&config, input, &run, 2).spawn().unwrap();
                std::thread::sleep(clean.mul_f64(fraction));
                // SIGKILL: no clean-up of any kind.
                let _ = child.kill();
                let status = child.wait().unwrap();
                killed.push((fraction, status.code().is_none()));
            }
            run_clean(&config, input, &run, 2);
            assert_same_tree(&reference, &run);
            let left: Vec<PathBuf> = tree(&run)
                .into_keys()
                .filter(|p| p.to_string_lossy().contains(".tmp"))
                .collect();
            assert!(left.is_empty(), "temporary files left: {left:?}");
            std::fs::remove_dir_all(&run).unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "kill loop over time"
            );
        }
        assert!(
            killed.iter().any(|(_, k)| *k),
            "no kill landed while {} ran: {killed:?}",
            input.display()
        );
    }
}
