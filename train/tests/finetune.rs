//! Fine-tuning end to end on CPU: a tiny Falcon (the full Falcon vocabulary) and a small
//! instruction set made from `../shared/data` text (the extraction benchmark's articles: the
//! URL's slug as a title -> the article's first eight words). LoRA and QLoRA lower the response
//! loss; the adapter merges into a checkpoint that computes the same logits; chat generation
//! applies the template, counts the prompt in `max_length` and returns several sequences.

mod common;

use common::{test_data, tokenizer_path};

use std::path::Path;

use burn::nn::Initializer;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};
use falconry_train::{
    finetune, generate, generate_text, instruction_loss, load_adapter, load_hf, merge_adapter,
    prepare_data, save_hf, CpuBackend, CpuTrainBackend, FalconConfig, FinetuneConfig,
    FinetuneOptions, LoraConfig, LrSchedule, Precision, Quantize, SampleOptions,
};

type B = CpuBackend;

/// `{"prompt": "Title: <slug words>", "response": <the article's first eight words>}` per
/// article with a usable slug, sorted, at most `n`.
fn instruction_set(path: &Path, n: usize) -> usize {
    let text =
        std::fs::read_to_string(test_data().join("extraction-bench/ground-truth.json")).unwrap();
    let docs: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut lines = Vec::new();
    for doc in docs.values() {
        let (Some(url), Some(body)) = (doc["url"].as_str(), doc["articleBody"].as_str()) else {
            continue;
        };
        let slug = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        let slug = slug.split('.').next().unwrap_or("");
        let title: Vec<&str> = slug
            .split(['-', '_'])
            .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()) && !w.is_empty())
            .collect();
        let opening: Vec<&str> = body.split_whitespace().take(8).collect();
        if (3..=8).contains(&title.len()) && opening.len() == 8 {
            let prompt = format!("Title: {}", title.join(" "));
            let response = opening.join(" ");
            lines.push(serde_json::json!({"prompt": prompt, "response": response}).to_string());
        }
    }
    lines.sort();
    lines.truncate(n);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    lines.len()
}

/// A random tiny Falcon saved as a HF folder. Its embeddings (the tied head) are drawn wider
/// than N(0, 0.02), as the HF fixtures' are: with 0.02 the frozen head cannot move any logit
/// by more than about one nat, whatever an adapter does.
fn tiny_checkpoint(dir: &Path) {
    let config = FalconConfig::from_toml_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/model/falcon-tiny.toml"),
    )
    .unwrap();
    let device = Default::default();
    let mut model = config.init::<B>(&device);
    model.transformer.word_embeddings = Initializer::Normal {
        mean: 0.0,
        std: 0.3,
    }
    .init([config.vocab_size, config.hidden_size], &device);
    save_hf(&model, dir).unwrap();
}

fn config(quantize: Quantize, steps: usize) -> FinetuneConfig {
    FinetuneConfig {
        lora: LoraConfig {
            r: 8,
            alpha: 16.0,
            dropout: 0.05,
            ..LoraConfig::default()
        },
        quantize,
        seq_len: 64,
        batch_size: 2,
        steps,
        schedule: LrSchedule {
            max_lr: 3e-2,
            min_lr: 3e-3,
            warmup_steps: 2,
            decay_steps: 0,
        },
        precision: Precision::F32,
        seed: 3,
        ..FinetuneConfig::default()
    }
}

