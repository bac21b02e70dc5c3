//! Placeholder: replaced by the cmap benchmarks.
fn main() {}
