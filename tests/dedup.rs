//! `falconry dedup` after `falconry refine`: copies go, the funnel continues refine's.

use crate::util::{data_dir, stage, TestCommand};

#[test]
fn dedup_removes_copies_and_extends_the_funnel() {
    let t = TestCommand::new();
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(data_dir().join("extraction-bench/ground-truth.json")).unwrap(),
    )
    .unwrap();
    let mut articles: Vec<(&String, &str)> = truth
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, v)| (id, v["articleBody"].as_str().unwrap()))
        .collect();
    articles.sort();
    let mut lines = String::new();
    for (i, (id, text)) in articles.iter().take(12).enumerate() {
        lines +=
            &serde_json::json!({"text": text, "url": format!("https://news.example.com/{id}")})
                .to_string();
        lines.push('\n');
        if i < 3 {
            // The same article syndicated elsewhere.
            lines += &serde_json::json!({"text": text, "url": format!("https://mirror.example.org/{id}")}).to_string();
            lines.push('\n');
        }
    }
    std::fs::write(t.path("in.jsonl"), lines).unwrap();
    let refined = t.path("refine");
    let deduped = t.path("dedup");
    t.assert_exit_code(
        &[
            "refine",
            "-q",
            "--input",
            t.path("in.jsonl").to_str().unwrap(),
            "--output",
            refined.to_str().unwrap(),
        ],
        0,
    );
    t.assert_exit_code(
        &[
            "dedup",
            "-q",
            "--input",
            refined.to_str().unwrap(),
            "--output",
            deduped.to_str().unwrap(),
            "--explain",
        ],
        0,
    );
    let stats = t.stats("dedup");
    let names: Vec<&str> = stats["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"read"), "{names:?}");
    assert!(
        names.contains(&"minhash") && names.contains(&"url_dedup"),
        "{names:?}"
    );
    let refined_out = stage(&t.stats("refine"), "line_correction")["out"]
        .as_u64()
        .unwrap();
    let minhash = stage(&stats, "minhash");
    assert_eq!(minhash["in"].as_u64().unwrap(), refined_out);
    let kept: u64 = ["part-00000.parquet"]
        .iter()
        .map(|f| {
            falconry_refine::dataset::read_parquet(&deduped.join(f))
                .unwrap()
                .count() as u64
        })
        .sum();
    let copies_in = refined_out - kept;
    assert!(
        (1..=3).contains(&copies_in),
        "removed {copies_in} of {refined_out}"
    );
    assert!(deduped.join("explain.jsonl").exists());
}
