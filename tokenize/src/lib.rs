//! falconry tokenize (being written).
