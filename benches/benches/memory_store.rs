//! Placeholder: replaced by the memory_store benchmarks.
fn main() {}
