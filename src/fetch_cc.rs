//! `falconry fetch-cc`: a slice of a real CommonCrawl crawl on local disk, for users with
//! internet.
//!
//! The crawl's listing (`crawl-data/CC-MAIN-YYYY-WW/warc.paths.gz`, or `wet.paths.gz`) names
//! every file as `crawl-data/CRAWL/segments/SEGMENT/KIND/NAME`, in segment order. The slice is
//! the first `--segments` segments of the listing (optionally the first
//! `--files-per-segment` files of each: a segment of a 2024 crawl holds about 900 files of
//! each kind, a WARC file about 1 GB). Each file is read through the reader `--input` uses ([`falconry_refine::remote`]:
//! retries, backoff, resumption by range) into `DIR/<its listing path>.tmp`, then renamed;
//! a re-run skips the files already there at their full size and continues a `.tmp` from
//! its end. `DIR/_manifest.json` lists what was fetched (URL, path, size, xxh3); its name
//! starts with `_`, so `--input DIR` does not take it for an input.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use falconry_refine::folder::{commit_tmp, write_atomic, Task};
use falconry_refine::lock::OutputLock;
use falconry_refine::remote;
use serde::Serialize;

use crate::cli::FetchCcArgs;
use crate::progress;

/// The manifest's name inside `--output`.
const MANIFEST: &str = "_manifest.json";

/// What `DIR/_manifest.json` holds.
#[derive(Serialize)]
struct Manifest {
    crawl: String,
    kind: String,
    listing: String,
    /// The segments taken, in listing order.
    segments: Vec<String>,
    files_per_segment: Option<u64>,
    files: Vec<Fetched>,
}

/// One file of the slice.
#[derive(Serialize)]
struct Fetched {
    url: String,
    /// Under `--output`, as the listing names it.
    path: PathBuf,
    size: u64,
    xxh3: String,
}

