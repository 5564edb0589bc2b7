//! `falconry slurm` on a real Slurm (issue 12): `tests/slurm/start.sh` starts munged,
//! slurmctld and slurmd on this machine (installing slurm-wlm and munge if needed); the
//! pipeline runs on `../shared/data/warc` as chained job arrays of several tasks and its run
//! folder holds the bytes of a local `falconry run`; a resume resubmits only the tasks without
//! a completion marker. If Slurm does not start, the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::pipeline::{assert_same_tree, falcon_tokenizer, pipeline_config, run_clean};
use crate::util::{data_dir, repo, TestCommand};

/// A one-node Slurm, stopped (its daemons, by pid) when dropped.
struct Slurm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Slurm {
    fn start() -> Slurm {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(repo().join("tests/slurm/start.sh"))
            .arg(dir.path())
            .output()
            .unwrap();
        let mut slurm = Slurm {
            conf: PathBuf::new(),
            dir,
        };
        assert!(
            out.status.success(),
            "Slurm did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        slurm.conf = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        slurm
    }

    /// `falconry ARGS` as a Slurm client (SLURM_CONF names this cluster).
    fn falconry(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_falconry"))
            .args(args)
            .current_dir(repo())
            .env("SLURM_CONF", &self.conf)
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("SLURM_ARRAY_TASK_COUNT")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "falconry {args:?}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `falconry status`'s rows: job, tasks, done, running, failed, waiting.
    fn status(&self, run: &Path) -> Vec<(String, [usize; 5])> {
        let out = self.falconry(&["status", run.to_str().unwrap()]);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let n = |i: usize| f[i].parse::<usize>().unwrap();
                (f[0].to_string(), [n(1), n(2), n(3), n(4), n(5)])
            })
            .collect()
    }

    /// Waits until every task of the run is done; panics on a failed task, with its log.
    fn wait(&self, run: &Path) {
        let start = Instant::now();
        loop {
            let rows = self.status(run);
            if let Some((job, _)) = rows.iter().find(|(_, c)| c[3] > 0) {
                let logs = run.join("slurm").join(job).join("logs");
                let text: String = std::fs::read_dir(&logs)
                    .unwrap()
                    .flatten()
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect();
                panic!("a task of {job} failed:\n{text}");
            }
            if rows.iter().all(|(_, c)| c[1] == c[0]) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(240),
                "the jobs did not finish: {rows:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/slurmctld.log")).unwrap_or_default()
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tests/slurm/stop.sh"))
            .arg(self.dir.path())
            .status();
    }
}

