//! falconry dedup (being written).
