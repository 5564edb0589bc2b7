//! `falconry eval-tasks`: ARC, HellaSwag, MMLU and TruthfulQA on a checkpoint, scored as
//! lm-evaluation-harness 0.4.13 scores them. A Markdown table on stdout (task, shots, metric,
//! value, stderr), lm-eval's `results.json` layout with `--output`, one JSON line per document
//! with `--log-samples`.

use std::io::Write;

use anyhow::{Context, Result};
use falconry_train::{eval_tasks_checkpoint, parse_tasks, EvalTasksOptions, Precision};
use serde::Serialize;

use crate::cli::{usage, EvalTasksArgs};
use crate::train::backend;

/// One `--log-samples` line.
#[derive(Serialize)]
struct SampleLine<'a> {
    task: &'a str,
    doc: usize,
    lls: &'a [f64],
    metrics: &'a std::collections::BTreeMap<String, f64>,
}

pub fn run(args: EvalTasksArgs) -> Result<()> {
    let tasks = parse_tasks(&args.tasks, args.shots).map_err(|e| usage(format!("--tasks: {e}")))?;
    let tokenizer = args
        .tokenizer
        .clone()
        .unwrap_or_else(|| args.checkpoint.join("tokenizer.json"));
    let opts = EvalTasksOptions {
        tasks,
        limit: args.limit.map(|l| l as usize),
        data: args.data.clone(),
        dtype: args.precision.dtype(),
    };
    let bar = crate::progress::count_bar(0, "eval-tasks");
    let mut progress = |task: &str, done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(task.to_string());
    };
    let started = std::time::Instant::now();
    let report = eval_tasks_checkpoint::<backend::Infer>(
        &args.checkpoint,
        &tokenizer,
        &opts,
        &backend::device(),
        &mut progress,
    )
    .with_context(|| format!("evaluating {}", args.checkpoint.display()))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();

    let mut out = std::io::stdout().lock();
    writeln!(out, "| task | shots | metric | value | stderr |")?;
    writeln!(out, "|---|---:|---|---:|---:|")?;
    for r in report.headline() {
        let name = match r.benchmark.approximate() {
            Some(_) => format!("{} (approximate)", r.name),
            None => r.name.clone(),
        };
        for s in &r.scores {
            let stderr = s.stderr.map_or("N/A".to_string(), |e| format!("{e:.4}"));
            writeln!(
                out,
                "| {name} | {} | {} | {:.4} | {stderr} |",
                r.shots, s.metric, s.value
            )?;
        }
    }
    out.flush()?;
    let docs = report.items.len();
    crate::say(&format!(
        "{docs} documents in {seconds:.1} s ({:.1} documents/s)",
        docs as f64 / seconds.max(1e-9)
    ));
    if report
        .headline()
        .iter()
        .any(|r| r.benchmark.approximate().is_some())
    {
        crate::say("hellaswag is approximate: its data is a lossy dump of the validation set (shared/data/eval/PROVENANCE.md)");
    }

    if let Some(path) = &args.output {
        let config = serde_json::json!({
            "model": "falconry",
            "model_args": format!("checkpoint={}", args.checkpoint.display()),
            "tokenizer": tokenizer.display().to_string(),
            "data": args.data.display().to_string(),
            "limit": args.limit,
            "fewshot_seed": falconry_train::FEWSHOT_SEED,
            "precision": args.precision,
            "seconds": seconds,
        });
        let json = serde_json::to_string_pretty(&report.to_lm_eval_json(config))?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing --output {}", path.display()))?;
    }
    if let Some(path) = &args.log_samples {
        let mut text = String::new();
        for it in &report.items {
            text.push_str(&serde_json::to_string(&SampleLine {
                task: &it.task,
                doc: it.doc,
                lls: &it.lls,
                metrics: &it.metrics,
            })?);
            text.push('\n');
        }
        std::fs::write(path, text)
            .with_context(|| format!("writing --log-samples {}", path.display()))?;
    }
    Ok(())
}

/// `--precision`.
pub fn precision(s: &str) -> Result<Precision, String> {
    match s {
        "f32" => Ok(Precision::F32),
        "bf16" => Ok(Precision::Bf16),
        other => Err(format!("{other:?} is not f32 or bf16")),
    }
}