fn manifest(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn job_arrays_on_a_real_slurm_write_the_bytes_of_a_local_run() {
    let slurm = Slurm::start();
    let t = TestCommand::new();
    let config = pipeline_config(&t, &falcon_tokenizer());
    let input = data_dir().join("warc");
    // The reference: a local run in the same folder (dedup and tokenize name their units
    // after the paths of the files they read), moved aside.
    let run = t.path("run");
    run_clean(&config, &input, &run, 2);
    let local = t.path("local");
    std::fs::rename(&run, &local).unwrap();

    let at = |p: &Path| p.to_str().unwrap().to_string();
    let (config_s, input_s, run_s) = (at(&config), at(&input), at(&run));
    slurm.falconry(&[
        "slurm",
        "--config",
        &config_s,
        "--partition",
        "test",
        "--tasks",
        "3",
        "--input",
        &input_s,
        "--output",
        &run_s,
    ]);
    let m = manifest(&run);
    let record = &m["slurm"];
    assert_eq!(record["binary"], env!("CARGO_BIN_EXE_falconry"));
    assert_eq!(record["config"], config_s);
    let jobs: Vec<(String, u64)> = record["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            assert_eq!(j["job_ids"].as_array().unwrap().len(), 1, "{j}");
            (
                j["name"].as_str().unwrap().into(),
                j["tasks"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = [
        ("refine", 3),
        ("dedup-signatures", 3),
        ("dedup-buckets", 3),
        ("dedup-components", 3),
        ("dedup-exact_substring", 3),
        ("dedup-url_dedup", 3),
        ("dedup-filter", 3),
        ("tokenize", 3),
        ("finish", 1),
    ]
    .iter()
    .map(|(n, k)| (n.to_string(), *k))
    .collect();
    assert_eq!(jobs, want);
    slurm.wait(&run);
    // Every task ran under Slurm and logged into the run folder.
    for (job, tasks) in &jobs {
        for task in 0..*tasks {
            let log = run.join(format!("slurm/{job}/logs/task-{task}.log"));
            assert!(log.exists(), "{}", log.display());
        }
    }
    assert_same_tree(&local, &run);

    // Nothing left: a resume submits nothing.
    let out = slurm.falconry(&["slurm", "--resume", &run_s]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("every task is done"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two tasks without their markers: only they are resubmitted, chained, and finish.
    for marker in [
        "tokenize/_done/task-00001.json",
        "finish/_done/task-00000.json",
    ] {
        std::fs::remove_file(run.join("slurm").join(marker)).unwrap();
    }
    let rows = slurm.status(&run);
    assert_eq!(rows[7], ("tokenize".into(), [3, 2, 0, 0, 1]));
    let out = slurm.falconry(&["slurm", "--resume", &run_s]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("tokenize: job ") && said.contains("tasks 1%"),
        "{said}"
    );
    assert!(
        said.contains("finish: job ") && !said.contains("refine"),
        "{said}"
    );
    let m = manifest(&run);
    let submissions: Vec<usize> = m["slurm"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_ids"].as_array().unwrap().len())
        .collect();
    assert_eq!(submissions, [1, 1, 1, 1, 1, 1, 1, 2, 2]);
    slurm.wait(&run);
    assert_same_tree(&local, &run);
}

/// No Slurm needed: `--dry-run` prints the chained sbatch commands and writes the scripts and
/// the manifest; flags and folders that make no run are clear errors.
#[test]
fn dry_run_prints_the_chain_and_bad_calls_say_why() {
    let t = TestCommand::new();
    let config = pipeline_config(&t, &falcon_tokenizer());
    let input = data_dir().join("warc");
    let run = t.path("run");
    let out = t.assert_exit_code(
        &[
            "slurm",
            "--config",
            config.to_str().unwrap(),
            "--partition",
            "cpu",
            "--tasks",
            "2",
            "--mem",
            "4G",
            "--input",
            input.to_str().unwrap(),
            "--output",
            run.to_str().unwrap(),
            "--dry-run",
        ],
        0,
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 9, "{lines:#?}");
    assert!(lines[0].starts_with(
        "sbatch --parsable --job-name=falconry-refine --partition=cpu --array=0-1%256"
    ));
    assert!(lines[0].contains("--mem=4G") && !lines[0].contains("--dependency"));
    assert!(
        lines[3].contains("--job-name=falconry-dedup-components")
            && lines[3].contains("--array=0-1%256")
            && lines[3].contains("--dependency=afterok:<dedup-buckets>")
    );
    let script = std::fs::read_to_string(run.join("slurm/refine/job.sh")).unwrap();
    assert!(script.contains(&format!(
        "exec '{}' slurm-task",
        env!("CARGO_BIN_EXE_falconry")
    )));
    assert!(manifest(&run)["slurm"]["jobs"][0]["job_ids"]
        .as_array()
        .unwrap()
        .is_empty());

    // A task index beyond the job's tasks, a job the run has none of, a folder with no run.
    let run_s = run.to_str().unwrap();
    let bad = t.assert_exit_code(&["slurm-task", run_s, "refine", "--task", "2"], 2);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--task 2 must be below --tasks 2"));
    let bad = t.assert_exit_code(&["slurm-task", run_s, "sort", "--task", "0"], 1);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no job `sort` in this run"));
    let empty = t.path("empty");
    let bad = t.assert_exit_code(&["status", empty.to_str().unwrap()], 1);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("holds no Slurm run"));
    t.assert_exit_code(&["slurm", "--config", config.to_str().unwrap()], 2);
}
