//! Runs the Rust extraction crates (trafilatura 0.6, dom_smoothie 0.19) on the benchmark pages and writes
//! predictions in the format extraction_eval's --peer reads.
use std::io::Read;
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (which, data, out) = (&args[1], &args[2], &args[3]);
    let mut pages = Vec::new();
    let bench = format!("{data}/extraction-bench/html");
    let mut names: Vec<_> = std::fs::read_dir(&bench)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let key = p
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .to_string();
        pages.push(("bench", key, p));
    }
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{data}/html/trafilatura-eval/evaldata_subset.json"))
            .unwrap(),
    )
    .unwrap();
    for v in meta.as_object().unwrap().values() {
        let f = v["file"].as_str().unwrap().to_string();
        let p = std::path::PathBuf::from(format!("{data}/html/trafilatura-eval/pages/{f}.gz"));
        if p.exists() {
            pages.push(("eval", f, p));
        }
    }
    let mut result = serde_json::json!({"bench": {}, "eval": {}});
    let mut total = 0.0;
    for (set, key, path) in pages {
        let raw = std::fs::read(&path).unwrap();
        let mut buf = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut buf)
            .unwrap();
        let html = String::from_utf8_lossy(&buf).into_owned();
        let t0 = Instant::now();
        let text = if which == "trafilatura" {
            let opts = trafilatura::Options::default()
                .with_focus(trafilatura::ExtractionFocus::FavorPrecision);
            trafilatura::extract(&html, &opts)
                .map(|r| r.content_text)
                .unwrap_or_default()
        } else {
            dom_smoothie::Readability::new(html.as_str(), None, None)
                .ok()
                .and_then(|mut r| r.parse().ok())
                .map(|a| a.text_content.to_string())
                .unwrap_or_default()
        };
        let dt = t0.elapsed().as_secs_f64();
        total += dt;
        result[set][key] = serde_json::json!({"text": text, "seconds": dt});
    }
    result["seconds"] = total.into();
    std::fs::write(out, result.to_string()).unwrap();
}
