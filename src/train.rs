//! `falconry train`, `falconry eval`, `falconry generate`: the Falcon model on Burn.
//!
//! CPU (NdArray) by default; built with `--features cuda`, the CUDA backend.

use anyhow::{Context, Result};
use std::path::Path;

use falconry_train::{
    eval_text, generate_text, train, Metrics, SampleOptions, TrainConfig, TrainOptions,
    TrainSummary,
};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::cli::{EvalArgs, GenerateArgs, TrainArgs};

#[cfg(feature = "cuda")]
pub(crate) mod backend {
    pub type Train = falconry_train::CudaTrainBackend;
    pub type Infer = falconry_train::CudaBackend;
    pub fn device() -> burn::backend::cuda::CudaDevice {
        Default::default()
    }
    pub fn devices(n: usize) -> Vec<burn::backend::cuda::CudaDevice> {
        (0..n).map(burn::backend::cuda::CudaDevice::new).collect()
    }
}

#[cfg(not(feature = "cuda"))]
pub(crate) mod backend {
    pub type Train = falconry_train::CpuTrainBackend;
    pub type Infer = falconry_train::CpuBackend;
    pub fn device() -> burn::backend::ndarray::NdArrayDevice {
        Default::default()
    }
    /// One CPU device per replica asked for: `train` refuses more than one.
    pub fn devices(n: usize) -> Vec<burn::backend::ndarray::NdArrayDevice> {
        vec![device(); n]
    }
}

pub fn run_train(args: TrainArgs) -> Result<()> {
    let mut config = TrainConfig::from_toml_file(&args.config)
        .with_context(|| format!("loading --config {}", args.config.display()))?;
    if let Some(steps) = args.steps {
        config.max_steps = steps;
    }
    let summary = train_into(
        config,
        &args.data,
        &args.output,
        args.resume,
        args.devices.into(),
    )?;
    crate::say(&format!(
        "{} steps, {:.0} tokens/s, MFU {:.1}%, last validation loss {}",
        summary.steps,
        summary.tokens_per_sec,
        100.0 * summary.mfu,
        summary.val_loss.map_or("-".into(), |l| format!("{l:.4}"))
    ));
    Ok(())
}

/// Trains on the shards in `data` into `output` under its lock, with a progress bar; what
/// `falconry train` and `falconry run`'s train stage do.
pub fn train_into(
    config: TrainConfig,
    data: &Path,
    output: &Path,
    resume: bool,
    devices: usize,
) -> Result<TrainSummary> {
    // One trainer per output folder: two would interleave metrics and checkpoints.
    let _lock = falconry_refine::lock::OutputLock::acquire(output, Default::default())
        .with_context(|| format!("locking --output {}", output.display()))?;
    crate::interrupt::clean_on_interrupt(output.to_path_buf());
    crate::interrupt::clean_on_interrupt(output.join("checkpoints"));
    let bar = crate::progress::count_bar(config.max_steps as u64, "train");
    let mut progress = |m: &Metrics| report(&bar, m);
    let opts = TrainOptions {
        config,
        data: data.to_path_buf(),
        output: output.to_path_buf(),
        resume,
    };
    let summary = train::<backend::Train>(&opts, &backend::devices(devices), &mut progress)
        .with_context(|| format!("training into {}", output.display()))?;
    bar.finish_and_clear();
    Ok(summary)
}

fn report(bar: &ProgressBar, m: &Metrics) {
    if m.split == "train" {
        bar.set_position(m.step as u64);
        let tps = m
            .tokens_per_sec
            .map_or(String::new(), |t| format!(" {t:.0} tok/s"));
        let mfu = m
            .mfu
            .map_or(String::new(), |u| format!(" MFU {:.1}%", 100.0 * u));
        let loss = m.loss.unwrap_or(f64::NAN);
        bar.set_message(format!("loss {loss:.4}{tps}{mfu}"));
    } else if let (Some(task), Some(metric), Some(value)) = (&m.task, &m.metric, m.value) {
        tracing::info!(step = m.step, task, metric, value, "eval_tasks");
    } else {
        tracing::info!(
            step = m.step,
            loss = m.loss,
            perplexity = m.perplexity,
            "validation"
        );
    }
}

pub fn run_eval(args: EvalArgs) -> Result<()> {
    let report = eval_text::<backend::Infer>(
        &args.checkpoint,
        &args.input,
        &args.tokenizer,
        &backend::device(),
    )
    .with_context(|| format!("evaluating {}", args.checkpoint.display()))?;
    #[derive(Serialize)]
    struct Line {
        tokens: usize,
        loss: f64,
        perplexity: f64,
    }
    println!(
        "{}",
        serde_json::to_string(&Line {
            tokens: report.tokens,
            loss: report.loss,
            perplexity: report.perplexity
        })?
    );
    Ok(())
}

pub fn run_generate(args: GenerateArgs) -> Result<()> {
    let opts = SampleOptions {
        max_new_tokens: args.max_new_tokens,
        top_k: args.top_k,
        temperature: args.temperature,
        seed: args.seed,
        max_length: args.max_length,
        num_return_sequences: args.num_return_sequences as usize,
        ..SampleOptions::default()
    };
    let texts = generate_text::<backend::Infer>(
        &args.checkpoint,
        args.adapter.as_deref(),
        &args.tokenizer,
        &args.prompt,
        args.chat,
        &opts,
        &backend::device(),
    )
    .with_context(|| format!("generating with {}", args.checkpoint.display()))?;
    // One sample prints as text; several as JSON lines, so that each stays one record.
    if let [text] = texts.as_slice() {
        println!("{text}");
    } else {
        for text in &texts {
            println!("{}", serde_json::json!({ "text": text }));
        }
    }
    Ok(())
}
