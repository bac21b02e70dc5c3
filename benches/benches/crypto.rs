//! Placeholder: replaced by the crypto benchmarks.
fn main() {}
