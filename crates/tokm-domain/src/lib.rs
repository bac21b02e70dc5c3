//! tokm-domain (work in progress).
