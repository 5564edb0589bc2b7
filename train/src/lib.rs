//! falconry train (being written).
