//! MinHash quality at the RefinedWeb preset against exact Jaccard, on near duplicates of real
//! text (the extraction benchmark's articles edited to known levels): recall >= 0.99 for
//! pairs at J >= 0.85 and false positives <= 1% for pairs at J <= 0.5 (issue 4). A smaller
//! run than the benchmark's table (`cargo run --release -p falconry-dedup --example bench`).

mod util;

use falconry_dedup::near_duplicates::edit_to_jaccard;
use falconry_dedup::{MinHasher, MinhashConfig, Scratch};

#[test]
fn refinedweb_preset_meets_recall_and_false_positive_bounds() {
    let hasher = MinHasher::new(&MinhashConfig::default());
    let mut scratch = Scratch::default();
    let mut keys = |t: &str| {
        let mut k = Vec::new();
        hasher.band_keys(t, &mut scratch, &mut k);
        k
    };
    let (mut high, mut high_found, mut low, mut low_found) = (0, 0, 0, 0);
    for (i, article) in util::articles().iter().enumerate() {
        let text = util::words(article, 400);
        let original = keys(&text);
        for (t, target) in [0.3, 0.45, 0.5, 0.85, 0.9, 0.95].into_iter().enumerate() {
            let (copy, j) = edit_to_jaccard(&text, target, 5, (i * 10 + t) as u64);
            let found = original.iter().zip(keys(&copy)).any(|(a, b)| *a == b);
            if j >= 0.85 {
                high += 1;
                high_found += found as u32;
            } else if j <= 0.5 {
                low += 1;
                low_found += found as u32;
            }
        }
    }
    let recall = high_found as f64 / high as f64;
    let fp = low_found as f64 / low as f64;
    println!("J >= 0.85: {high_found}/{high} found (recall {recall:.4}); J <= 0.5: {low_found}/{low} (FP {fp:.4})");
    assert!(
        high >= 150 && low >= 150,
        "too few pairs: {high} high, {low} low"
    );
    assert!(recall >= 0.99, "recall {recall}");
    assert!(fp <= 0.01, "false positives {fp}");
}
