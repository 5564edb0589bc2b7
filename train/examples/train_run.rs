//! Runs `falconry_train::train` without the CLI, for device runs before the `falconry train`
//! subcommand is wired: the same flags, a progress line every 10 steps on stderr, the summary
//! as JSON on stdout. With `--features cuda` it trains on the GPU, else on the CPU.
//!
//! ```text
//! cargo run --release -p falconry-train --features cuda --example train_run -- \
//!     --config configs/train/falcon-124m.toml --data SHARDS --output RUN [--steps N] [--resume]
//! ```

use std::path::PathBuf;

use falconry_train::{train, TrainConfig, TrainOptions};

#[cfg(feature = "cuda")]
type Train = falconry_train::CudaTrainBackend;
#[cfg(not(feature = "cuda"))]
type Train = falconry_train::CpuTrainBackend;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut config, mut data, mut output, mut steps, mut resume) = (None, None, None, None, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = args.next().map(PathBuf::from),
            "--data" => data = args.next().map(PathBuf::from),
            "--output" => output = args.next().map(PathBuf::from),
            "--steps" => steps = Some(args.next().ok_or("--steps needs a number")?.parse::<usize>()?),
            "--resume" => resume = true,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let usage = "usage: train_run --config FILE --data DIR --output DIR [--steps N] [--resume]";
    let mut config = TrainConfig::from_toml_file(&config.ok_or(usage)?)?;
    if let Some(steps) = steps {
        config.max_steps = steps;
    }
    let opts = TrainOptions { config, data: data.ok_or(usage)?, output: output.ok_or(usage)?, resume };
    let device = Default::default();
    let summary = train::<Train>(&opts, &device, &mut |m| {
        if m.split == "validation" || m.step % 10 == 0 || m.step == 1 {
            eprintln!("{}", serde_json::to_string(m).unwrap_or_default());
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
