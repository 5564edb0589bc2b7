//! BPE training on real text: Falcon's special tokens and pre-tokenizer, the asked size,
//! a bounded sample, a file `tokenizers` loads back, and the fast path on the result.

use std::path::PathBuf;

use falconry_tokenize::{
    save_tokenizer, train_tokenizer, Tokenizer, TrainConfig, FALCON_SPECIAL_TOKENS,
};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/falcon_docs.jsonl")
}

fn texts() -> Vec<String> {
    std::fs::read_to_string(fixture())
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn trains_a_falcon_style_bpe_that_loads_back() {
    let config = TrainConfig {
        inputs: vec![fixture()],
        vocab_size: 1_200,
        max_bytes: 150_000,
        ..Default::default()
    };
    let (tok, report) = train_tokenizer(&config).unwrap();
    assert_eq!(report.vocab_size, 1_200);
    assert_eq!(tok.vocab_size(), 1_200);
    assert!(
        report.bytes >= 150_000 && report.bytes < 160_000,
        "sample of {} bytes",
        report.bytes
    );
    assert!(report.documents < 240, "the byte bound stops reading");
    for (id, special) in FALCON_SPECIAL_TOKENS.iter().enumerate() {
        assert_eq!(tok.token_to_id(special), Some(id as u32), "{special}");
    }
    assert_eq!(tok.eos_id(), Some(11));
    assert_eq!(
        tok.slow_reason(),
        None,
        "a Falcon-style file takes the fast path"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    save_tokenizer(&tok, &path).unwrap();
    let back = Tokenizer::from_file(&path).unwrap();
    assert!(back.is_fast());
    for text in texts().iter().take(60) {
        let ids = back.encode(text).unwrap();
        assert_eq!(ids, back.reference_encode(text).unwrap());
        assert_eq!(ids, tok.encode(text).unwrap());
        assert_eq!(
            &back.decode(&ids).unwrap(),
            text,
            "byte-level BPE round-trips"
        );
    }
    // The trained merges compress: fewer tokens than bytes on text it has seen.
    let text = &texts()[0];
    assert!(back.encode(text).unwrap().len() * 2 < text.len());
}

#[test]
fn too_small_a_vocabulary_is_refused() {
    let config = TrainConfig {
        inputs: vec![fixture()],
        vocab_size: 200,
        ..Default::default()
    };
    let err = train_tokenizer(&config).unwrap_err().to_string();
    assert!(err.contains("vocab-size"), "{err}");
}
