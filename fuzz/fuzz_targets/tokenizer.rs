//! Falcon's tokenizer on any text: no panic, the fast path gives the `tokenizers` crate's ids,
//! and decoding them gives the text back where the vocabulary can: Falcon's has no token for 28
//! bytes (14 controls such as 0x14, and 0xc0, 0xc1, 0xf2, 0xf5..=0xff), which both encoders drop.
#![no_main]

use std::sync::LazyLock;

use falconry_tokenize::{byte_alphabet, Tokenizer};
use libfuzzer_sys::fuzz_target;

static FALCON: LazyLock<Tokenizer> = LazyLock::new(|| {
    let path = falconry_refine::test_data_dir().join("tokenizer/falcon/tokenizer.json");
    let tok = Tokenizer::from_file(&path).unwrap();
    assert!(tok.is_fast(), "{:?}", tok.slow_reason());
    tok
});

/// Whether each byte has a token of its own.
static HELD: LazyLock<Vec<bool>> = LazyLock::new(|| {
    let alphabet = byte_alphabet();
    (0..256)
        .map(|b| FALCON.token_to_id(&alphabet[b].to_string()).is_some())
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ids = FALCON.encode(&text).unwrap();
    assert_eq!(
        ids,
        FALCON.reference_encode(&text).unwrap(),
        "fast path differs"
    );
    if text.bytes().all(|b| HELD[b as usize]) {
        assert_eq!(FALCON.decode(&ids).unwrap(), text, "round trip");
    }
});
