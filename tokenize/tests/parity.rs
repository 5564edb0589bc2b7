//! The Falcon tokenizer against its references: llama.cpp's vectors, swift-transformers'
//! vector, and Python `tokenizers` on a fixture of real documents. Each is checked on the
//! fast path and on the `tokenizers` crate.

use std::path::PathBuf;
use std::sync::OnceLock;

use falconry_refine::test_data_dir as data_dir;
use falconry_tokenize::Tokenizer;

fn falcon() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let t = Tokenizer::from_file(&data_dir().join("tokenizer/falcon/tokenizer.json")).unwrap();
        assert_eq!(
            t.slow_reason(),
            None,
            "Falcon's tokenizer.json must take the fast path"
        );
        t
    })
}

fn check(text: &str, expected: &[u32], what: &str) {
    let t = falcon();
    assert_eq!(
        t.encode(text).unwrap(),
        expected,
        "fast path, {what}: {text:?}"
    );
    assert_eq!(
        t.reference_encode(text).unwrap(),
        expected,
        "tokenizers crate, {what}: {text:?}"
    );
}

#[test]
fn falcon_basics() {
    let t = falcon();
    assert_eq!(t.vocab_size(), 65_024);
    assert_eq!(t.eos_id(), Some(11));
    assert_eq!(t.encode("<|endoftext|>").unwrap(), vec![11]);
}

#[test]
fn llama_cpp_vectors() {
    let dir = data_dir().join("tokenizer/falcon");
    let inp = std::fs::read_to_string(dir.join("ggml-vocab-falcon.gguf.inp")).unwrap();
    let out = std::fs::read_to_string(dir.join("ggml-vocab-falcon.gguf.out")).unwrap();
    let inputs: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let outputs: Vec<&str> = out.split('\n').collect();
    // Both files end with their separator: 46 vectors and an empty 47th, as llama.cpp counts.
    assert_eq!(inputs.len(), 47);
    assert_eq!(outputs.len(), 47);
    for (i, (text, ids)) in inputs.iter().zip(&outputs).enumerate() {
        let expected: Vec<u32> = ids.split_whitespace().map(|x| x.parse().unwrap()).collect();
        check(text, &expected, &format!("llama.cpp vector {i}"));
    }
}

#[test]
fn swift_transformers_vector() {
    let path = data_dir().join("tokenizer/falcon/falcon_encoded.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ids: Vec<u32> = v["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids.len(), 188);
    let text = v["text"].as_str().unwrap();
    check(text, &ids, "swift-transformers");
    assert_eq!(
        falcon().decode(&ids).unwrap(),
        v["decoded_text"].as_str().unwrap()
    );
}

/// `tests/fixtures/falcon_docs.jsonl`, made by `scripts/tokenizer_fixture.py` with Python
/// `tokenizers`: `{"text", "ids"}` per document.
#[test]
fn python_tokenizers_fixture() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/falcon_docs.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ids: Vec<u32> = v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        check(
            v["text"].as_str().unwrap(),
            &ids,
            &format!("fixture document {n}"),
        );
        n += 1;
    }
    assert!(n >= 200, "fixture has {n} documents");
}

#[test]
fn odd_text_matches_the_tokenizers_crate() {
    let t = falcon();
    let cases = [
        "ò²³¹¼ 12345678 ½½ x٣٤٥ 1,000,000.00",
        "a\u{3000}\u{3000}b\t\t\n\r\n  \u{a0}c",
        ">>TITLE<<>>ABSTRACT<< <|endoftext|><|endoftext|x",
        "don't I'M we'll 'tis",
        "👩‍👩‍👧 🇩🇪 e\u{301} ﷽ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
        &"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".repeat(20),
        &"Ġ=".repeat(300),
        "",
        " ",
        "\n",
        "control \u{3}\u{4} bytes\u{1b}[0m a\u{3}b \u{11}\u{11}",
    ];
    for text in cases {
        assert_eq!(
            t.encode(text).unwrap(),
            t.reference_encode(text).unwrap(),
            "{text:?}"
        );
    }
}
