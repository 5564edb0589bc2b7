//! Tests of the extractor on small pages, real pages from the shared data, and hostile input.

use super::*;
use crate::test_data_dir as data_dir;

fn extract(html: &str) -> Extracted {
    Extractor::new(&ExtractionConfig::default()).extract(html)
}

const ARTICLE: &str = r##"<html><head><title>T</title><script>var x = "<p>no</p>";</script></head>
<body><nav class="menu"><a href="/">Home</a> <a href="/news">News</a></nav>
<div id="main"><article class="post-content"><h1>The headline</h1>
<p>The first paragraph of the story, long enough to count, with commas, clauses, and detail.</p>
<p>A second paragraph follows it; see https://example.com/x for more, or www.example.org.</p>
<ul><li>First item of a list in the story body</li><li>Second item</li></ul>
<img src="/a.jpg" alt="A &amp; B"><figure><img src="b.png" alt=""><figcaption>Caption text</figcaption></figure>
<p>Third paragraph with the closing words of the article body.</p>
</article><div class="share-buttons"><a href="#">Share on Facebook</a></div></div>
<footer>Copyright 2024 Example Corp. All rights reserved, every one of them.</footer></body></html>"##;

#[test]
fn keeps_article_drops_boilerplate() {
    let out = extract(ARTICLE);
    assert!(
        out.text.starts_with("The first paragraph of the story"),
        "{}",
        out.text
    );
    assert!(
        out.text
            .contains("First item of a list in the story body\nSecond item"),
        "{}",
        out.text
    );
    assert!(
        out.text.ends_with("closing words of the article body."),
        "{}",
        out.text
    );
    for boilerplate in [
        "Home",
        "Share on Facebook",
        "Copyright",
        "headline",
        "var x",
    ] {
        assert!(
            !out.text.contains(boilerplate),
            "{boilerplate} in {}",
            out.text
        );
    }
    assert!(!out.text.contains("Caption text"), "{}", out.text);
    let images = vec![
        ["/a.jpg".to_string(), "A & B".to_string()],
        ["b.png".to_string(), String::new()],
    ];
    assert_eq!(out.image_urls, images);
}

#[test]
fn urls_removed_and_newlines_collapsed() {
    let out = extract(ARTICLE);
    assert!(out.text.contains("; see for more, or ."), "{}", out.text);
    assert_eq!(
        clean_up("a http://x.y/z?q=1 b\n\n\n\n c www.q.com\n \nd"),
        "a b\n\nc\n\nd"
    );
    assert_eq!(clean_up("\n\n  x  \n"), "x");
    assert_eq!(clean_up("HTTPS://A.B/c d"), "d");
    // U+09DF is not NFC: it becomes U+09AF U+09BC.
    assert_eq!(clean_up("\u{9df} e\u{301}"), "\u{9af}\u{9bc} \u{e9}");
}

#[test]
fn stage_fills_content_and_counts_drops() {
    let ex = Extractor::new(&ExtractionConfig {
        max_html_bytes: 100_000,
        ..Default::default()
    });
    let mut doc = Document {
        html: Some(ARTICLE.to_string()),
        ..Default::default()
    };
    assert_eq!(ex.apply(&mut doc), Verdict::Keep);
    assert!(doc.content.contains("second paragraph follows"));
    assert_eq!(doc.image_urls.len(), 2);
    assert!(doc.html.is_none());

    let mut text = Document {
        content: "plain text".into(),
        ..Default::default()
    };
    assert_eq!(ex.apply(&mut text), Verdict::Keep);
    assert_eq!(text.content, "plain text");

    let mut empty = Document {
        html: Some("<html><nav>menu</nav></html>".into()),
        ..Default::default()
    };
    assert_eq!(ex.apply(&mut empty), Verdict::Drop("empty"));
    let mut big = Document {
        html: Some("x".repeat(100_001)),
        ..Default::default()
    };
    assert_eq!(ex.apply(&mut big), Verdict::Drop("too_large"));
    let small = Extractor::new(&ExtractionConfig {
        max_elements: 10,
        ..Default::default()
    });
    let mut many = Document {
        html: Some("<b>x</b>".repeat(20)),
        ..Default::default()
    };
    assert_eq!(small.apply(&mut many), Verdict::Drop("too_complex"));
}

#[test]
fn config_validates() {
    assert!(ExtractionConfig::default().validate().is_ok());
    assert!(ExtractionConfig {
        max_depth: 2,
        ..Default::default()
    }
    .validate()
    .is_err());
    assert!(ExtractionConfig {
        max_html_bytes: 0,
        ..Default::default()
    }
    .validate()
    .is_err());
    let parsed: ExtractionConfig = toml::from_str("max_depth = 64").unwrap();
    assert_eq!(parsed.max_depth, 64);
    assert!(toml::from_str::<ExtractionConfig>("max_dpth = 64").is_err());
}

