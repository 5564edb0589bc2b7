//! `tokenize_corpus` end to end on real text: every document comes back intact, the split
//! and shuffle are deterministic, tasks and resumption give the same shards, and a
//! vocabulary too large for uint16 is refused.

use std::path::{Path, PathBuf};

use falconry_refine::folder::{file_unit, Task};
use falconry_refine::inputs::InputId;
use falconry_refine::test_data_dir as data_dir;
use falconry_tokenize::{
    shards, tokenize_corpus, Dtype, Error, Split, TokenShards, TokenizeConfig, Tokenizer,
};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/falcon_docs.jsonl")
}

fn falcon_json() -> PathBuf {
    data_dir().join("tokenizer/falcon/tokenizer.json")
}

/// Every document's expected ids (EOS appended), sorted, from the Python fixture.
fn expected_docs() -> Vec<Vec<u32>> {
    let text = std::fs::read_to_string(fixture()).unwrap();
    let mut docs: Vec<Vec<u32>> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let mut ids: Vec<u32> = v["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            ids.push(11);
            ids
        })
        .collect();
    docs.sort();
    docs
}

fn config(inputs: Vec<PathBuf>, output: &Path) -> TokenizeConfig {
    TokenizeConfig {
        inputs,
        output: output.into(),
        tokenizer: falcon_json(),
        shard_tokens: 8_000,
        validation_fraction: 0.1,
        seed: 7,
        ..Default::default()
    }
}

/// All documents of a shard folder as id sequences, per split, in shard order.
fn read_docs(dir: &Path, split: Split) -> Vec<Vec<u32>> {
    let shards = TokenShards::open(dir).unwrap();
    let mut docs = Vec::new();
    for info in shards.shards(split) {
        let tokens = shards.load(info).unwrap().to_vec();
        assert_eq!(tokens.last(), Some(&11), "{} ends a document", info.file);
        let n_before = docs.len();
        for doc in tokens.split_inclusive(|&t| t == 11) {
            docs.push(doc.to_vec());
        }
        assert_eq!((docs.len() - n_before) as u64, info.documents);
    }
    docs
}

