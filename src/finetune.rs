//! `falconry finetune` and `falconry merge`: LoRA / QLoRA adapters on a HF Falcon checkpoint.

use anyhow::{Context, Result};
use falconry_train::{finetune, merge_adapter, FinetuneConfig, FinetuneOptions, Quantize, StepLog};

use crate::cli::{FinetuneArgs, MergeArgs};
use crate::train::backend;

pub fn run_finetune(args: FinetuneArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => FinetuneConfig::from_toml_file(path)
            .with_context(|| format!("loading --config {}", path.display()))?,
        None => FinetuneConfig::default(),
    };
    if args.quantize.as_deref() == Some("nf4") {
        config.quantize = Quantize::Nf4;
    }
    if let Some(steps) = args.steps {
        config.steps = steps;
    }
    let _lock = falconry_refine::lock::OutputLock::acquire(&args.output, Default::default())
        .with_context(|| format!("locking --output {}", args.output.display()))?;
    let bar = crate::progress::count_bar(config.steps as u64, "finetune");
    let mut progress = |s: &StepLog| {
        bar.set_position(s.step as u64);
        let memory = s
            .memory_in_use_mib
            .map(|m| format!(", {:.1} GiB on the GPU", m / 1024.0))
            .unwrap_or_default();
        bar.set_message(format!(
            "loss {:.4}, {:.0} tokens/s{memory}",
            s.loss, s.tokens_per_sec
        ));
    };
    let opts = FinetuneOptions {
        config,
        checkpoint: args.checkpoint.clone(),
        data: args.data.clone(),
        tokenizer: args.tokenizer.clone(),
        output: args.output.clone(),
    };
    let summary = finetune::<backend::Train>(&opts, &backend::device(), &mut progress)
        .with_context(|| format!("fine-tuning {}", args.checkpoint.display()))?;
    bar.finish_and_clear();
    crate::say(&format!(
        "{} examples in {} rows ({} cut), {} trained tokens, {} adapter parameters; loss {:.4} -> {:.4}",
        summary.examples,
        summary.rows,
        summary.truncated,
        summary.trained_tokens,
        summary.adapter_params,
        summary.first_loss,
        summary.last_loss
    ));
    Ok(())
}

pub fn run_merge(args: MergeArgs) -> Result<()> {
    merge_adapter::<backend::Infer>(
        &args.checkpoint,
        &args.adapter,
        &args.output,
        &backend::device(),
    )
    .with_context(|| {
        format!(
            "merging {} into {}",
            args.adapter.display(),
            args.checkpoint.display()
        )
    })?;
    crate::say(&format!("merged checkpoint in {}", args.output.display()));
    Ok(())
}
