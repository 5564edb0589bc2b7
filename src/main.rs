//! `falconry`: CommonCrawl to a RefinedWeb-style corpus, and a Falcon trainer.
//!
//! Exit codes: 0 done (counted skips of bad data included), 1 failure, 2 usage error,
//! 130 interrupted (SIGINT; 143 for SIGTERM), with no temporary file left behind.

mod cli;
mod dedup;
mod eval_tasks;
mod extract;
mod fetch_cc;
mod finetune;
mod interrupt;
mod plot;
mod progress;
mod refine;
mod run;
mod slurm;
mod tokenize;
mod train;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;

use crate::cli::{Cli, Command};

/// Set by `-q`: reports for people (the funnel table, summaries) are not printed.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Prints a report for people on stderr, unless `-q`.
pub fn say(text: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{text}");
    }
}

fn main() -> ExitCode {
    // First, before any other thread starts: they all inherit the blocked signals.
    interrupt::install();
    interrupt::exit_on_gpu_out_of_memory();
    let cli = Cli::parse();
    QUIET.store(cli.quiet, Ordering::Relaxed);
    init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Slurm(args) => slurm::run(args),
        Command::Status(args) => slurm::status::run(&args.run_dir),
        Command::SlurmTask(args) => slurm::task::run(args),
        Command::Refine(args) => refine::run(args),
        Command::Dedup(args) => dedup::run(args),
        Command::Extract(args) => extract::run(args),
        Command::FetchCc(args) => fetch_cc::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Export(args) => tokenize::run_export(args),
        Command::Publish(args) => tokenize::run_publish(args),
        Command::Train(args) => train::run_train(args),
        Command::Eval(args) => train::run_eval(args),
        Command::EvalTasks(args) => eval_tasks::run(args),
        Command::Generate(args) => train::run_generate(args),
        Command::Finetune(args) => finetune::run_finetune(args),
        Command::Merge(args) => finetune::run_merge(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("falconry: error: {err:#}");
            if err.chain().any(|e| e.is::<cli::Usage>()) {
                eprintln!("\nFor more information, try '--help'.");
                return ExitCode::from(2);
            }
            ExitCode::from(1)
        }
    }
}

/// `-v`/`-q` pick the level; `RUST_LOG` overrides both. Logs go to stderr.
fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// `falconry extract ... | head` must not report an error when `head` exits.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
