//! `falconry train` checks its data and config against the model before the first step
//! (issue 11, item 6): errors that name the file, exit 1, never a panic (101).

use std::path::Path;

use crate::util::TestCommand;

/// A shard folder as `falconry tokenize` writes it: `tokens` in one train and one validation
/// shard, `meta.json` stating `vocab_size`.
fn shards(dir: &Path, tokens: &[u16], vocab_size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let (train, val) = tokens.split_at(tokens.len() * 3 / 4);
    let mut entries = Vec::new();
    for (i, (part, split)) in [(train, "train"), (val, "validation")]
        .into_iter()
        .enumerate()
    {
        let file = format!("shard-{i:05}.bin");
        std::fs::write(
            dir.join(&file),
            part.iter()
                .flat_map(|t| t.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
        entries.push(
            serde_json::json!({"file": file, "tokens": part.len(), "documents": 1, "split": split}),
        );
    }
    let meta = serde_json::json!({"tokenizer": "t.json", "vocab_size": vocab_size, "dtype": "uint16", "eos_id": 11, "shards": entries});
    std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
}

fn train(t: &TestCommand, config: &str, data: &Path) -> std::process::Output {
    let out = t.path("run");
    t.run(&[
        "train",
        "-q",
        "--config",
        config,
        "--data",
        data.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--steps",
        "1",
    ])
}

fn assert_fails_naming(o: &std::process::Output, words: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for w in words {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

#[test]
fn token_id_past_the_vocabulary_is_an_error_naming_the_shard() {
    let t = TestCommand::new();
    let data = t.path("data");
    let mut tokens: Vec<u16> = (0..4000).map(|i| (i * 31 % 60000) as u16).collect();
    tokens[3500] = 65_535; // in the validation shard
    shards(&data, &tokens, 65024);
    let o = train(&t, "configs/train/falcon-tiny-cpu.toml", &data);
    assert_fails_naming(
        &o,
        &["shard-00001.bin", "token id 65535", "vocab_size 65024"],
    );
}

#[test]
fn meta_of_another_vocabulary_is_an_error_naming_it() {
    let t = TestCommand::new();
    let data = t.path("data");
    let tokens: Vec<u16> = (0..4000).map(|i| (i * 31 % 50000) as u16).collect();
    shards(&data, &tokens, 50277);
    let o = train(&t, "configs/train/falcon-tiny-cpu.toml", &data);
    assert_fails_naming(&o, &["meta.json", "vocab_size 50277", "65024"]);
}

#[test]
fn seq_len_past_the_model_positions_is_an_error() {
    let t = TestCommand::new();
    let data = t.path("data");
    let tokens: Vec<u16> = (0..20000).map(|i| (i * 31 % 60000) as u16).collect();
    shards(&data, &tokens, 65024);
    let config =
        std::fs::read_to_string(crate::util::repo().join("configs/train/falcon-tiny-cpu.toml"))
            .unwrap()
            .replace("seq_len = 32", "seq_len = 4096");
    let path = t.path("long.toml");
    std::fs::write(&path, config).unwrap();
    let o = train(&t, path.to_str().unwrap(), &data);
    assert_fails_naming(
        &o,
        &["long.toml", "seq_len 4096", "max_position_embeddings 2048"],
    );
}
