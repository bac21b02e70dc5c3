//! tokm-cmap (work in progress).
