//! `configs/refinedweb.toml` states the filters' defaults, key for key.

use std::path::Path;

use falconry_refine::RefineConfig;

#[test]
fn refinedweb_toml_matches_filter_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/refinedweb.toml");
    let loaded = RefineConfig::load(&path).expect("configs/refinedweb.toml loads");
    let default = RefineConfig::default();
    assert_eq!(loaded.repetition, default.repetition);
    assert_eq!(loaded.quality, default.quality);
    assert_eq!(loaded.line_correction, default.line_correction);
}

#[test]
fn unknown_and_bad_keys_are_errors() {
    let bad = [
        "[repetition]\nduplicate_line_fractoin = 0.3\n",
        "[quality]\nmin_words = 500\nmax_words = 100\n",
        "[line_correction]\nmax_removed_word_fraction = 1.5\n",
    ];
    for text in bad {
        let err = RefineConfig::parse(text, Path::new("test.toml")).expect_err(text);
        assert!(err.to_string().contains("test.toml"), "{err}");
    }
}

#[test]
fn pipeline_runs_the_filters_after_extraction_in_paper_order() {
    let pipeline = falconry_refine::Pipeline::from_config(&RefineConfig::default())
        .expect("default pipeline builds");
    let names = pipeline.stage_names();
    let at = |name| {
        names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("{name} missing from {names:?}"))
    };
    assert!(at("extraction") < at("repetition"), "{names:?}");
    assert!(
        at("repetition") < at("quality") && at("quality") < at("line_correction"),
        "{names:?}"
    );
}