pub fn run(args: FetchCcArgs) -> Result<()> {
    let crawl = &args.crawl;
    if !is_crawl_name(crawl) {
        return Err(crate::cli::usage(format!(
            "--crawl {crawl}: not a crawl name like CC-MAIN-2024-10"
        )));
    }
    let base = args.base_url.trim_end_matches('/');
    let kind = args.kind.name();
    let listing = format!("{base}/crawl-data/{crawl}/{kind}.paths.gz");
    let lines = remote::listing_lines(Path::new(&listing))
        .with_context(|| format!("reading the listing {listing}"))?;
    let per_segment = args.files_per_segment.map(|n| n as usize);
    let (segments, chosen) = slice(&lines, args.segments as usize, per_segment)
        .with_context(|| format!("in the listing {listing}"))?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let _lock = OutputLock::acquire(&args.output, Task::new(0, 1)?)?;
    let bar = progress::count_bar(chosen.len() as u64, "fetch-cc");
    let mut files = Vec::new();
    for rel in chosen {
        let url = format!("{base}/{rel}");
        let dest = args.output.join(rel);
        let size = download(&url, &dest)?;
        let record = crate::run::input_record(&dest)?;
        files.push(Fetched {
            url,
            path: rel.into(),
            size,
            xxh3: record.xxh3,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let manifest = Manifest {
        crawl: crawl.clone(),
        kind: kind.into(),
        listing,
        segments,
        files_per_segment: args.files_per_segment,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    let path = args.output.join(MANIFEST);
    write_atomic(&path, &json).with_context(|| format!("writing {}", path.display()))?;
    let bytes: u64 = manifest.files.iter().map(|f| f.size).sum();
    crate::say(&format!(
        "{} files of {} segments, {:.1} MB, in {}",
        manifest.files.len(),
        manifest.segments.len(),
        bytes as f64 / 1e6,
        args.output.display()
    ));
    Ok(())
}

/// `CC-MAIN-YYYY-WW`.
fn is_crawl_name(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CC-MAIN-") else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 7 && b[4] == b'-' && rest.chars().filter(char::is_ascii_digit).count() == 6
}

/// The segment of a listing entry: `ID` of `.../segments/ID/...`.
fn segment_of(entry: &str) -> Option<&str> {
    let rest = &entry[entry.find("/segments/")? + "/segments/".len()..];
    rest.split('/').next().filter(|s| !s.is_empty())
}

/// The first `segments` segments of the listing (in its order) and their entries, the first
/// `per_segment` of each when given. An entry without a segment, or that would climb out of
/// the output folder, is an error.
fn slice(
    lines: &[String],
    segments: usize,
    per_segment: Option<usize>,
) -> Result<(Vec<String>, Vec<&str>)> {
    let mut taken: Vec<String> = Vec::new();
    let mut chosen = Vec::new();
    let mut in_segment = 0;
    for line in lines {
        let Some(segment) = segment_of(line) else {
            bail!("{line}: no segments/<id>/ in this entry");
        };
        let safe = Path::new(line)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            bail!("{line}: not a relative path inside the crawl");
        }
        if taken.last().map(String::as_str) != Some(segment) {
            if taken.iter().any(|s| s == segment) {
                bail!("segment {segment} comes twice, apart: the listing is not in segment order");
            }
            if taken.len() == segments {
                break;
            }
            taken.push(segment.into());
            in_segment = 0;
        }
        if per_segment.is_none_or(|n| in_segment < n) {
            chosen.push(line.as_str());
        }
        in_segment += 1;
    }
    if chosen.is_empty() {
        bail!("no entries");
    }
    Ok((taken, chosen))
}

/// Fetches `url` into `dest` unless it is there at its full size; returns the size. The bytes
/// go to `dest.tmp` first (continued from its end if an earlier run left it), then are
/// renamed.
fn download(url: &str, dest: &Path) -> Result<u64> {
    let size = remote::size(Path::new(url))?;
    if std::fs::metadata(dest).is_ok_and(|m| m.len() == size) {
        tracing::debug!("{}: already complete", dest.display());
        return Ok(size);
    }
    let parent = dest.parent().expect("a listing path has a folder");
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut name = dest.file_name().expect("a file name").to_os_string();
    name.push(".tmp");
    let tmp = dest.with_file_name(name);
    let mut have = std::fs::metadata(&tmp).map_or(0, |m| m.len());
    if have > size {
        have = 0;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(have == 0)
        .append(have > 0)
        .open(&tmp)
        .with_context(|| format!("opening {}", tmp.display()))?;
    if have > 0 {
        tracing::info!("{url}: continuing at byte {have} of {size}");
    }
    let mut body = remote::open_at(Path::new(url), have)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = body
            .read(&mut buf)
            .with_context(|| format!("reading {url}"))?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])
            .with_context(|| format!("writing {}", tmp.display()))?;
        have += n as u64;
    }
    if have != size {
        bail!("{url}: {have} bytes read of {size}");
    }
    commit_tmp(file, &tmp, dest)?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crawl_names() {
        assert!(is_crawl_name("CC-MAIN-2024-10"));
        for bad in [
            "CC-MAIN-2024-1",
            "CC-MAIN-2024_10",
            "2024-10",
            "CC-MAIN-abcd-10",
        ] {
            assert!(!is_crawl_name(bad), "{bad}");
        }
    }

    #[test]
    fn slices_take_whole_segments_in_listing_order() {
        let lines: Vec<String> = [
            "crawl-data/C/segments/1.1/warc/a.warc.gz",
            "crawl-data/C/segments/1.1/warc/b.warc.gz",
            "crawl-data/C/segments/1.1/warc/c.warc.gz",
            "crawl-data/C/segments/2.2/warc/d.warc.gz",
            "crawl-data/C/segments/3.3/warc/e.warc.gz",
        ]
        .map(String::from)
        .into();
        let (segments, files) = slice(&lines, 2, None).unwrap();
        assert_eq!(segments, ["1.1", "2.2"]);
        assert_eq!(files.len(), 4);
        let (_, files) = slice(&lines, 2, Some(1)).unwrap();
        assert_eq!(files, [&lines[0], &lines[3]]);
        let (segments, _) = slice(&lines, 9, None).unwrap();
        assert_eq!(segments.len(), 3);
        let bad = ["crawl-data/C/segments/1/../../../etc/x".to_string()];
        assert!(slice(&bad, 1, None).is_err());
        let unsorted: Vec<String> = [&lines[0], &lines[3], &lines[1]].map(|s| s.clone()).into();
        assert!(slice(&unsorted, 3, None).is_err());
    }
}
