//! Placeholder: replaced by the wal benchmarks.
fn main() {}
