//! `publish_dataset`: Parquet shards that read back whole, and a dataset card with the
//! front matter `datasets` reads, the funnel and the token counts.

use std::path::PathBuf;

use falconry_refine::dataset::read_parquet;
use falconry_refine::test_data_dir as data_dir;
use falconry_refine::{RunStats, StageStats};
use falconry_tokenize::{publish_dataset, tokenize_corpus, PublishConfig, TokenizeConfig};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/falcon_docs.jsonl")
}

#[test]
fn publishes_parquet_and_a_card() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    tokenize_corpus(&TokenizeConfig {
        inputs: vec![fixture()],
        output: tokens.clone(),
        tokenizer: data_dir().join("tokenizer/falcon/tokenizer.json"),
        ..Default::default()
    })
    .unwrap();
    let mut stats = RunStats::default();
    let mut read = StageStats::new("read");
    let mut quality = StageStats::new("quality");
    for i in 0..300 {
        read.keep();
        if i < 240 {
            quality.keep()
        } else {
            quality.drop("min_words")
        }
    }
    stats.stages = vec![read, quality];
    let stats_path = dir.path().join("stats.json");
    std::fs::write(&stats_path, serde_json::to_vec(&stats).unwrap()).unwrap();

    let out = dir.path().join("dataset");
    let report = publish_dataset(&PublishConfig {
        inputs: vec![fixture()],
        output: out.clone(),
        stats: Some(stats_path),
        tokens: Some(tokens),
        rows_per_file: 100,
        row_group_rows: 30,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(report.rows, 240);
    assert_eq!(
        report.files,
        [
            "data/train-00000.parquet",
            "data/train-00001.parquet",
            "data/train-00002.parquet"
        ]
    );
    let mut rows = 0;
    for f in &report.files {
        for doc in read_parquet(&out.join(f)).unwrap() {
            assert!(!doc.unwrap().content.is_empty());
            rows += 1;
        }
    }
    assert_eq!(rows, 240);
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.starts_with("---\nlicense: odc-by\n"), "{card}");
    assert!(card.contains("    path: data/train-*\n"));
    assert!(card.contains("    num_examples: 240\n"));
    assert!(
        card.contains("| quality | 300 | 240 | 80.00% | min_words: 60 |"),
        "{card}"
    );
    assert!(card.contains("| train |") && card.contains("## Tokens"));
}
