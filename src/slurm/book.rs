//! Where the tasks of a run's job arrays say how they went, in `RUN_DIR/slurm/<job>/`: a
//! completion marker `_done/task-NNNNN.json` (the run-folder convention's [`Markers`]) once the
//! task's share of the stage is done, and `_state/task-NNNNN.json` while it runs or after it
//! failed. `falconry status` counts them and `falconry slurm --resume` resubmits the tasks
//! without a marker.

use std::path::{Path, PathBuf};

use anyhow::Result;
use falconry_refine::folder::{write_atomic, Markers};
use serde::{Deserialize, Serialize};

use super::plan::JobRecord;

/// What a task's `_state` file says.
#[derive(Debug, Serialize, Deserialize)]
pub struct TaskState {
    /// `running` or `failed`.
    pub state: String,
    pub host: String,
    /// The Slurm job that ran it (`SLURM_JOB_ID`).
    pub slurm_job: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The bookkeeping of one job array.
pub struct Book {
    markers: Markers,
    states: PathBuf,
    /// What a marker must name to count: the job and its task count, so a marker of an array
    /// split otherwise does not pass for this one.
    inputs: String,
}

impl Book {
    pub fn open(run_dir: &Path, job: &JobRecord) -> Result<Book> {
        let dir = run_dir.join("slurm").join(&job.name);
        let states = dir.join("_state");
        std::fs::create_dir_all(&states)?;
        Ok(Book {
            markers: Markers::open(&dir)?,
            states,
            inputs: format!("{}/{}", job.name, job.tasks),
        })
    }

    fn unit(task: usize) -> String {
        format!("task-{task:05}")
    }

    pub fn is_done(&self, task: usize) -> Result<bool> {
        Ok(self.markers.is_done(&Self::unit(task), &self.inputs)?)
    }

    pub fn state(&self, task: usize) -> Option<TaskState> {
        let path = self.states.join(format!("{}.json", Self::unit(task)));
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    fn set_state(&self, task: usize, state: &str, error: Option<String>) -> Result<()> {
        let record = TaskState {
            state: state.into(),
            host: falconry_refine::lock::hostname(),
            slurm_job: std::env::var("SLURM_JOB_ID").ok(),
            error,
        };
        let path = self.states.join(format!("{}.json", Self::unit(task)));
        write_atomic(&path, &serde_json::to_vec_pretty(&record)?)?;
        Ok(())
    }

    pub fn started(&self, task: usize) -> Result<()> {
        self.set_state(task, "running", None)
    }

    pub fn failed(&self, task: usize, error: &anyhow::Error) -> Result<()> {
        self.set_state(task, "failed", Some(format!("{error:#}")))
    }

    /// Marks the task done; its state file goes.
    pub fn done(&self, task: usize) -> Result<()> {
        self.markers
            .write(&Self::unit(task), &self.inputs, &serde_json::Value::Null)?;
        let path = self.states.join(format!("{}.json", Self::unit(task)));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
