//! `falconry dedup`.

use anyhow::{Context, Result};
use falconry_dedup::{run_dedup, DedupConfig, RunOptions, Step};
use falconry_refine::funnel;

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
        task: step.map(|_| task),
        step,
        explain: args.explain,
        allow_changed_inputs: args.allow_changed_inputs,
    };
    // The funnel continues refine's: its rows first when the inputs carry a stats.json.
    let stats = run_dedup(&args.input, &args.output, &config, &options)
        .with_context(|| format!("deduplicating into {}", args.output.display()))?;
    if step.is_some_and(|s| s != Step::Filter) {
        return Ok(());
    }
    if let Err(e) = crate::plot::funnel(&funnel::rows(&stats), &args.output.join("funnel.png")) {
        tracing::warn!("funnel.png not written: {e:#}");
    }
    crate::say(&funnel::table(&stats));
    Ok(())
}