#[test]
fn lora_and_qlora_lower_the_response_loss_merge_and_generate() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    tiny_checkpoint(&base);
    let data = tmp.path().join("instructions.jsonl");
    let n = instruction_set(&data, 16);
    assert_eq!(n, 16);
    let device = Default::default();

    for (quantize, steps) in [(Quantize::None, 10), (Quantize::Nf4, 5)] {
        let out = tmp.path().join(format!("ft-{quantize:?}"));
        let opts = FinetuneOptions {
            config: config(quantize, steps),
            checkpoint: base.clone(),
            data: data.clone(),
            tokenizer: Some(tokenizer_path()),
            output: out.clone(),
        };
        let summary = finetune::<CpuTrainBackend>(&opts, &device, &mut |_| {}).unwrap();
        assert_eq!(summary.examples, n);
        assert!(summary.rows < n, "short examples are packed: {summary:?}");

        // The response loss over the whole set, before (fresh adapters change nothing) and
        // after, on the base as it was held in training.
        let (_, packed) = prepare_data(&opts.config, &data, &tokenizer_path()).unwrap();
        let plain = load_hf::<B>(&base, &device).unwrap();
        let plain = match quantize {
            Quantize::None => plain,
            Quantize::Nf4 => plain.quantize_nf4(),
        };
        let before = instruction_loss(&plain, &packed, 8, Precision::F32, &device);
        let (tuned, _) = load_adapter(plain, &out, &device).unwrap();
        let after = instruction_loss(&tuned, &packed, 8, Precision::F32, &device);
        println!(
            "{quantize:?}: {} rows, {} trained tokens, loss {before:.3} -> {after:.3} (steps: {:.3} -> {:.3})",
            summary.rows, summary.trained_tokens, summary.first_loss, summary.last_loss
        );
        assert!(after < before - 0.5, "{quantize:?}: {before} -> {after}");
    }

    // Merge: a plain checkpoint with the adapter's logits.
    let adapter = tmp.path().join("ft-None");
    let merged = tmp.path().join("merged");
    merge_adapter::<B>(&base, &adapter, &merged, &device).unwrap();
    let ids = Tensor::<B, 2, Int>::from_data(
        TensorData::new(vec![1i64, 400, 25, 7000, 11, 93], [1, 6]),
        &device,
    );
    let (adapted, _) =
        load_adapter(load_hf::<B>(&base, &device).unwrap(), &adapter, &device).unwrap();
    let want = adapted.forward(ids.clone(), FloatDType::F32);
    let got = load_hf::<B>(&merged, &device)
        .unwrap()
        .forward(ids, FloatDType::F32);
    let diff = (want - got).abs().max().into_scalar();
    assert!(diff < 1e-4, "merged vs adapter: {diff}");

    // Chat generation: the template's prompt, max_length counting it, three samples.
    let opts = SampleOptions {
        max_length: Some(30),
        num_return_sequences: 3,
        eos_id: None,
        ..SampleOptions::default()
    };
    let prompt = "Title: gaming used to be simple";
    let texts = generate_text::<B>(
        &base,
        Some(&adapter),
        &tokenizer_path(),
        prompt,
        true,
        &opts,
        &device,
    )
    .unwrap();
    assert_eq!(texts.len(), 3);
    assert!(
        texts.iter().any(|t| t != &texts[0]),
        "seeds differ: {texts:?}"
    );
    let tokenizer = falconry_train::load_tokenizer(&tokenizer_path()).unwrap();
    // max_length counts the prompt: with no EOS, exactly 30 - prompt tokens are new, and the
    // first sample is their decoding (same model, same seed). Re-encoding the text would not
    // count them: a sampled byte token can decode to U+FFFD.
    let prompt_ids = FinetuneConfig::default()
        .template
        .encode_prompt(
            &tokenizer,
            &[falconry_train::Message {
                role: falconry_train::Role::User,
                content: prompt.into(),
            }],
            11,
        )
        .unwrap();
    let new = generate(&adapted, &prompt_ids, &opts, FloatDType::F32, &device);
    assert_eq!(new.len(), 30 - prompt_ids.len());
    assert_eq!(tokenizer.decode(&new, true).unwrap(), texts[0]);
}

#[test]
fn shipped_config_parses_and_bad_ones_are_refused_with_their_field() {
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/finetune/falcon-7b-qlora.toml");
    let config = FinetuneConfig::from_toml_file(&shipped).unwrap();
    assert_eq!(config.quantize, Quantize::Nf4);
    assert_eq!(config.lora.target_modules.len(), 4);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ft.toml");
    std::fs::write(&path, "[lora]\nr = 4\ntarget_modules = [\"q_proj\"]\n").unwrap();
    let err = FinetuneConfig::from_toml_file(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown module `q_proj`"), "{err}");
    std::fs::write(&path, "[template]\nuser = \"User:\"\n").unwrap();
    let err = FinetuneConfig::from_toml_file(&path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("template.user"), "{err}");
}

#[test]
fn micro_batches_accumulate_to_the_whole_batch_step() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    tiny_checkpoint(&base);
    let data = tmp.path().join("instructions.jsonl");
    instruction_set(&data, 16);
    let device = Default::default();
    let mut runs = Vec::new();
    for micro in [None, Some(2), Some(1)] {
        let mut config = config(Quantize::None, 3);
        config.lora.dropout = 0.0;
        config.batch_size = 4;
        config.micro_batch_size = micro;
        let opts = FinetuneOptions {
            config,
            checkpoint: base.clone(),
            data: data.clone(),
            tokenizer: Some(tokenizer_path()),
            output: tmp.path().join(format!("ft-{micro:?}")),
        };
        let mut steps = Vec::new();
        finetune::<CpuTrainBackend>(&opts, &device, &mut |s| steps.push((s.loss, s.grad_norm)))
            .unwrap();
        runs.push(steps);
    }
    // Same rows, same seed: one pass over 4 rows, two of 2 or four of 1 give the same steps.
    for other in &runs[1..] {
        for ((l0, g0), (l, g)) in runs[0].iter().zip(other) {
            assert!((l - l0).abs() < 1e-4 * l0, "loss {l} vs {l0}");
            assert!((g - g0).abs() < 1e-3 * g0, "gradient norm {g} vs {g0}");
        }
    }

    let mut bad = config(Quantize::None, 3);
    bad.batch_size = 4;
    bad.micro_batch_size = Some(3);
    let err = bad.validate().unwrap_err();
    assert!(
        err.contains("micro_batch_size must divide batch_size (4)"),
        "{err}"
    );
}
