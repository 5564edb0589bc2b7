//! `falconry status RUN_DIR`: each job array's tasks done, running, failed and not started,
//! from the run folder's markers, then what `squeue` and `sacct` say of the run's jobs.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::book::Book;
use crate::run::read_manifest;

pub fn run(run_dir: &Path) -> Result<()> {
    let record = read_manifest(run_dir).slurm.with_context(|| {
        format!(
            "{} holds no Slurm run (no `slurm` in its manifest.json)",
            run_dir.display()
        )
    })?;
    println!(
        "{:<24} {:>6} {:>6} {:>8} {:>7} {:>8}  jobs",
        "job", "tasks", "done", "running", "failed", "waiting"
    );
    for job in &record.jobs {
        let book = Book::open(run_dir, job)?;
        let (mut done, mut running, mut failed) = (0, 0, 0);
        for task in 0..job.tasks {
            if book.is_done(task)? {
                done += 1;
            } else {
                match book.state(task).map(|s| s.state) {
                    Some(s) if s == "running" => running += 1,
                    Some(s) if s == "failed" => failed += 1,
                    _ => {}
                }
            }
        }
        println!(
            "{:<24} {:>6} {:>6} {:>8} {:>7} {:>8}  {}",
            job.name,
            job.tasks,
            done,
            running,
            failed,
            job.tasks - done - running - failed,
            job.job_ids.join(",")
        );
    }
    let ids: Vec<&str> = record
        .jobs
        .iter()
        .flat_map(|j| &j.job_ids)
        .map(String::as_str)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let ids = ids.join(",");
    // Slurm's own view, where its commands are here (sacct needs accounting).
    for (name, args) in [
        (
            "squeue",
            vec!["-j", &ids, "-o", "%.18i %.24j %.10T %.10M %R"],
        ),
        (
            "sacct",
            vec![
                "-X",
                "-j",
                &ids,
                "-o",
                "JobID%18,JobName%24,State,ExitCode,Elapsed",
            ],
        ),
    ] {
        match Command::new(name).args(&args).output() {
            Ok(out) if out.status.success() => {
                println!(
                    "\n{name}:\n{}",
                    String::from_utf8_lossy(&out.stdout).trim_end()
                )
            }
            Ok(out) => println!("\n{name}: {}", String::from_utf8_lossy(&out.stderr).trim()),
            Err(_) => {}
        }
    }
    Ok(())
}
