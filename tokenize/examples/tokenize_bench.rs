//! Encoding speed per core: falconry's encoder, the `tokenizers` crate, and Python
//! `tokenizers`, on the same text, with the ids checked equal. Prints a Markdown table.
//!
//! Text: extraction-bench's ground-truth article bodies and the tag-stripped text of
//! trafilatura-eval's pages (English, German, French, Chinese, ...), repeated to `--mb` MB.
//! Each encoder runs on one thread. falconry's cache starts empty; "cold" is the first pass
//! over the unique text, "steady" the repeated text.
//!
//! Run: `cargo run --release -p falconry-tokenize --example tokenize_bench [-- --mb 4]`
//! (env `FALCONRY_PYTHON`: the interpreter with `tokenizers`, default /work/main/.venv/bin/python).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use falconry_refine::test_data_dir as data_dir;
use falconry_tokenize::Tokenizer;

/// Text of an HTML page: tags, scripts and styles removed, a few entities decoded.
fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 4);
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    while let Some(lt) = html[i..].find('<').map(|p| p + i) {
        out.push_str(&html[i..lt]);
        let skip_to = ["script", "style"].iter().find_map(|tag| {
            lower[lt + 1..]
                .starts_with(tag)
                .then(|| lower[lt..].find(&format!("</{tag}")).map(|p| p + lt))
        });
        let from = skip_to.flatten().unwrap_or(lt);
        i = html[from..].find('>').map_or(html.len(), |p| from + p + 1);
        out.push(' ');
    }
    out.push_str(&html[i.min(html.len())..]);
    let text = out
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn documents(data: &Path) -> Vec<String> {
    let truth: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join("extraction-bench/ground-truth.json")).expect("ground truth"),
    )
    .expect("json");
    let mut docs: Vec<String> = truth
        .as_object()
        .expect("object")
        .values()
        .filter_map(|v| v["articleBody"].as_str().map(str::to_owned))
        .collect();
    let pages = data.join("html/trafilatura-eval/pages");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&pages)
        .expect("pages")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for path in names {
        let mut html = Vec::new();
        let file = std::fs::File::open(&path).expect("page");
        flate2::read::MultiGzDecoder::new(file)
            .read_to_end(&mut html)
            .expect("gunzip");
        docs.push(strip_html(&String::from_utf8_lossy(&html)));
    }
    docs
}

struct Row {
    name: String,
    tokens: usize,
    bytes: usize,
    seconds: f64,
}

fn time(name: &str, docs: &[String], f: impl Fn(&str) -> Vec<u32>) -> (Row, Vec<Vec<u32>>) {
    let start = Instant::now();
    let ids: Vec<Vec<u32>> = docs.iter().map(|d| f(d)).collect();
    let seconds = start.elapsed().as_secs_f64();
    let row = Row {
        name: name.into(),
        tokens: ids.iter().map(Vec::len).sum(),
        bytes: docs.iter().map(String::len).sum(),
        seconds,
    };
    (row, ids)
}

const PYTHON: &str = r#"
import json, sys, time, tokenizers
tok = tokenizers.Tokenizer.from_file(sys.argv[1])
docs = json.load(open(sys.argv[2], encoding="utf-8"))
start = time.perf_counter()
ids = [tok.encode(d, add_special_tokens=False).ids for d in docs]
seconds = time.perf_counter() - start
json.dump({"seconds": seconds, "ids": ids}, open(sys.argv[3], "w"))
"#;

fn python_row(tokenizer: &Path, docs: &[String]) -> Option<(Row, Vec<Vec<u32>>)> {
    let python =
        std::env::var("FALCONRY_PYTHON").unwrap_or_else(|_| "/work/main/.venv/bin/python".into());
    let dir = std::env::temp_dir().join(format!("falconry-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let (input, output) = (dir.join("docs.json"), dir.join("ids.json"));
    std::fs::write(&input, serde_json::to_vec(docs).ok()?).ok()?;
    let status = std::process::Command::new(&python)
        .args(["-c", PYTHON])
        .arg(tokenizer)
        .arg(&input)
        .arg(&output)
        .env("RAYON_NUM_THREADS", "1")
        .env("TOKENIZERS_PARALLELISM", "false")
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&output).ok()?).ok()?;
    std::fs::remove_dir_all(&dir).ok();
    let ids: Vec<Vec<u32>> = serde_json::from_value(v["ids"].clone()).ok()?;
    let row = Row {
        name: "Python `tokenizers` (`Tokenizer.encode`)".into(),
        tokens: ids.iter().map(Vec::len).sum(),
        bytes: docs.iter().map(String::len).sum(),
        seconds: v["seconds"].as_f64()?,
    };
    Some((row, ids))
}

fn main() {
    let mb: f64 = std::env::args()
        .skip_while(|a| a != "--mb")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(4.0);
    let data = data_dir();
    let tokenizer_path = data.join("tokenizer/falcon/tokenizer.json");
    let unique = documents(&data);
    let unique_bytes: usize = unique.iter().map(String::len).sum();
    let mut repeated = Vec::new();
    while repeated.iter().map(String::len).sum::<usize>() < (mb * 1e6) as usize {
        repeated.extend(unique.iter().cloned());
    }

    let tokenizer = Tokenizer::from_file(&tokenizer_path).expect("tokenizer");
    assert!(tokenizer.is_fast());
    let (cold, cold_ids) = time(
        "falconry, cold cache (unique text, one pass)",
        &unique,
        |d| tokenizer.encode(d).expect("encode"),
    );
    let (steady, fast_ids) = time("falconry, steady state (repeated text)", &repeated, |d| {
        tokenizer.encode(d).expect("encode")
    });
    let (crate_row, crate_ids) = time("`tokenizers` crate 0.22 (`encode_fast`)", &repeated, |d| {
        tokenizer.reference_encode(d).expect("encode")
    });
    assert_eq!(
        fast_ids, crate_ids,
        "falconry and the tokenizers crate disagree"
    );
    assert_eq!(cold_ids[..], crate_ids[..unique.len()]);
    let python = python_row(&tokenizer_path, &repeated);
    if let Some((_, ids)) = &python {
        assert_eq!(&fast_ids, ids, "falconry and Python tokenizers disagree");
    }

    println!("Falcon tokenizer, one thread each; {} documents, {:.2} MB unique text repeated to {:.2} MB; ids identical across all rows.\n",
        unique.len(), unique_bytes as f64 / 1e6, steady.bytes as f64 / 1e6);
    let base = python.as_ref().map(|(r, _)| r.tokens as f64 / r.seconds);
    println!("| encoder | tokens | seconds | tokens/s per core | MB/s per core | vs Python |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut rows = vec![cold, steady, crate_row];
    if let Some((row, _)) = python {
        rows.push(row);
    }
    for r in &rows {
        let tps = r.tokens as f64 / r.seconds;
        let ratio = base.map_or("n/a".to_string(), |b| format!("{:.1}x", tps / b));
        println!(
            "| {} | {} | {:.3} | {:.0} | {:.2} | {} |",
            r.name,
            r.tokens,
            r.seconds,
            tps,
            r.bytes as f64 / 1e6 / r.seconds,
            ratio
        );
    }
    if base.is_none() {
        println!("\nPython `tokenizers` not found (set FALCONRY_PYTHON): no peer row.");
    }
}
