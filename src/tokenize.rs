//! `falconry tokenize`, `falconry tokenize train`, `falconry export`, `falconry publish`.

use anyhow::{Context, Result};
use falconry_tokenize::{
    export_shards, publish_dataset, save_tokenizer, tokenize_corpus, train_tokenizer, Dtype,
    ExportFormat, PublishConfig, TokenizeConfig, TrainConfig,
};

use crate::cli::{ExportArgs, PublishArgs, TokenizeArgs, TokenizeCommand, TokenizeTrainArgs};

pub fn run(args: TokenizeArgs) -> Result<()> {
    if let Some(TokenizeCommand::Train(train)) = args.command {
        return run_train(train);
    }
    let task = crate::refine::task(&args.task)?;
    let tokenizer = args.tokenizer.context("--tokenizer FILE is required")?;
    let output = args.output.context("--output DIR is required")?;
    let config = TokenizeConfig {
        inputs: args.input,
        output: output.clone(),
        tokenizer,
        shard_tokens: args.shard_tokens,
        validation_fraction: args.validation_fraction,
        seed: args.seed,
        dtype: Dtype::parse(&args.dtype)?,
        task,
        allow_changed_inputs: args.allow_changed_inputs,
        ..TokenizeConfig::default()
    };
    let report = tokenize_corpus(&config)
        .with_context(|| format!("tokenizing into {}", output.display()))?;
    crate::say(&serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn run_train(args: TokenizeTrainArgs) -> Result<()> {
    let config = TrainConfig {
        inputs: args.input,
        vocab_size: args.vocab_size,
        max_bytes: args.max_bytes,
        sample_fraction: args.sample_fraction,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let (tokenizer, report) = train_tokenizer(&config).context("training the tokenizer")?;
    save_tokenizer(&tokenizer, &args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    crate::say(&serde_json::to_string_pretty(&report)?);
    Ok(())
}

pub fn run_export(args: ExportArgs) -> Result<()> {
    let format = ExportFormat::parse(&args.format)?;
    let report = export_shards(&args.input, &args.output, format)
        .with_context(|| format!("exporting into {}", args.output.display()))?;
    crate::say(&format!(
        "{} documents, {} tokens in {} files under {}",
        report.documents,
        report.tokens,
        report.files.len(),
        args.output.display()
    ));
    Ok(())
}

pub fn run_publish(args: PublishArgs) -> Result<()> {
    let config = PublishConfig {
        inputs: args.input,
        output: args.output.clone(),
        stats: args.stats,
        tokens: args.tokens,
        ..PublishConfig::default()
    };
    let report = publish_dataset(&config)
        .with_context(|| format!("publishing into {}", args.output.display()))?;
    crate::say(&format!(
        "{} files, {} rows in {}",
        report.files.len(),
        report.rows,
        args.output.display()
    ));
    Ok(())
}
