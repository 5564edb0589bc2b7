//! Writes every kind of output of the crate from the committed fixture, for checking with
//! Python (`scripts/check_tokenizer.py`, `scripts/check_publish.py`) and numpy:
//! `OUT/tokenizer.json` (trained, 2,000 ids), `OUT/tokens/` (Falcon token shards),
//! `OUT/dataset/` (a publishable dataset folder).
//!
//! Run: `cargo run -p falconry-tokenize --example tokenize_demo -- OUT`

use std::path::PathBuf;

use falconry_tokenize::{
    publish_dataset, save_tokenizer, tokenize_corpus, train_tokenizer, PublishConfig,
    TokenizeConfig, TrainConfig,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: tokenize_demo OUT")?);
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let fixture = manifest.join("tests/fixtures/falcon_docs.jsonl");
    let data = std::env::var_os("FALCONRY_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../shared/data"));
    std::fs::create_dir_all(&out)?;
    let (tok, report) = train_tokenizer(&TrainConfig {
        inputs: vec![fixture.clone()],
        vocab_size: 2_000,
        ..Default::default()
    })?;
    save_tokenizer(&tok, &out.join("tokenizer.json"))?;
    println!("trained: {report:?}");
    let tokens = tokenize_corpus(&TokenizeConfig {
        inputs: vec![fixture.clone()],
        output: out.join("tokens"),
        tokenizer: data.join("tokenizer/falcon/tokenizer.json"),
        shard_tokens: 100_000,
        validation_fraction: 0.05,
        ..Default::default()
    })?;
    println!(
        "tokenized: {} documents, {} shards",
        tokens.part.documents,
        tokens.part.shards.len()
    );
    let published = publish_dataset(&PublishConfig {
        inputs: vec![fixture],
        output: out.join("dataset"),
        tokens: Some(out.join("tokens")),
        rows_per_file: 100,
        row_group_rows: 50,
        ..Default::default()
    })?;
    println!(
        "published: {} rows in {:?}",
        published.rows, published.files
    );
    Ok(())
}