fn all_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn shards_hold_every_document_once() {
    let dir = tempfile::tempdir().unwrap();
    let report = tokenize_corpus(&config(vec![fixture()], dir.path())).unwrap();
    assert!(report.fast_encoder && report.meta_written);
    assert_eq!(report.part.documents, 240);
    let shards = TokenShards::open(dir.path()).unwrap();
    let meta = shards.meta();
    assert_eq!(
        (meta.vocab_size, meta.dtype, meta.eos_id),
        (65_024, Dtype::Uint16, 11)
    );
    assert!(meta.shards.len() > 4, "{} shards", meta.shards.len());
    let train = read_docs(dir.path(), Split::Train);
    let val = read_docs(dir.path(), Split::Validation);
    assert!(
        !val.is_empty() && val.len() < 60,
        "{} validation documents",
        val.len()
    );
    assert_eq!(meta.split.train.documents as usize, train.len());
    assert_eq!(meta.split.validation.documents as usize, val.len());
    let mut all: Vec<Vec<u32>> = train.iter().chain(&val).cloned().collect();
    // Shuffled: not in the input order.
    assert_ne!(train, expected_docs()[..train.len()].to_vec());
    all.sort();
    assert_eq!(all, expected_docs());
    // The keys the issue names, as a reader of meta.json sees them.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("meta.json")).unwrap()).unwrap();
    for key in [
        "tokenizer",
        "vocab_size",
        "dtype",
        "eos_id",
        "shards",
        "split",
    ] {
        assert!(!json[key].is_null(), "meta.json lacks {key}");
    }
    assert_eq!(json["dtype"], "uint16");
    for key in ["file", "tokens", "documents"] {
        assert!(!json["shards"][0][key].is_null(), "shard entry lacks {key}");
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_order() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    tokenize_corpus(&config(vec![fixture()], a.path())).unwrap();
    tokenize_corpus(&config(vec![fixture()], b.path())).unwrap();
    assert_eq!(all_files(a.path()), all_files(b.path()));
    tokenize_corpus(&TokenizeConfig {
        seed: 8,
        ..config(vec![fixture()], c.path())
    })
    .unwrap();
    assert_ne!(
        read_docs(a.path(), Split::Train),
        read_docs(c.path(), Split::Train)
    );
}

/// Tasks and resumption give the bytes of one uninterrupted run: each input file is a unit
/// whose shards depend on its documents alone.
#[test]
fn tasks_and_resume_give_the_bytes_of_one_run() {
    let input = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(input.path().join("a.jsonl"), lines[..120].join("\n")).unwrap();
    std::fs::write(input.path().join("b.jsonl"), lines[120..].join("\n")).unwrap();
    let whole = tempfile::tempdir().unwrap();
    tokenize_corpus(&config(vec![input.path().into()], whole.path())).unwrap();
    let out = tempfile::tempdir().unwrap();
    let cfg = |index| TokenizeConfig {
        task: Task { index, count: 2 },
        ..config(vec![input.path().into()], out.path())
    };
    let first = tokenize_corpus(&cfg(0)).unwrap();
    assert!(!first.meta_written, "meta.json waits for every file");
    assert!(!out.path().join("meta.json").exists());
    let second = tokenize_corpus(&cfg(1)).unwrap();
    assert!(second.meta_written);
    let before = all_files(out.path());
    assert_eq!(before, all_files(whole.path()));
    let mut all: Vec<Vec<u32>> = read_docs(out.path(), Split::Train);
    all.extend(read_docs(out.path(), Split::Validation));
    all.sort();
    assert_eq!(all, expected_docs());

    // Task 1 stopped inside b.jsonl: its marker and a shard are gone, so is meta.json.
    let unit = file_unit(&InputId::stat(&input.path().join("b.jsonl")).unwrap());
    let marker = out.path().join("_done").join(format!("{unit}.json"));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    let b_shards = written["record"]["report"]["shards"]
        .as_array()
        .unwrap()
        .len();
    std::fs::remove_file(&marker).unwrap();
    let last = written["record"]["report"]["shards"][b_shards - 1]["file"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(out.path().join(last)).unwrap();
    std::fs::remove_file(out.path().join("meta.json")).unwrap();
    let again = tokenize_corpus(&cfg(1)).unwrap();
    assert_eq!(
        again.shards_written, b_shards,
        "b.jsonl is redone, a.jsonl not"
    );
    assert!(again.meta_written);
    assert_eq!(all_files(out.path()), before);
    let done = tokenize_corpus(&cfg(0)).unwrap();
    assert!(done.task_was_done && done.shards_written == 0);
    assert_eq!(
        done.part.documents, 120,
        "a finished task reports its files"
    );
}

/// A word-level vocabulary of 70,000 ids: too many for uint16, and not Falcon's pipeline.
fn big_vocab_tokenizer(dir: &Path) -> PathBuf {
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|endoftext|>".into(), 0.into());
    for i in 1..70_000u32 {
        vocab.insert(format!("w{i}"), i.into());
    }
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<|endoftext|>"}
    });
    let path = dir.join("big.json");
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    path
}

#[test]
fn vocab_over_u16_is_refused_unless_uint32() {
    let dir = tempfile::tempdir().unwrap();
    let tok = big_vocab_tokenizer(dir.path());
    let t = Tokenizer::from_file(&tok).unwrap();
    assert!(!t.is_fast(), "a WordLevel model takes the reference path");
    assert_eq!(t.encode("w5 w69999 x").unwrap(), vec![5, 69_999, 0]);
    let out = dir.path().join("out");
    let cfg = TokenizeConfig {
        tokenizer: tok,
        ..config(vec![fixture()], &out)
    };
    let err = tokenize_corpus(&cfg).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Shards(shards::Error::VocabTooLarge {
                vocab_size: 70_000,
                ..
            })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("uint32"), "{err}");
    tokenize_corpus(&TokenizeConfig {
        dtype: Dtype::Uint32,
        ..cfg
    })
    .unwrap();
    let shards = TokenShards::open(&out).unwrap();
    assert_eq!(shards.meta().dtype, Dtype::Uint32);
    let info = &shards.meta().shards[0];
    assert_eq!(
        std::fs::metadata(out.join(&info.file)).unwrap().len(),
        info.tokens * 4
    );
}

