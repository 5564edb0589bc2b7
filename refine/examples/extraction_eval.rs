//! Extraction quality and speed: falconry's extractor against Python trafilatura.
//!
//! ```text
//! scripts/extraction_eval_trafilatura.py ../shared/data /tmp/peer.json   # optional peer run
//! cargo run --release -p falconry-refine --example extraction_eval -- [--peer /tmp/peer.json]
//!     [--data DIR] [--runs N] [--worst N] [--dump DIR]
//! ```
//!
//! Quality 1, `extraction-bench` (scrapinghub's article-extraction-benchmark): per page the
//! multisets of 4-token shingles (tokens = `\w+`) of the ground-truth `articleBody` and of
//! the prediction give TP/FP/FN; precision and recall are averaged over pages and F1 is
//! their harmonic mean, for the `dev` and `holdout` ids of `split.json` (where their pages
//! are present) and all pages. Quality 2, `html/trafilatura-eval`: the share of `with`
//! snippets found in the text and of `without` snippets absent from it.
//! Speed: one thread, all pages of both sets, median of `--runs` passes; the peer's time
//! is what the Python script measured around `trafilatura.extract`, on the same machine.
//! Prints one Markdown table.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use falconry_refine::{ExtractionConfig, Extractor};
use regex::Regex;
use serde_json::Value;

struct Page {
    set: &'static str,
    key: String,
    html: String,
}

fn read_page(path: &Path) -> Result<String, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        out
    } else {
        raw
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Shingle TP/FP/FN of one page (the benchmark's `string_shingle_matching`).
fn shingle_counts(token: &Regex, truth: &str, pred: &str) -> (f64, f64, f64) {
    fn shingles<'a>(token: &Regex, text: &'a str) -> HashMap<Vec<&'a str>, i64> {
        let tokens: Vec<&str> = token.find_iter(text).map(|m| m.as_str()).collect();
        let mut out = HashMap::new();
        if tokens.is_empty() {
            return out;
        }
        for i in 0..tokens.len().saturating_sub(3).max(1) {
            *out.entry(tokens[i..(i + 4).min(tokens.len())].to_vec()).or_insert(0) += 1;
        }
        out
    }
    let t = shingles(token, truth);
    let p = shingles(token, pred);
    let (mut tp, mut fp, mut fn_) = (0i64, 0i64, 0i64);
    for (k, &tc) in &t {
        let pc = p.get(k).copied().unwrap_or(0);
        tp += tc.min(pc);
        fn_ += (tc - pc).max(0);
    }
    for (k, &pc) in &p {
        fp += (pc - t.get(k).copied().unwrap_or(0)).max(0);
    }
    (tp as f64, fp as f64, fn_ as f64)
}

/// Mean precision, mean recall and their F1 over pages (the benchmark's
/// `metrics_from_tp_fp_fns`: a page with nothing to find and nothing found scores 1).
fn f1(counts: &[(f64, f64, f64)]) -> (f64, f64, f64) {
    let (mut ps, mut rs) = (Vec::new(), Vec::new());
    for &(tp, fp, fn_) in counts {
        if fp == 0.0 && fn_ == 0.0 {
            ps.push(1.0);
            rs.push(1.0);
            continue;
        }
        if tp + fp > 0.0 {
            ps.push(tp / (tp + fp));
        }
        if tp + fn_ > 0.0 {
            rs.push(tp / (tp + fn_));
        }
    }
    let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    let (p, r) = (mean(&ps), mean(&rs));
    (p, r, if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 })
}

