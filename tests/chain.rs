//! refine -> tokenize -> train -> eval -> generate through the CLI, on the CPU.

use crate::util::{data_dir, TestCommand};

#[test]
fn corpus_to_model_through_the_cli() {
    let t = TestCommand::new();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let tokenizer = data_dir().join("tokenizer/falcon/tokenizer.json");
    let (refined, tokens, trained) = (t.path("refine"), t.path("tokens"), t.path("train"));
    t.assert_exit_code(
        &[
            "refine",
            "-q",
            "--input",
            &s(&data_dir().join("warc")),
            "--output",
            &s(&refined),
        ],
        0,
    );
    t.assert_exit_code(
        &[
            "tokenize",
            "-q",
            "--input",
            &s(&refined),
            "--output",
            &s(&tokens),
            "--tokenizer",
            &s(&tokenizer),
            "--validation-fraction",
            "0.1",
        ],
        0,
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tokens.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["vocab_size"], 65024);
    assert_eq!(meta["dtype"], "uint16");
    assert_eq!(meta["eos_id"], 11);
    t.assert_exit_code(
        &[
            "train",
            "-q",
            "--config",
            "configs/train/falcon-tiny-cpu.toml",
            "--data",
            &s(&tokens),
            "--output",
            &s(&trained),
            "--steps",
            "3",
        ],
        0,
    );
    assert!(trained.join("metrics.jsonl").exists());
    let ckpt = std::fs::read_dir(trained.join("checkpoints"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .max()
        .unwrap();
    std::fs::write(
        t.path("held-out.txt"),
        "The library reopened on Saturday after a long renovation.",
    )
    .unwrap();
    let out = t.assert_exit_code(
        &[
            "eval",
            "--checkpoint",
            &s(&ckpt),
            "--input",
            &s(&t.path("held-out.txt")),
            "--tokenizer",
            &s(&tokenizer),
        ],
        0,
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["tokens"].as_u64().unwrap() > 5);
    assert!(report["perplexity"].as_f64().unwrap() > 1.0);
    let out = t.assert_exit_code(
        &[
            "generate",
            "--checkpoint",
            &s(&ckpt),
            "--tokenizer",
            &s(&tokenizer),
            "--prompt",
            "The library",
            "--max-new-tokens",
            "5",
        ],
        0,
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("The library"));
}
