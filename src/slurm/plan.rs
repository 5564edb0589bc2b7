//! What `falconry slurm` submits: the job arrays of a run, one per stage (one per step of
//! dedup), and their record in `RUN_DIR/manifest.json`, which pins the binary, the config and
//! the input files every task runs with.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use falconry_dedup::Step;
use serde::{Deserialize, Serialize};

use crate::run::Pipeline;

/// The last job: `falconry run` over the finished stage folders, which skips every done unit
/// and writes the manifest's stats and the funnel, as a local run does.
pub const FINISH: &str = "finish";

/// `manifest.json`'s `slurm`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlurmRecord {
    /// The falconry binary every task runs, and its xxh3-64: a task refuses a rebuilt one.
    pub binary: PathBuf,
    pub binary_xxh3: String,
    /// The pipeline config (absolute; its own paths are relative to it).
    pub config: PathBuf,
    /// The folder the tasks start in (`sbatch --chdir`): where `falconry slurm` ran.
    pub workdir: PathBuf,
    /// The input files, expanded once at submission.
    pub inputs: Vec<PathBuf>,
    pub stages: Vec<String>,
    pub sbatch: SbatchOptions,
    /// In submission order; each depends on the one before (`afterok`).
    pub jobs: Vec<JobRecord>,
}

/// The `sbatch` options of every array.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SbatchOptions {
    pub partition: String,
    /// At most this many tasks of an array run at once (`--array=...%MAX`).
    pub max_running: u32,
    pub cpus_per_task: u32,
    pub mem: Option<String>,
    pub time: Option<String>,
}

/// One job array.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRecord {
    /// `refine`, `dedup-signatures`, ..., `tokenize`, `train`, `finish`.
    pub name: String,
    pub stage: String,
    /// dedup's step, when the job is one.
    pub step: Option<String>,
    /// Task `i` of the array runs task `i` of this many.
    pub tasks: usize,
    /// Slurm job ids, one per submission (a resume adds one).
    pub job_ids: Vec<String>,
}

impl JobRecord {
    fn new(stage: &str, step: Option<Step>, tasks: usize) -> JobRecord {
        JobRecord {
            name: match step {
                Some(s) => format!("{stage}-{}", s.name()),
                None => stage.into(),
            },
            stage: stage.into(),
            step: step.map(|s| s.name().into()),
            tasks: tasks.max(1),
            job_ids: Vec::new(),
        }
    }

    /// dedup's step, parsed.
    pub fn step(&self) -> Result<Option<Step>> {
        self.step
            .as_deref()
            .map(|name| Step::from_name(name).with_context(|| format!("no dedup step `{name}`")))
            .transpose()
    }
}

impl SlurmRecord {
    pub fn job(&self, name: &str) -> Result<&JobRecord> {
        self.jobs.iter().find(|j| j.name == name).with_context(|| {
            let names: Vec<&str> = self.jobs.iter().map(|j| j.name.as_str()).collect();
            format!("no job `{name}` in this run (it has {})", names.join(", "))
        })
    }

    /// An error unless the binary is the one the run was submitted with.
    pub fn check_binary(&self) -> Result<()> {
        let now = file_xxh3(&self.binary)?;
        if now != self.binary_xxh3 {
            bail!(
                "{} changed since the run was submitted (xxh3 {now}, pinned {}): rebuilt? \
                 submit a new run, or put the pinned binary back",
                self.binary.display(),
                self.binary_xxh3
            );
        }
        Ok(())
    }
}

/// The job arrays of `pipeline` on `files`, each of at most `max_tasks` tasks: as many as the
/// stage has units (an input file for refine and tokenize and for dedup's per-shard steps, a
/// bucket or a URL partition; the phases of `components` and `exact_substring` run over
/// buckets and shards: [`Step::units`]), so no task idles.
pub fn jobs(pipeline: &Pipeline, files: usize, max_tasks: usize) -> Result<Vec<JobRecord>> {
    let mut jobs = Vec::new();
    for stage in &pipeline.stages {
        match stage.as_str() {
            "refine" | "tokenize" => jobs.push(JobRecord::new(stage, None, files.min(max_tasks))),
            "dedup" => {
                let config = pipeline.dedup_config()?;
                for step in Step::ALL {
                    let units = step.units(&config, files);
                    jobs.push(JobRecord::new(stage, Some(step), units.min(max_tasks)));
                }
            }
            _ => jobs.push(JobRecord::new(stage, None, 1)),
        }
    }
    jobs.push(JobRecord::new(FINISH, None, 1));
    Ok(jobs)
}

/// A file's xxh3-64, 16 hex digits.
fn file_xxh3(path: &Path) -> Result<String> {
    Ok(crate::run::input_record(path)?.xxh3)
}
