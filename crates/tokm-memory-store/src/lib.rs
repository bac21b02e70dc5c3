//! tokm-memory-store (work in progress).
