//! `falconry refine`.

use anyhow::{Context, Result};
use falconry_refine::folder::Task;
use falconry_refine::run::{self, RunOptions};
use falconry_refine::{funnel, RefineConfig};

use crate::cli::{RefineArgs, TaskArgs};
use crate::progress;

/// Resolves `--task/--tasks` into a validated share; a bad pair is a usage error (exit 2).
pub fn task(args: &TaskArgs) -> Result<Task> {
    Task::new(args.task as usize, args.tasks as usize).map_err(|e| crate::cli::usage(e.to_string()))
}

/// Loads `--config`, or RefinedWeb's defaults.
pub fn config(path: Option<&std::path::Path>) -> Result<RefineConfig> {
    match path {
        Some(p) => {
            RefineConfig::load(p).with_context(|| format!("loading --config {}", p.display()))
        }
        None => Ok(RefineConfig::default()),
    }
}

pub fn run(args: RefineArgs) -> Result<()> {
    let mut config = config(args.config.as_deref())?;
    config.language_id.model_override = args.lid_model.clone();
    let task = task(&args.task)?;
    let inputs = run::expand_inputs(&args.input).context("resolving --input")?;
    let total: u64 = inputs
        .iter()
        .enumerate()
        .filter(|(k, _)| task.owns(*k))
        .filter_map(|(_, p)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress::bytes_bar(total, "refine");
    let on_file_done = |bytes: u64| bar.inc(bytes);
    let opts = RunOptions {
        inputs: &inputs,
        output: &args.output,
        task,
        explain: args.explain.as_deref(),
        on_file_done: &on_file_done,
        allow_changed_inputs: args.allow_changed_inputs,
    };
    let stats = run::refine(&config, &opts)
        .with_context(|| format!("refining into {}", args.output.display()))?;
    bar.finish_and_clear();
    let png = args.output.join("funnel.png");
    if let Err(e) = crate::plot::funnel(&funnel::rows(&stats), &png) {
        tracing::warn!("funnel.png not written: {e:#}");
    }
    crate::say(&funnel::table(&stats));
    crate::say(&format!(
        "{} files, {:.1} MB in {:.1} s; stats: {}",
        inputs
            .iter()
            .enumerate()
            .filter(|(k, _)| task.owns(*k))
            .count(),
        total as f64 / 1e6,
        stats.seconds,
        args.output.join("stats.json").display()
    ));
    Ok(())
}
