//! `falconry dedup`.

use std::path::Path;

use anyhow::{Context, Result};
use falconry_dedup::{run_dedup, DedupConfig, RunOptions, Step};
use falconry_refine::{funnel, RunStats};

use crate::cli::DedupArgs;

pub fn run(args: DedupArgs) -> Result<()> {
    let config = match &args.config {
        Some(p) => {
            DedupConfig::load(p).with_context(|| format!("loading --config {}", p.display()))?
        }
        None => DedupConfig::default(),
    };
    let step = match &args.stage {
        Some(name) => Some(Step::from_name(name).with_context(|| {
            let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
            format!("--stage {name}: not one of {}", names.join(", "))
        })?),
        None => None,
    };
    let task = crate::refine::task(&args.task)?;
    if task.count > 1 && step.is_none() {
        return Err(crate::cli::usage(
            "--task/--tasks split one step across a job array: name it with --stage",
        ));
    }
    let options = RunOptions {
        task: step.map(|_| (task.index, task.count)),
        step,
        explain: args.explain,
        allow_changed_inputs: args.allow_changed_inputs,
    };
    let dedup = run_dedup(&args.input, &args.output, &config, &options)
        .with_context(|| format!("deduplicating into {}", args.output.display()))?;
    if step.is_some_and(|s| s != Step::Filter) {
        return Ok(());
    }
    // The funnel continues refine's: its rows first when the inputs carry a stats.json.
    let mut stats = refine_stats(&args.input)?;
    let seconds = dedup.seconds;
    stats += &dedup;
    stats.seconds = seconds;
    let json = serde_json::to_vec_pretty(&stats)?;
    falconry_refine::dataset::write_atomic(&args.output.join("stats.json"), &json)?;
    if let Err(e) = crate::plot::funnel(&funnel::rows(&stats), &args.output.join("funnel.png")) {
        tracing::warn!("funnel.png not written: {e:#}");
    }
    crate::say(&funnel::table(&stats));
    Ok(())
}

/// The sum of the `stats.json` files beside the inputs (refine's funnel), if any.
fn refine_stats(inputs: &[std::path::PathBuf]) -> Result<RunStats> {
    let mut total = RunStats::default();
    for input in inputs {
        let dir = if input.is_dir() {
            input.as_path()
        } else {
            input.parent().unwrap_or(Path::new("."))
        };
        let path = dir.join("stats.json");
        if let Ok(text) = std::fs::read(&path) {
            let stats: RunStats = serde_json::from_slice(&text)
                .with_context(|| format!("reading {}", path.display()))?;
            total += &stats;
        }
    }
    Ok(total)
}
