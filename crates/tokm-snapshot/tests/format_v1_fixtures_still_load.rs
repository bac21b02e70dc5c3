//! Snapshots written by format version 1 (committed under `tests/fixtures/v1/`) load with
//! every session and header fact intact. A change that breaks this breaks existing files:
//! add a new version instead.
//!
//! The fixtures hold `common::sessions(1_100, 9)` (two blocks) at LSN 42, taken at
//! `common::START` by node `fixture-node`; `sealed/` is ChaCha20-Poly1305 under key id 1 with
//! every key byte 0x42. They were written before the footer carried `index_checksum`, so they
//! also prove readers skip that check when it is absent.

mod common;

use std::path::Path;
use std::sync::Arc;

use tokm_crypto_adaptive::{Algorithm, KeyId};
use tokm_snapshot::{Encryption, SnapshotReader};

use common::{START, craft, keyring, reopen, sessions, sim_dir, sim_with};
use tokm_storage::Lsn;

const NAME: &str = "00000000000000000042-00000001700000000000.snap";

fn fixture(kind: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v1")
        .join(kind)
        .join(NAME);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn format_v1_fixtures_still_load() {
    let cases = [
        ("plain", None, Encryption::None),
        (
            "sealed",
            Some(keyring(1, 0x42, Algorithm::Aes256Gcm)),
            Encryption::Sealed {
                algorithm: Algorithm::ChaCha20Poly1305,
                key_id: KeyId::new(1),
            },
        ),
    ];
    for (kind, ring, encryption) in cases {
        let bytes = fixture(kind);
        assert!(
            craft::parse(&bytes).footer.index_checksum.is_empty(),
            "{kind}: the fixture predates index_checksum"
        );
        // A simulated copy, so loading can never rename the committed file.
        let sim = sim_with(&[(NAME, &bytes)]);
        let reader = SnapshotReader::new(&sim_dir(), Arc::new(sim.clone()), ring.clone());
        let verified = reader.verify(NAME).expect(kind);
        assert_eq!(reader.load(NAME).expect(kind).meta, verified);
        let outcome = reopen(&sim, ring).load_newest().expect(kind);
        assert!(outcome.report.fallbacks.is_empty(), "{kind}");
        let snapshot = outcome.snapshot.expect("fixture loads");
        assert_eq!(snapshot.meta.covered_lsn, Lsn::new(42));
        assert_eq!(snapshot.meta.created_at, START);
        assert_eq!(snapshot.meta.node_id, "fixture-node");
        assert_eq!(snapshot.meta.session_count, 1_100);
        assert_eq!(snapshot.meta.size_bytes, bytes.len() as u64);
        assert_eq!(snapshot.meta.encryption, encryption, "{kind}");
        assert_eq!(
            common::loaded_sessions(&snapshot),
            common::by_id(&sessions(1_100, 9)),
            "{kind}"
        );
    }
}
