//! The token shard reader on any folder: the input is `meta.json`, a NUL, then the bytes of
//! `shard-0.bin`. No panic, and an opened folder reads exactly the tokens `meta.json` lists.
#![no_main]

use falconry_shards::{Split, TokenShards};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let at = data.iter().position(|&c| c == 0).unwrap_or(data.len());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("meta.json"), &data[..at]).unwrap();
    std::fs::write(
        dir.path().join("shard-0.bin"),
        data.get(at + 1..).unwrap_or_default(),
    )
    .unwrap();
    let Ok(shards) = TokenShards::open(dir.path()) else {
        return;
    };
    for info in &shards.meta().shards {
        let path = dir.path().join(&info.file);
        assert!(
            path.parent() == Some(dir.path()),
            "{:?} is outside the folder",
            info.file
        );
        let Ok(tokens) = shards.load(info) else {
            continue;
        };
        assert_eq!(tokens.len() as u64, info.tokens);
        assert_eq!(tokens.to_vec().len(), tokens.len());
    }
    let _ = (
        shards.tokens(Split::Train),
        shards.tokens(Split::Validation),
    );
});
