//! `tokm-crypto-adaptive` record sealing and opening beside a plain `memcpy` baseline.
//!
//! Each group is one operation at one record size; inside it AES-256-GCM, ChaCha20-Poly1305
//! and `memcpy` (copying the plaintext into the output buffer, the floor any encryption pays)
//! run on the same input. The ciphers go through `FileCipher::seal_into` / `open_into`, the
//! WAL's hot path, into a reused output buffer, so no allocation is timed. Throughput is
//! plaintext bytes per second.
//!
//! The run prints which algorithm `Algorithm::detect()` chose on this machine.
//! `TOKM_BENCH_QUICK=1` shortens warm-up and measurement for a smoke run.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use tokm_crypto_adaptive::{Algorithm, FileCipher, Key, KeyId, Keyring, TAG_LEN};

use crate::common::RunTimes;

/// Record sizes: a typical session record, a page, a large snapshot chunk.
const RECORD_SIZES: [(&str, usize); 3] = [("256B", 256), ("4KiB", 4 << 10), ("1MiB", 1 << 20)];

const ALGORITHMS: [(&str, Algorithm); 2] = [
    ("aes-256-gcm", Algorithm::Aes256Gcm),
    ("chacha20-poly1305", Algorithm::ChaCha20Poly1305),
];

/// Associated data shaped like the WAL's: segment id and sequence number.
const AAD: [u8; 16] = [7; 16];

fn file_cipher(algorithm: Algorithm) -> FileCipher {
    let key = Key::from_bytes(&[0x5a; 32]).expect("32 bytes make a key");
    Keyring::new(KeyId::new(1), key, algorithm)
        .new_file_cipher()
        .expect("random source")
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn memcpy_into(input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(input);
}

fn bench_seal(c: &mut Criterion) {
    for (size_name, size) in RECORD_SIZES {
        let input = plaintext(size);
        let mut out = Vec::with_capacity(size + TAG_LEN);
        let mut group = c.benchmark_group(format!("seal/{size_name}"));
        group.throughput(Throughput::Bytes(size as u64));
        for (name, algorithm) in ALGORITHMS {
            let cipher = file_cipher(algorithm);
            // A fresh counter per record, as the WAL does; the counter never wraps in a run.
            let mut counter = 0_u64;
            group.bench_function(name, |b| {
                b.iter(|| {
                    out.clear();
                    counter += 1;
                    cipher
                        .seal_into(counter, &AAD, black_box(&input), &mut out)
                        .expect("seal");
                    black_box(&out);
                });
            });
        }
        group.bench_function("memcpy", |b| {
            b.iter(|| {
                memcpy_into(black_box(&input), &mut out);
                black_box(&out);
            });
        });
        group.finish();
    }
}

fn bench_open(c: &mut Criterion) {
    for (size_name, size) in RECORD_SIZES {
        let input = plaintext(size);
        let mut out = Vec::with_capacity(size + TAG_LEN);
        let mut group = c.benchmark_group(format!("open/{size_name}"));
        group.throughput(Throughput::Bytes(size as u64));
        for (name, algorithm) in ALGORITHMS {
            let cipher = file_cipher(algorithm);
            let mut sealed = Vec::with_capacity(size + TAG_LEN);
            cipher
                .seal_into(0, &AAD, &input, &mut sealed)
                .expect("seal");
            group.bench_function(name, |b| {
                b.iter(|| {
                    out.clear();
                    cipher
                        .open_into(0, &AAD, black_box(&sealed), &mut out)
                        .expect("open");
                    black_box(&out);
                });
            });
        }
        group.bench_function("memcpy", |b| {
            b.iter(|| {
                memcpy_into(black_box(&input), &mut out);
                black_box(&out);
            });
        });
        group.finish();
    }
}

fn config() -> Criterion {
    // 18 benchmarks. Bootstrap analysis, not measurement, dominates a run on a busy 2-core
    // machine, so resamples are cut from criterion's 100,000 to 20,000; with these settings
    // the whole run stays near a minute and a half.
    common::criterion(
        30,
        RunTimes {
            warm_up: Duration::from_millis(300),
            measurement: Duration::from_secs(1),
        },
        RunTimes {
            warm_up: Duration::from_millis(100),
            measurement: Duration::from_millis(300),
        },
    )
    .nresamples(20_000)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_seal, bench_open
}

fn main() {
    println!(
        "tokm-crypto-adaptive: Algorithm::detect() chose {} on this machine",
        Algorithm::detect()
    );
    benches();
    Criterion::default().configure_from_args().final_summary();
}
