//! The CUDA engine against transformers (GPU machine, `cuda` build): writes a random-init HF
//! folder, random token windows, and the engine's loss and gradients for them into OUT, then
//! times the engine's forward + backward. `bench/check_engine.py OUT` computes the same loss
//! and gradients in transformers (f32) and compares.
//!
//! ```text
//! engine_check OUT [MODEL (preset or .toml)] [BATCH] [SEQ] [recompute]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::Backend;
use falconry_train::{save_safetensors, AdamWConfig, CpuBackend, CudaEngine, TrainConfig};
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(
        args.first()
            .ok_or("usage: engine_check OUT [MODEL] [BATCH] [SEQ]")?,
    );
    let model_name = args.get(1).cloned().unwrap_or_else(|| "falcon-124m".into());
    let batch: usize = args.get(2).map_or(Ok(2), |s| s.parse())?;
    let seq: usize = args.get(3).map_or(Ok(256), |s| s.parse())?;
    let recompute = args.get(4).is_some_and(|s| s == "recompute");
    let config = TrainConfig {
        model: model_name.clone(),
        ..TrainConfig::default()
    }
    .model_config()?;

    let device = Default::default();
    CpuBackend::seed(&device, 42);
    let model = config.init::<CpuBackend>(&device);
    falconry_train::save_hf(&model, &out.join("model"))?;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let windows: Vec<u16> = (0..batch * (seq + 1))
        .map(|_| rng.random_range(0..config.vocab_size) as u16)
        .collect();
    let bytes: Vec<u8> = windows.iter().flat_map(|t| t.to_le_bytes()).collect();
    std::fs::write(out.join("windows.bin"), bytes)?;

    let mut engine = CudaEngine::new(&config, batch, seq, AdamWConfig::default(), recompute, 0)?;
    eprintln!("{}", engine.describe());
    engine.load_model(&model)?;
    let micro = vec![windows.clone()];
    let loss = engine.forward_backward(&micro)?;
    let eval_loss = engine.loss(&windows)?;
    let grads = engine.gradients()?;
    save_safetensors(&out.join("grads.safetensors"), &grads)?;
    // The residual stream and logits of the last forward (the eval pass), to locate a difference.
    let (xs, logits) = engine.activations()?;
    let (n, d, v) = (batch * seq, config.hidden_size, config.vocab_size);
    let mut acts: std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> = xs
        .into_iter()
        .enumerate()
        .map(|(i, x)| (format!("x.{i}"), (vec![n, d], x)))
        .collect();
    acts.insert("logits".into(), (vec![n, v], logits));
    save_safetensors(&out.join("activations.safetensors"), &acts)?;

    // Timing: forward + backward of one micro-batch, after the warm-up above.
    let reps = 10;
    let began = Instant::now();
    for _ in 0..reps {
        engine.forward_backward(&micro)?;
    }
    let secs = began.elapsed().as_secs_f64() / reps as f64;
    let tokens = (batch * seq) as f64;
    let flops = falconry_train::flops_per_token(&config, seq) * tokens;
    // A few AdamW steps on the same windows (a small learning rate, no warmup): the loss must fall.
    let losses: Vec<f64> = (0..5)
        .map(|_| engine.step(&micro, 1e-4).map(|(l, _)| l))
        .collect::<Result<_, _>>()?;
    let report = serde_json::json!({
        "model": model_name,
        "batch": batch,
        "seq": seq,
        "loss": loss,
        "eval_loss": eval_loss,
        "fwd_bwd_ms": secs * 1e3,
        "tokens_per_sec_fwd_bwd": tokens / secs,
        "tflops_fwd_bwd": flops / secs / 1e12,
        "step_losses": losses,
        "recompute": recompute,
        "engine": engine.describe(),
    });
    std::fs::write(out.join("engine.json"), serde_json::to_vec_pretty(&report)?)?;
    println!("{report}");
    Ok(())
}