/// `n` JSONL lines, gzipped.
fn jsonl_gz(n: usize) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..n {
        let words = "word ".repeat(i % 50);
        writeln!(
            gz,
            "{{\"text\":\"document {i} {words}\",\"url\":\"https://e.com/{i}\"}}"
        )
        .unwrap();
    }
    gz.finish().unwrap()
}

/// A truncated or corrupt `.jsonl.gz` is one counted skip: the task ends (no spinning, no
/// abort), keeps the lines before the damage and writes `meta.json`.
#[test]
fn damaged_jsonl_gz_is_a_counted_skip() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = jsonl_gz(4000);
    let truncated = tmp.path().join("truncated.jsonl.gz");
    std::fs::write(&truncated, &whole[..whole.len() * 6 / 10]).unwrap();
    let corrupt = tmp.path().join("corrupt.jsonl.gz");
    let mut bad = whole.clone();
    let mid = bad.len() / 2;
    bad[mid..mid + 64]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b ^= 0x5a ^ i as u8);
    std::fs::write(&corrupt, &bad).unwrap();
    for input in [truncated, corrupt] {
        let out = tmp.path().join(format!(
            "out-{}",
            input.file_name().unwrap().to_string_lossy()
        ));
        let config = config(vec![input.clone()], &out);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(tokenize_corpus(&config).map_err(|e| e.to_string()));
        });
        let report = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("tokenize of {input:?} still running after 120 s"))
            .unwrap();
        // The truncated file loses its cut line; garbage inflated from the corrupt one may
        // also make lines that are not JSON, each counted.
        assert!(report.part.skipped_lines >= 1, "{input:?}");
        if input.ends_with("truncated.jsonl.gz") {
            assert_eq!(report.part.skipped_lines, 1);
        }
        assert!(
            report.part.documents > 1000 && report.part.documents < 4000,
            "{input:?}: {}",
            report.part.documents
        );
        assert!(report.meta_written);
        let meta = TokenShards::open(&out).unwrap();
        let docs: u64 = [Split::Train, Split::Validation]
            .iter()
            .flat_map(|&s| meta.shards(s))
            .map(|s| s.documents)
            .sum();
        assert_eq!(docs, report.part.documents, "{input:?}");
    }
}

/// Issue 11: a task's shards hold every document of its files, shuffled: a file added between
/// runs is refused, then tokenized in full when allowed, with no document twice or missing.
#[test]
fn an_added_file_is_refused_then_tokenized_once_when_allowed() {
    let input = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(input.path().join("b.jsonl"), lines[120..].join("\n")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let cfg = config(vec![input.path().into()], out.path());
    tokenize_corpus(&cfg).unwrap();
    std::fs::write(input.path().join("a.jsonl"), lines[..120].join("\n")).unwrap();
    let err = tokenize_corpus(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("1 added")
            && err.contains("a.jsonl")
            && err.contains("--allow-changed-inputs"),
        "{err}"
    );
    let report = tokenize_corpus(&TokenizeConfig {
        allow_changed_inputs: true,
        ..cfg.clone()
    })
    .unwrap();
    assert!(report.meta_written && !report.task_was_done);
    let mut all: Vec<Vec<u32>> = read_docs(out.path(), Split::Train);
    all.extend(read_docs(out.path(), Split::Validation));
    all.sort();
    assert_eq!(all, expected_docs());
    let again = tokenize_corpus(&cfg).unwrap();
    assert!(again.task_was_done);
}