struct Args {
    data: PathBuf,
    peer: Option<PathBuf>,
    runs: usize,
    worst: usize,
    dump: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let default_data = std::env::var_os("FALCONRY_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let mut args =
        Args { data: default_data, peer: None, runs: 5, worst: 0, dump: None };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--data" => args.data = val()?.into(),
            "--peer" => args.peer = Some(val()?.into()),
            "--runs" => args.runs = val()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--worst" => args.worst = val()?.parse().map_err(|e| format!("--worst: {e}"))?,
            "--dump" => args.dump = Some(val()?.into()),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok(args)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("extraction_eval: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let bench = args.data.join("extraction-bench");
    let truth = read_json(&bench.join("ground-truth.json"))?;
    let split = read_json(&bench.join("split.json"))?;
    let ids = |k: &str| -> Vec<String> {
        split[k].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect()
    };
    let (dev, holdout) = (ids("dev_ids"), ids("holdout_ids"));

    let mut pages = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(bench.join("html"))
        .map_err(|e| format!("{}: {e}", bench.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    for path in names {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let key = name.split('.').next().unwrap_or_default().to_string();
        pages.push(Page { set: "bench", key, html: read_page(&path)? });
    }
    let eval_dir = args.data.join("html/trafilatura-eval");
    let eval_meta = read_json(&eval_dir.join("evaldata_subset.json"))?;
    let eval_meta: BTreeMap<String, Value> = eval_meta
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut eval_snippets = BTreeMap::new();
    for meta in eval_meta.values() {
        let Some(file) = meta["file"].as_str() else { continue };
        let path = eval_dir.join("pages").join(format!("{file}.gz"));
        if !path.exists() {
            continue;
        }
        pages.push(Page { set: "eval", key: file.to_string(), html: read_page(&path)? });
        eval_snippets.insert(file.to_string(), (meta["with"].clone(), meta["without"].clone()));
    }
    let bytes: usize = pages.iter().map(|p| p.html.len()).sum();

    // Speed: median of full passes on one thread.
    let extractor = Extractor::new(&ExtractionConfig::default());
    let mut outputs = Vec::new();
    let mut times = Vec::new();
    for _ in 0..args.runs.max(1) {
        let t0 = Instant::now();
        outputs = pages.iter().map(|p| extractor.extract(&p.html).text).collect();
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let ours_secs = times[times.len() / 2];

    let ours: BTreeMap<(&str, &str), &str> =
        pages.iter().zip(&outputs).map(|(p, t)| ((p.set, p.key.as_str()), t.as_str())).collect();
    let peer = args.peer.as_deref().map(read_json).transpose()?;
    let peer_text = |set: &str, key: &str| -> Option<String> {
        peer.as_ref().map(|v| v[set][key]["text"].as_str().unwrap_or("").to_string())
    };

    let token = Regex::new(r"\w+").map_err(|e| e.to_string())?;
    let score_set = |ids: &[String], pred: &dyn Fn(&str) -> Option<String>| -> Option<((f64, f64, f64), usize)> {
        let counts: Vec<_> = ids
            .iter()
            .filter(|id| ours.contains_key(&("bench", id.as_str())))
            .filter_map(|id| {
                let t = truth[id.as_str()]["articleBody"].as_str().unwrap_or("");
                pred(id).map(|p| shingle_counts(&token, t, &p))
            })
            .collect();
        (!counts.is_empty()).then(|| (f1(&counts), counts.len()))
    };
    let all: Vec<String> = pages.iter().filter(|p| p.set == "bench").map(|p| p.key.clone()).collect();
    let ours_pred = |id: &str| ours.get(&("bench", id)).map(|s| s.to_string());
    let peer_pred = |id: &str| peer_text("bench", id);
    let snippet_score = |pred: &dyn Fn(&str) -> Option<String>| -> Option<(f64, f64)> {
        let (mut with, mut with_n, mut without, mut without_n) = (0, 0, 0, 0);
        for (file, (w, wo)) in &eval_snippets {
            let text = pred(file)?;
            for s in w.as_array().into_iter().flatten().filter_map(Value::as_str) {
                with_n += 1;
                with += text.contains(s) as usize;
            }
            for s in wo.as_array().into_iter().flatten().filter_map(Value::as_str) {
                without_n += 1;
                without += !text.contains(s) as usize;
            }
        }
        Some((with as f64 / with_n.max(1) as f64, without as f64 / without_n.max(1) as f64))
    };
    let ours_eval = |f: &str| ours.get(&("eval", f)).map(|s| s.to_string());
    let peer_eval = |f: &str| peer_text("eval", f);

    let fmt_f1 = |s: Option<((f64, f64, f64), usize)>| match s {
        Some(((p, r, f), n)) => format!("{f:.3} (P {p:.3} R {r:.3}, {n} pages)"),
        None => "n/a (pages absent)".to_string(),
    };
    let ratio = |a: Option<((f64, f64, f64), usize)>, b: Option<((f64, f64, f64), usize)>| match (a, b) {
        (Some((a, _)), Some((b, _))) if b.2 > 0.0 => format!("{:.3}", a.2 / b.2),
        _ => "-".to_string(),
    };
    let n = pages.len() as f64;
    let mb = bytes as f64 / 1e6;
    let peer_secs = peer.as_ref().and_then(|v| v["seconds"].as_f64());
    println!("| measure | falconry | trafilatura (Python, datatrove's call) | ratio |");
    println!("|---|---|---|---|");
    for (label, ids) in [("extraction-bench F1, dev", &dev), ("F1, holdout", &holdout), ("F1, all", &all)] {
        let a = score_set(ids, &ours_pred);
        let b = peer.as_ref().and_then(|_| score_set(ids, &peer_pred));
        println!("| {label} | {} | {} | {} |", fmt_f1(a), b.map_or("-".into(), |b| fmt_f1(Some(b))), ratio(a, b));
    }
    let sa = snippet_score(&ours_eval);
    let sb = peer.as_ref().and_then(|_| snippet_score(&peer_eval));
    let fmt_snip = |s: Option<(f64, f64)>| s.map_or("-".into(), |(w, wo)| format!("{w:.3} found / {wo:.3} absent"));
    println!("| trafilatura-eval snippets (with / without) | {} | {} | - |", fmt_snip(sa), fmt_snip(sb));
    println!(
        "| pages/s, one core ({} pages, {mb:.1} MB) | {:.0} ({:.2} ms/page, {:.0} MB/s) | {} | {} |",
        pages.len(),
        n / ours_secs,
        1e3 * ours_secs / n,
        mb / ours_secs,
        peer_secs.map_or("-".into(), |s| format!("{:.1} ({:.1} ms/page)", n / s, 1e3 * s / n)),
        peer_secs.map_or("-".into(), |s| format!("{:.1}x", s / ours_secs)),
    );

    if args.worst > 0 {
        let mut rows: Vec<(f64, f64, &str)> = all
            .iter()
            .filter_map(|id| {
                let t = truth[id.as_str()]["articleBody"].as_str().unwrap_or("");
                let (tp, fp, fn_) = shingle_counts(&token, t, ours.get(&("bench", id.as_str()))?);
                Some((tp / (tp + fp).max(1.0), tp / (tp + fn_).max(1.0), id.as_str()))
            })
            .collect();
        rows.sort_by(|a, b| (a.0.min(a.1)).total_cmp(&b.0.min(b.1)));
        eprintln!("worst pages (precision, recall, id):");
        for (p, r, id) in rows.iter().take(args.worst) {
            eprintln!("  {p:.3} {r:.3} {id} {}", truth[*id]["url"].as_str().unwrap_or(""));
        }
    }
    if let Some(dir) = &args.dump {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for ((set, key), text) in &ours {
            let path = dir.join(format!("{set}-{key}.txt"));
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}
