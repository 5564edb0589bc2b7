//! The extractor on any page bytes, decoded as the reader decodes a payload: no panic, no
//! hang, and the text keeps the clean-up's promises (NFC, lines trimmed, single spaces, at
//! most one blank line in a row, none at either end).
#![no_main]

use falconry_refine::warc::decode_html;
use falconry_refine::{ExtractionConfig, Extractor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let html = decode_html(data, None, "http://example.com/");
    let Ok(out) = Extractor::new(&ExtractionConfig::default()).try_extract(&html) else {
        return;
    };
    let text = &out.text;
    assert!(!text.starts_with('\n') && !text.ends_with('\n'), "{text:?}");
    assert!(!text.contains("\n\n\n") && !text.contains("  "), "{text:?}");
    for line in text.split('\n') {
        assert_eq!(line, line.trim(), "{text:?}");
    }
    assert!(unicode_normalization::is_nfc(text), "not NFC: {text:?}");
});
