//! Main-text extraction (placeholder API; being written).

use serde::{Deserialize, Serialize};

use crate::{Document, Stage, Verdict};

/// The `extraction` stage's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtractionConfig {
    /// Whether the stage runs.
    pub enabled: bool,
}

impl Default for ExtractionConfig {
    fn default() -> Self {
        ExtractionConfig { enabled: true }
    }
}

impl ExtractionConfig {
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
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
    #[allow(dead_code)]
    config: ExtractionConfig,
}

impl Extractor {
    /// Builds the extractor.
    pub fn new(config: &ExtractionConfig) -> Self {
        Extractor { config: config.clone() }
    }

    /// Extracts the main text of one HTML page.
    pub fn extract(&self, html: &str) -> Extracted {
        Extracted { text: html.to_string(), image_urls: Vec::new() }
    }
}

impl Stage for Extractor {
    fn name(&self) -> &'static str {
        "extraction"
    }
    fn apply(&self, doc: &mut Document) -> Verdict {
        let Some(html) = doc.html.take() else { return Verdict::Keep };
        let out = self.extract(&html);
        if out.text.trim().is_empty() {
            return Verdict::Drop("empty");
        }
        doc.content = out.text;
        doc.image_urls = out.image_urls;
        Verdict::Keep
    }
}
