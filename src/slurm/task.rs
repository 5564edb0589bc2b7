//! `falconry slurm-task RUN_DIR JOB` (hidden): what one task of a job array runs. Task
//! `$SLURM_ARRAY_TASK_ID` of the job's N runs that share of the stage with the binary, config
//! and inputs pinned in the manifest, and leaves its completion marker or its failure.

use anyhow::{Context, Result};
use falconry_refine::folder::Task;

use super::book::Book;
use super::plan::FINISH;
use crate::cli::{RunArgs, SlurmTaskArgs};
use crate::run::{read_manifest, Pipeline};

pub fn run(args: SlurmTaskArgs) -> Result<()> {
    let run_dir = &args.run_dir;
    let record = read_manifest(run_dir).slurm.with_context(|| {
        format!(
            "{} holds no Slurm run (no `slurm` in its manifest.json)",
            run_dir.display()
        )
    })?;
    let job = record.job(&args.job)?;
    let task = Task::new(args.task, job.tasks).map_err(|e| crate::cli::usage(e.to_string()))?;
    let book = Book::open(run_dir, job)?;
    book.started(task.index)?;
    let result = record.check_binary().and_then(|()| {
        if job.name == FINISH {
            return crate::run::run(RunArgs {
                config: record.config.clone(),
                input: record.inputs.clone(),
                output: Some(run_dir.clone()),
                stages: Some(record.stages.clone()),
            });
        }
        let pipeline = Pipeline::load(
            &record.config,
            &record.inputs,
            Some(run_dir),
            Some(&record.stages),
        )?;
        pipeline.stage(&job.stage, task, job.step()?).map(|_| ())
    });
    match &result {
        Ok(()) => book.done(task.index)?,
        Err(e) => book.failed(task.index, e)?,
    }
    result
}
