//! The `extraction` stage: main text of an HTML page (RefinedWeb §G.1, "text extraction").
//!
//! RefinedWeb extracts the main content with trafilatura (boilerplate — menus, headers,
//! footers, ads, comments — out; paragraphs, headings, lists and tables kept in reading
//! order), then cleans it: at most two consecutive newlines, URLs removed. We do the same
//! with our own extractor, built for speed: a bounded tokenizer and flat tree
//! ([`html`]), Readability's content scoring ([`content`]) and the clean-up here.
//!
//! Work per page is bounded so that hostile HTML cannot stall a worker: pages over
//! `max_html_bytes` are dropped (`too_large`), nesting deeper than `max_depth` is flattened,
//! pages with more than `max_elements` elements are dropped (`too_complex`); every pass is
//! linear in the page size, and nothing recurses. Pages whose extracted text is empty are
//! dropped (`empty`). Documents without HTML (text inputs) pass untouched.

mod content;
mod html;
mod text;

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{Document, Stage, Verdict};

/// The `extraction` stage's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractionConfig {
    /// Whether the stage runs.
    pub enabled: bool,
    /// Pages with more bytes of HTML are dropped as `too_large` (CommonCrawl truncates
    /// records at 1 MiB; decoding can grow them).
    pub max_html_bytes: usize,
    /// Elements nested deeper than this are flattened into their ancestor at this depth.
    pub max_depth: usize,
    /// Pages with more elements are dropped as `too_complex`.
    pub max_elements: usize,
}

impl Default for ExtractionConfig {
    fn default() -> Self {
        ExtractionConfig {
            enabled: true,
            max_html_bytes: 2 << 20,
            max_depth: 256,
            max_elements: 200_000,
        }
    }
}

impl ExtractionConfig {
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        if self.max_html_bytes == 0 {
            return Err("extraction.max_html_bytes must be at least 1".into());
        }
        if !(8..=100_000).contains(&self.max_depth) {
            return Err(format!("extraction.max_depth must be 8..=100000, got {}", self.max_depth));
        }
        if self.max_elements == 0 {
            return Err("extraction.max_elements must be at least 1".into());
        }
        Ok(())
    }
}

/// Main text and images of one page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extracted {
    /// The main text, paragraphs separated by newlines.
    pub text: String,
    /// `[src, alt]` of images in the main content.
    pub image_urls: Vec<[String; 2]>,
}

/// The extractor, built once and shared across threads.
pub struct Extractor {
    config: ExtractionConfig,
}

impl Extractor {
    /// Builds the extractor.
    pub fn new(config: &ExtractionConfig) -> Self {
        Extractor { config: config.clone() }
    }

    /// Extracts the main text of one HTML page; a page over a work bound gives empty text
    /// (see [`Extractor::try_extract`] for the reason).
    pub fn extract(&self, html: &str) -> Extracted {
        self.try_extract(html).unwrap_or_default()
    }

    /// Extracts the main text of one HTML page, or says which bound it broke
    /// (`too_large`, `too_complex`: the stage's drop reasons).
    pub fn try_extract(&self, html: &str) -> Result<Extracted, &'static str> {
        if html.len() > self.config.max_html_bytes {
            return Err("too_large");
        }
        let dom = html::Dom::parse(html, self.config.max_depth, self.config.max_elements)
            .map_err(|_| "too_complex")?;
        let (raw, image_urls) = content::main_content(&dom);
        Ok(Extracted { text: clean_up(&raw), image_urls })
    }
}

impl Stage for Extractor {
    fn name(&self) -> &'static str {
        "extraction"
    }

    fn apply(&self, doc: &mut Document) -> Verdict {
        let Some(html) = doc.html.take() else { return Verdict::Keep };
        let out = match self.try_extract(&html) {
            Ok(out) => out,
            Err(reason) => return Verdict::Drop(reason),
        };
        if out.text.trim().is_empty() {
            return Verdict::Drop("empty");
        }
        doc.content = out.text;
        doc.image_urls = out.image_urls;
        Verdict::Keep
    }
}

/// RefinedWeb's clean-up of extracted text: URLs removed, lines trimmed, at most two
/// consecutive newlines, no leading or trailing blank lines.
pub fn clean_up(text: &str) -> String {
    static URL: OnceLock<Regex> = OnceLock::new();
    let url = URL.get_or_init(|| {
        // A URL ends before trailing punctuation.
        Regex::new(r"(?i)\b(?:https?://|www\.)[^\s<>\x22]*[^\s<>\x22.,;:!?)\]'’]")
            .expect("static regex")
    });
    let without_urls = url.replace_all(text, "");
    let mut out = String::with_capacity(without_urls.len());
    let mut blank = 0;
    for line in without_urls.lines() {
        let line = line.trim();
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        // Removing a URL can leave double spaces inside the line.
        let mut prev_space = false;
        for c in line.chars() {
            let space = c == ' ';
            if !(space && prev_space) {
                out.push(c);
            }
            prev_space = space;
        }
    }
    out
}

#[cfg(test)]
mod tests;
