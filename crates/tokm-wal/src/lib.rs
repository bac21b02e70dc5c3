//! tokm-wal (work in progress).
