//! The CUDA engine's LoRA / QLoRA step against transformers + peft (GPU machine, `cuda` build;
//! `bench/check_finetune.py OUT` compares): small Falcons shaped like falcon-7b (multi-query,
//! odd head count, one LayerNorm) and falcon-40b (grouped K/V, two LayerNorms) saved as HF
//! folders, a PEFT adapter folder with B drawn non-zero (so that every gradient is), token
//! windows and a loss mask. For each of a bf16 base, an NF4 base and an NF4 base with
//! recomputation, the engine's masked loss and adapter gradients go into OUT; for the NF4 cases
//! also the HF folder of the NF4 round trip of the base (what the engine multiplies by), which
//! transformers loads without bitsandbytes. Then a few AdamW steps with dropout on, whose loss
//! must fall (exit 1 otherwise).
//!
//! ```text
//! finetune_check OUT
//! ```

use std::path::PathBuf;

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use falconry_train::{
    fresh_adapters, load_hf, load_safetensors, save_adapter, save_hf, save_safetensors,
    AdamWConfig, CpuBackend, CudaEngine, FalconConfig, LoraConfig, Nf4Tensor, Quantize,
};
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: finetune_check OUT")?);
    let like_7b = FalconConfig {
        hidden_size: 576,
        num_attention_heads: 9,
        ffn_hidden_size: 2304,
        num_hidden_layers: 2,
        ..FalconConfig::falcon_7b()
    };
    let like_40b = FalconConfig {
        num_hidden_layers: 2,
        ..FalconConfig::falcon_350m()
    };
    let (batch, seq) = (2, 128);
    let lora = LoraConfig {
        r: 16,
        alpha: 32.0,
        dropout: 0.0,
        ..LoraConfig::default()
    };
    let mut failed = false;
    let mut cases = Vec::new();
    for (name, config) in [("7b-shaped", &like_7b), ("40b-shaped", &like_40b)] {
        let dir = out.join(name);
        let device = Default::default();
        CpuBackend::seed(&device, 3);
        let model = config.init::<CpuBackend>(&device);
        save_hf(&model, &dir.join("model"))?;
        // The NF4 round trip of every projection: what a QLoRA base computes with.
        let mut rounded = load_hf::<CpuBackend>(&dir.join("model"), &device)?;
        for (_, _, linear) in rounded.linears_mut() {
            let w = linear.weight.as_ref().expect("f32 base").val();
            let [d_in, d_out] = w.dims();
            let hf: Vec<f32> = w
                .transpose()
                .into_data()
                .into_vec()
                .map_err(|e| format!("{e:?}"))?;
            let back = Nf4Tensor::quantize(&hf, &[d_out, d_in]).dequantize();
            let t = Tensor::<CpuBackend, 2>::from_data(
                burn::tensor::TensorData::new(back, [d_out, d_in]),
                &device,
            );
            linear.weight = Some(Param::from_tensor(t.transpose()));
        }
        save_hf(&rounded, &dir.join("model-nf4"))?;
        // Adapters with B non-zero, as a PEFT folder.
        let mut adapted = model.with_lora(&lora, &device);
        for (_, _, linear) in adapted.linears_mut() {
            let l = linear.lora.as_mut().expect("every projection is targeted");
            let dims = l.b.dims();
            l.b = Param::from_tensor(Tensor::random(
                dims,
                Distribution::Uniform(-0.05, 0.05),
                &device,
            ));
        }
        save_adapter(&adapted, &lora, "model", &dir.join("adapter"))?;
        let adapters = load_safetensors(&dir.join("adapter/adapter_model.safetensors"))?;

        let (windows, mask) = batch_of(config, batch, seq);
        std::fs::write(
            dir.join("windows.bin"),
            windows
                .iter()
                .flat_map(|t| t.to_le_bytes())
                .collect::<Vec<u8>>(),
        )?;
        std::fs::write(
            dir.join("mask.bin"),
            mask.iter()
                .flat_map(|t| t.to_le_bytes())
                .collect::<Vec<u8>>(),
        )?;
        for (case, quantize, recompute) in [
            ("bf16", Quantize::None, false),
            ("nf4", Quantize::Nf4, false),
            ("nf4-recompute", Quantize::Nf4, true),
        ] {
            let mut engine = CudaEngine::finetune(
                config,
                &lora,
                quantize,
                batch,
                seq,
                AdamWConfig::default(),
                recompute,
                0,
            )?;
            engine.load_base(&dir.join("model"))?;
            engine.set_adapters(&adapters)?;
            let loss = engine.forward_backward_masked(
                std::slice::from_ref(&windows),
                std::slice::from_ref(&mask),
            )?;
            let mut grads = engine.adapter_gradients()?;
            grads.insert("loss".into(), (vec![1], vec![loss as f32]));
            save_safetensors(&dir.join(format!("{case}.safetensors")), &grads)?;
            cases.push(serde_json::json!({
                "dir": name, "case": case, "base": if quantize == Quantize::Nf4 { "model-nf4" } else { "model" },
                "batch": batch, "seq": seq, "loss": loss,
            }));
        }

        // Training with dropout from fresh adapters: the loss on one batch must fall.
        let lora = LoraConfig {
            dropout: 0.1,
            ..lora.clone()
        };
        let mut engine = CudaEngine::finetune(
            config,
            &lora,
            Quantize::Nf4,
            batch,
            seq,
            AdamWConfig::default(),
            false,
            0,
        )?;
        engine.load_base(&dir.join("model"))?;
        let fresh = fresh_adapters(&engine.adapter_shapes()?, 5);
        engine.set_adapters(&fresh)?;
        let losses: Vec<f64> = (0..8)
            .map(|_| {
                engine
                    .finetune_step(
                        std::slice::from_ref(&windows),
                        std::slice::from_ref(&mask),
                        1e-3,
                    )
                    .map(|(l, _)| l)
            })
            .collect::<Result<_, _>>()?;
        let falls = losses.last() < losses.first() && losses.iter().all(|l| l.is_finite());
        failed |= !falls;
        println!(
            "{name} NF4 dropout 0.1, 8 AdamW steps at 1e-3: losses {losses:.4?}: {}",
            if falls { "ok" } else { "FAIL" }
        );
    }
    std::fs::write(out.join("cases.json"), serde_json::to_vec_pretty(&cases)?)?;
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Random windows `[batch, seq + 1]` and a mask over the targets with its first third of each
/// row off (a prompt) and the rest on.
fn batch_of(config: &FalconConfig, batch: usize, seq: usize) -> (Vec<u16>, Vec<f32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let windows = (0..batch * (seq + 1))
        .map(|_| rng.random_range(0..config.vocab_size) as u16)
        .collect();
    let mask = (0..batch * seq)
        .map(|i| if i % seq < seq / 3 { 0.0 } else { 1.0 })
        .collect();
    (windows, mask)
}
