//! Cluster agreement with datatrove 0.10.1's MinHash at the same preset (450 x 20) on the
//! same 300 documents: the fixture is written by `scripts/minhash_datatrove.py`.
//!
//! The two implementations hash differently (datatrove: SHA-1 shingles, `(a*x+b) mod 2^61-1`,
//! numbers normalised to 0; falconry: xxh3, a 32-bit multiply-add family), so they can only
//! disagree where LSH is a coin toss: pairs near the 0.75 threshold. The fixture's copies sit
//! at Jaccard about 1, 0.95, 0.9, 0.82 (P(dup) >= 0.998), 0.63 (P ~ 0.03) and 0.28, so
//! nearly every pair is decided the same way by both: we require a pairwise agreement of
//! 99%, an adjusted Rand index of 0.9 (measured: 0.93; the 0.63 copies are where the two
//! coin tosses differ, and each such copy moves several pairs), and that no disagreeing pair
//! lies outside exact Jaccard [0.45, 0.85], where both implementations are near-certain.

mod util;

use std::collections::HashMap;

use falconry_dedup::normalize::jaccard;
use falconry_dedup::{run_dedup, DedupConfig, ExplainLine, RunOptions};
use falconry_refine::Document;

#[derive(serde::Deserialize)]
struct Row {
    id: String,
    text: String,
    datatrove_cluster: i64,
}

/// Adjusted Rand index of two labelings.
fn adjusted_rand(a: &[usize], b: &[usize]) -> f64 {
    let c2 = |n: u64| (n * n.saturating_sub(1) / 2) as f64;
    let mut table: HashMap<(usize, usize), u64> = HashMap::new();
    let (mut ra, mut rb): (HashMap<usize, u64>, HashMap<usize, u64>) = Default::default();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1;
        *ra.entry(x).or_default() += 1;
        *rb.entry(y).or_default() += 1;
    }
    let index: f64 = table.values().map(|&n| c2(n)).sum();
    let (sa, sb): (f64, f64) = (
        ra.values().map(|&n| c2(n)).sum(),
        rb.values().map(|&n| c2(n)).sum(),
    );
    let expected = sa * sb / c2(a.len() as u64);
    (index - expected) / ((sa + sb) / 2.0 - expected)
}

#[test]
fn clusters_agree_with_datatrove() {
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/datatrove_minhash.jsonl"
    ))
    .unwrap();
    let rows: Vec<Row> = fixture
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 300);
    let tmp = tempfile::tempdir().unwrap();
    let docs: Vec<Document> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| Document {
            id: r.id.clone(),
            content: r.text.clone(),
            timestamp: Some(i as i64),
            ..Default::default()
        })
        .collect();
    util::write_shard(&tmp.path().join("in.parquet"), &docs);
    let mut config = DedupConfig::default();
    config.exact_substring.enabled = false;
    config.url_dedup.enabled = false;
    let out = tmp.path().join("out");
    run_dedup(
        &[tmp.path().join("in.parquet")],
        &out,
        &config,
        &RunOptions {
            explain: true,
            ..Default::default()
        },
    )
    .unwrap();

    // falconry's clusters: each removed document joins the one it duplicates.
    let index: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let mut ours: Vec<usize> = (0..rows.len()).collect();
    for line in std::fs::read_to_string(out.join("explain.jsonl"))
        .unwrap()
        .lines()
    {
        let l: ExplainLine = serde_json::from_str(line).unwrap();
        ours[index[l.id.as_str()]] = index[l.duplicate_of.as_deref().unwrap()];
    }
    let theirs: Vec<usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if r.datatrove_cluster < 0 {
                rows.len() + i
            } else {
                r.datatrove_cluster as usize
            }
        })
        .collect();
    let n = rows.len();
    let mut disagreeing_j = Vec::new();
    let (mut agree, mut total, mut both, mut only_ours, mut only_theirs) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            let (a, b) = (ours[i] == ours[j], theirs[i] == theirs[j]);
            total += 1;
            agree += (a == b) as u64;
            if a != b {
                disagreeing_j.push(jaccard(&rows[i].text, &rows[j].text, 5));
            }
            both += (a && b) as u64;
            only_ours += (a && !b) as u64;
            only_theirs += (!a && b) as u64;
        }
    }
    let ari = adjusted_rand(&ours, &theirs);
    let agreement = agree as f64 / total as f64;
    println!("pairs {total}: agree {agreement:.5}, same-cluster in both {both}, only falconry {only_ours}, only datatrove {only_theirs}, ARI {ari:.4}");
    disagreeing_j.sort_by(f64::total_cmp);
    println!("exact Jaccard of disagreeing pairs: {disagreeing_j:.3?}");
    assert!(both > 300, "too few duplicate pairs to compare: {both}");
    assert!(agreement >= 0.99, "pairwise agreement {agreement}");
    assert!(ari >= 0.9, "adjusted Rand index {ari}");
    // Every disagreement is a pair LSH decides by chance, never a clear case.
    let clear = disagreeing_j
        .iter()
        .filter(|&&j| !(0.45..=0.85).contains(&j))
        .count();
    assert_eq!(
        clear, 0,
        "disagreements outside J in [0.45, 0.85]: {disagreeing_j:?}"
    );
}
