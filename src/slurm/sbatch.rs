//! Writing a job array's script and handing it to `sbatch`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::plan::{JobRecord, SlurmRecord};

/// `RUN_DIR/slurm/<job>/`: the job's script, logs and task bookkeeping.
pub fn job_dir(run_dir: &Path, job: &JobRecord) -> PathBuf {
    run_dir.join("slurm").join(&job.name)
}

/// Writes the job's script, `RUN_DIR/slurm/<job>/job.sh`: each array task runs the pinned
/// binary's `slurm-task`, which reads everything else from the manifest.
pub fn write_script(record: &SlurmRecord, run_dir: &Path, job: &JobRecord) -> Result<PathBuf> {
    let dir = job_dir(run_dir, job);
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let script = format!(
        "#!/bin/sh\n# falconry slurm: job array `{name}`, {tasks} task(s); task $SLURM_ARRAY_TASK_ID runs \
         that share of the stage.\nexport RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\nexec {bin} slurm-task {run} {name}\n",
        name = job.name,
        tasks = job.tasks,
        bin = quote(&record.binary),
        run = quote(run_dir),
    );
    let path = dir.join("job.sh");
    falconry_refine::folder::write_atomic(&path, script.as_bytes())?;
    Ok(path)
}

/// A path as one word of a POSIX shell.
fn quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// `--array`'s value: the task ids (ranges where they run on), at most `max_running` at once.
pub fn array_spec(tasks: &[usize], max_running: u32) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut k = 0;
    while k < tasks.len() {
        let start = tasks[k];
        while k + 1 < tasks.len() && tasks[k + 1] == tasks[k] + 1 {
            k += 1;
        }
        parts.push(if tasks[k] == start {
            start.to_string()
        } else {
            format!("{start}-{}", tasks[k])
        });
        k += 1;
    }
    format!("{}%{max_running}", parts.join(","))
}

/// The `sbatch` command for `script`: the run's options, the array, `afterok` on `after`
/// (whose failure cancels this job rather than leaving it pending for ever).
pub fn command(
    record: &SlurmRecord,
    run_dir: &Path,
    job: &JobRecord,
    script: &Path,
    array: &str,
    after: Option<&str>,
) -> Command {
    let o = &record.sbatch;
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable")
        .arg(format!("--job-name=falconry-{}", job.name))
        .arg(format!("--partition={}", o.partition))
        .arg(format!("--array={array}"))
        .arg(format!("--cpus-per-task={}", o.cpus_per_task))
        .arg("--chdir")
        .arg(&record.workdir)
        .arg("--output")
        .arg(job_dir(run_dir, job).join("logs/task-%a.log"))
        .arg("--open-mode=append");
    if let Some(mem) = &o.mem {
        cmd.arg(format!("--mem={mem}"));
    }
    if let Some(time) = &o.time {
        cmd.arg(format!("--time={time}"));
    }
    if let Some(id) = after {
        cmd.arg(format!("--dependency=afterok:{id}"))
            .arg("--kill-on-invalid-dep=yes");
    }
    cmd.arg(script);
    cmd
}

/// The command as a line for people (`--dry-run`).
pub fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `sbatch --parsable`; returns the job id.
pub fn submit(mut cmd: Command) -> Result<String> {
    let out = cmd
        .output()
        .context("running sbatch (is Slurm installed here, and SLURM_CONF set if needed?)")?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            show(&cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("sbatch printed no job id: {text:?}");
    }
    Ok(id)
}

/// The Slurm job ids (array ids) still queued or running, by `squeue`.
pub fn queued() -> Result<Vec<String>> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%F"])
        .output()
        .context("running squeue")?;
    if !out.status.success() {
        bail!(
            "squeue failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect())
}
