//! Falcon's tokenizer on any text: no panic, the fast path gives the `tokenizers` crate's ids,
//! and decoding them gives the text back.
#![no_main]

use std::sync::LazyLock;

use falconry_tokenize::Tokenizer;
use libfuzzer_sys::fuzz_target;

static FALCON: LazyLock<Tokenizer> = LazyLock::new(|| {
    let path = falconry_refine::test_data_dir().join("tokenizer/falcon/tokenizer.json");
    let tok = Tokenizer::from_file(&path).unwrap();
    assert!(tok.is_fast(), "{:?}", tok.slow_reason());
    tok
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ids = FALCON.encode(&text).unwrap();
    assert_eq!(
        ids,
        FALCON.reference_encode(&text).unwrap(),
        "fast path differs"
    );
    assert_eq!(FALCON.decode(&ids).unwrap(), text, "round trip");
});