#[test]
fn hostile_inputs_are_bounded() {
    let para = "<p>Some real words in a paragraph, long enough to be scored as text.</p>";
    let nested = "<div>".repeat(100_000) + para + &"</div>".repeat(100_000);
    let out = extract(&nested);
    assert!(out.text.contains("Some real words"), "{}", out.text);
    let unclosed = "<div><span><p>".repeat(30_000) + para;
    assert!(extract(&unclosed).text.contains("Some real words"));
    let one_tag = format!("<div class=\"{}\">{para}</div>", "a".repeat(1_900_000));
    assert!(extract(&one_tag).text.starts_with("Some real words"));
    let ten_mb = "<p>".to_string() + &"a".repeat(10 << 20);
    assert_eq!(
        Extractor::new(&ExtractionConfig::default()).try_extract(&ten_mb),
        Err("too_large")
    );
    let garbage: String = (0..200_000u32)
        .map(|i| char::from_u32((i * 7919) % 0xd7ff).unwrap_or('<'))
        .collect();
    let _ = extract(&garbage);
    for s in [
        "<",
        "<a",
        "</",
        "<!--",
        "<!",
        "&#",
        "&#x",
        "<p>&",
        "<script>",
        "<style",
        "<img src=\"",
        "<<<>>>",
    ] {
        let _ = extract(s);
    }
}

/// Issue 12: a tree 1,000,000 elements deep is too large for the default bound, and with the
/// bounds raised it is flattened at `max_depth` (nothing recurses, so no stack overflow).
#[test]
fn tree_of_1_000_000_levels_is_flattened() {
    let para = "<p>Some real words in a paragraph, long enough to be scored as text.</p>";
    let deep = "<div>".repeat(1_000_000) + para + &"</div>".repeat(1_000_000);
    let default = Extractor::new(&ExtractionConfig::default());
    assert_eq!(default.try_extract(&deep), Err("too_large"));
    let raised = Extractor::new(&ExtractionConfig {
        max_html_bytes: deep.len(),
        max_elements: 2_000_000,
        ..Default::default()
    });
    let out = raised.try_extract(&deep).expect("within the raised bounds");
    assert_eq!(
        out.text,
        "Some real words in a paragraph, long enough to be scored as text."
    );
}

fn read_gz(path: &std::path::Path) -> String {
    use std::io::Read;
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn real_news_article_from_the_benchmark() {
    // CNBC, a React page: the article body sits among key points, video and related links.
    let html = read_gz(&data_dir().join(
        "extraction-bench/html/374ac9a59a85196cdacc1679fb8993521a7b7d9d6533720f102300be1c7face4.html.gz",
    ));
    let out = extract(&html);
    assert!(
        out.text
            .contains("Dubai's flagship carrier Emirates Airline finalized a deal"),
        "{}",
        out.text
    );
    assert!(
        out.text
            .ends_with("now increasingly preferred by airliners."),
        "{}",
        out.text
    );
    // The headline (h1) and the page chrome are not the article body.
    assert!(!out
        .text
        .contains("Emirates inks order for 30 Boeing 787 jets, talks expansion plans"));
    assert!(!out.text.contains("Privacy Policy"), "{}", out.text);
    assert!(!out.text.contains("\n\n\n") && !out.text.contains("https://"));
}

#[test]
fn real_pages_keep_with_and_drop_without_snippets() {
    // trafilatura's own evaluation pages: snippets that must and must not be extracted.
    let dir = data_dir().join("html/trafilatura-eval");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("evaldata_subset.json")).unwrap())
            .unwrap();
    let pages = [
        "pythonspeed.com.docker.html",
        "autonews.ch-Tesla.html",
        "thw.de-frauen.html",
    ];
    for page in pages {
        let entry = meta
            .as_object()
            .unwrap()
            .values()
            .find(|v| v["file"] == page)
            .unwrap();
        let out = extract(&read_gz(&dir.join("pages").join(format!("{page}.gz"))));
        for s in entry["with"].as_array().unwrap() {
            assert!(
                out.text.contains(s.as_str().unwrap()),
                "{page}: missing {s}"
            );
        }
        for s in entry["without"].as_array().unwrap() {
            assert!(
                !out.text.contains(s.as_str().unwrap()),
                "{page}: boilerplate {s}"
            );
        }
    }
}

#[test]
fn real_pages_through_the_stage() {
    // Real pages through the stage: text filled, html consumed, no drop for a real article.
    let dir = data_dir().join("extraction-bench/html");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let ex = Extractor::new(&ExtractionConfig::default());
    for path in paths.iter().take(12) {
        let mut doc = Document {
            html: Some(read_gz(path)),
            ..Default::default()
        };
        assert_eq!(ex.apply(&mut doc), Verdict::Keep, "{}", path.display());
        assert!(
            doc.html.is_none() && doc.content.len() > 200,
            "{}",
            path.display()
        );
        assert!(!doc.content.contains("\n\n\n") && !doc.content.contains("http://"));
    }
}
