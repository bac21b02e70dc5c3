//! tokm-crypto-adaptive (work in progress).
