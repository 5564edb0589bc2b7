//! `falconry extract`: the extractor alone, on saved HTML files.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use falconry_refine::Extractor;
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::ExtractArgs;

#[derive(Serialize)]
struct Line<'a> {
    path: &'a Path,
    text: String,
}

pub fn run(args: ExtractArgs) -> Result<()> {
    let config = crate::refine::config(args.config.as_deref())?;
    let extractor = Extractor::new(&config.extraction);
    // Pages are extracted in parallel but printed in the order given.
    let texts: Vec<Result<String>> = args
        .files
        .par_iter()
        .map(|p| extract_file(&extractor, p))
        .collect();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (path, text) in args.files.iter().zip(texts) {
        let line = Line { path, text: text? };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn extract_file(extractor: &Extractor, path: &PathBuf) -> Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file).read_to_end(&mut bytes)
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes)
    }
    .with_context(|| format!("reading {}", path.display()))?;
    // Saved pages carry no HTTP header: BOM, <meta charset>, then detection decide.
    let html = falconry_refine::warc::decode_html(&bytes, None, "");
    Ok(extractor.extract(&html).text)
}
