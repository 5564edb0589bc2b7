//! `falconry slurm`: the pipeline as Slurm job arrays, one per stage (one per step of dedup),
//! chained with `afterok`; `falconry slurm --resume` resubmits the tasks that did not finish;
//! `falconry status` counts them. Each array task runs its share of the stage through the same
//! library calls as `falconry run` (the run-folder convention: unit `k` is task `k mod N`), so
//! the run folder ends with the bytes of a local run.

mod book;
pub mod plan;
mod sbatch;
pub mod status;
pub mod task;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cli::SlurmArgs;
use crate::run::{pin, read_manifest, write_manifest, Pipeline};
use book::Book;
use plan::{SbatchOptions, SlurmRecord};

pub fn run(args: SlurmArgs) -> Result<()> {
    match &args.resume {
        Some(run_dir) => resume(run_dir, &args),
        None => submit_new(&args),
    }
}

fn submit_new(args: &SlurmArgs) -> Result<()> {
    let config = args.config.as_deref().context("--config is required")?;
    let config = std::path::absolute(config)
        .with_context(|| format!("resolving --config {}", config.display()))?;
    let mut pipeline = Pipeline::load(
        &config,
        &args.input,
        args.output.as_deref(),
        args.stages.as_deref(),
    )?;
    pipeline.run_dir = std::path::absolute(&pipeline.run_dir)?;
    let run_dir = pipeline.run_dir.clone();
    let mut manifest = read_manifest(&run_dir);
    if manifest
        .slurm
        .as_ref()
        .is_some_and(|s| s.jobs.iter().any(|j| !j.job_ids.is_empty()))
    {
        bail!(
            "{} was already submitted to Slurm: `falconry slurm --resume {}` resubmits what is left",
            run_dir.display(),
            run_dir.display()
        );
    }
    let files = if pipeline.stages.iter().any(|s| s == "refine") {
        pipeline
            .input_files()?
            .iter()
            // Absolute, as given: the manifest names them as a local run's does.
            .map(|p| match falconry_refine::remote::is_url(p) {
                true => Ok(p.clone()),
                false => {
                    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
                }
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    // Without refine the files are not known here: arrays of --tasks, surplus tasks idle.
    let units = if files.is_empty() {
        args.tasks as usize
    } else {
        files.len()
    };
    let binary = std::env::current_exe().context("locating the falconry binary")?;
    let record = SlurmRecord {
        binary_xxh3: crate::run::input_record(&binary)?.xxh3,
        binary,
        config,
        workdir: std::env::current_dir()?,
        inputs: files.clone(),
        stages: pipeline.stages.clone(),
        sbatch: SbatchOptions {
            partition: args.partition.clone().context("--partition is required")?,
            max_running: args.max_running,
            cpus_per_task: args.cpus_per_task.unwrap_or(1),
            mem: args.mem.clone(),
            time: args.time.clone(),
        },
        jobs: plan::jobs(&pipeline, units, args.tasks as usize)?,
    };
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    pin(&mut manifest, &pipeline, &files)?;
    manifest.slurm = Some(record);
    let all: Vec<Vec<usize>> = manifest
        .slurm
        .as_ref()
        .map(|r| r.jobs.iter().map(|j| (0..j.tasks).collect()).collect())
        .unwrap_or_default();
    submit(&run_dir, &mut manifest, &all, args.dry_run)
}

/// Resubmits, in order and chained, each job's tasks that have no completion marker.
fn resume(run_dir: &Path, args: &SlurmArgs) -> Result<()> {
    let mut manifest = read_manifest(run_dir);
    let record = manifest.slurm.as_mut().with_context(|| {
        format!(
            "{} holds no Slurm run (no `slurm` in its manifest.json)",
            run_dir.display()
        )
    })?;
    record.check_binary()?;
    if !args.dry_run {
        let queued = sbatch::queued()?;
        let ids: Vec<&String> = record.jobs.iter().flat_map(|j| &j.job_ids).collect();
        if let Some(id) = ids.iter().find(|id| queued.contains(id)) {
            bail!("job {id} of this run is still queued or running: wait for it or `scancel` it first");
        }
    }
    // What a resume may change: a task that ran out of memory or time gets more.
    if let Some(c) = args.cpus_per_task {
        record.sbatch.cpus_per_task = c;
    }
    if args.mem.is_some() {
        record.sbatch.mem = args.mem.clone();
    }
    if args.time.is_some() {
        record.sbatch.time = args.time.clone();
    }
    let mut left = Vec::new();
    for job in &record.jobs {
        let book = Book::open(run_dir, job)?;
        let mut todo = Vec::new();
        for task in 0..job.tasks {
            if !book.is_done(task)? {
                todo.push(task);
            }
        }
        left.push(todo);
    }
    if left.iter().all(Vec::is_empty) {
        crate::say(&format!("{}: every task is done", run_dir.display()));
        return Ok(());
    }
    submit(run_dir, &mut manifest, &left, args.dry_run)
}

/// Writes the scripts and submits job `k`'s `tasks[k]` (skipping jobs with none), each after
/// the one before; the manifest records every job id as soon as it has it.
fn submit(
    run_dir: &Path,
    manifest: &mut crate::run::Manifest,
    tasks: &[Vec<usize>],
    dry_run: bool,
) -> Result<()> {
    write_manifest(run_dir, manifest)?;
    let mut after: Option<String> = None;
    for (k, todo) in tasks.iter().enumerate() {
        if todo.is_empty() {
            continue;
        }
        let record = manifest.slurm.as_ref().context("no slurm record")?;
        let job = &record.jobs[k];
        let script: PathBuf = sbatch::write_script(record, run_dir, job)?;
        let array = sbatch::array_spec(todo, record.sbatch.max_running);
        let cmd = sbatch::command(record, run_dir, job, &script, &array, after.as_deref());
        if dry_run {
            println!("{}", sbatch::show(&cmd));
            after = Some(format!("<{}>", job.name));
            continue;
        }
        let id = sbatch::submit(cmd)?;
        crate::say(&format!("{}: job {id}, tasks {array}", job.name));
        let slurm = manifest.slurm.as_mut().context("no slurm record")?;
        slurm.jobs[k].job_ids.push(id.clone());
        write_manifest(run_dir, manifest)?;
        after = Some(id);
    }
    Ok(())
}
