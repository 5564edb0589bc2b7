//! Builds `examples/sample.warc.gz`, the README's default input, from `examples/pages/`.
//!
//! The WARC is shaped like a CommonCrawl file: a warcinfo record naming the dump, then for
//! every page a request and a response, each record its own gzip member. A robots.txt, an
//! image and a 404 are added so the `read` stage has something to skip, and one page is
//! served as windows-1252 so charset decoding is exercised. Same pages, same bytes.
//!
//! Run: `cargo run --example make_sample`

use std::path::Path;

use falconry_refine::warc::writer::WarcWriter;

/// 2026-11-20T00:00:00Z.
const START: i64 = 1_763_596_800;
const DUMP: &str = "CC-MAIN-2026-48";

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut pages: Vec<_> = std::fs::read_dir(root.join("pages"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .collect();
    pages.sort();

    let out = root.join("sample.warc.gz");
    let tmp = root.join("sample.warc.gz.tmp");
    let mut w = WarcWriter::gzip(std::fs::File::create(&tmp)?);
    w.warcinfo(
        "CC-MAIN-20261120000000-20261120010000-00000.warc.gz",
        START,
        &[
            ("isPartOf", DUMP),
            (
                "description",
                "falconry sample crawl of pages written for the project",
            ),
        ],
    )?;
    let mut t = START;
    let mut fetch =
        |w: &mut WarcWriter<std::fs::File>, url: &str, status: u16, ctype: &str, body: &[u8]| {
            t += 7;
            w.request(url, t)?;
            w.response(
                url,
                t,
                status,
                &[
                    ("Content-Type", ctype),
                    ("Content-Length", &body.len().to_string()),
                ],
                body,
            )
        };
    fetch(
        &mut w,
        "https://gazette.example.com/robots.txt",
        200,
        "text/plain",
        b"User-agent: *\nDisallow: /admin/\n",
    )?;
    for page in &pages {
        let name = page.file_stem().and_then(|s| s.to_str()).unwrap_or("page");
        let html = std::fs::read_to_string(page)?;
        let url = format!("https://{name}.example.com/posts/{name}");
        if html.contains("charset=windows-1252") {
            let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&html);
            fetch(&mut w, &url, 200, "text/html", &bytes)?;
        } else {
            fetch(
                &mut w,
                &url,
                200,
                "text/html; charset=utf-8",
                html.as_bytes(),
            )?;
        }
    }
    fetch(
        &mut w,
        "https://sourdough.example.com/images/starter-jar.jpg",
        200,
        "image/jpeg",
        &[0xff, 0xd8, 0xff, 0xe0, 0, 16],
    )?;
    fetch(
        &mut w,
        "https://gazette.example.com/missing",
        404,
        "text/html",
        b"<html><body><h1>Not found</h1></body></html>",
    )?;
    w.finish()?.sync_all()?;
    std::fs::rename(&tmp, &out)?;
    println!("wrote {} ({} pages)", out.display(), pages.len());
    Ok(())
}
