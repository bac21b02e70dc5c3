//! Oversized records, empty batches and contradictory options are refused with typed errors,
//! and a refused batch appends nothing.
mod common;

use common::{sim_dir, sim_options};
use tokm_storage::Lsn;
use tokm_storage::testkit::SimStorage;
use tokm_wal::{AppendError, Durability, OpenError, Wal, WalError, WalOptions};

#[test]
fn bad_arguments_are_typed_errors() {
    let sim = SimStorage::new();
    let (wal, _) = Wal::open(
        &sim_dir(),
        WalOptions {
            record_bytes_max: 16,
            ..sim_options(&sim)
        },
    )
    .expect("open");
    let error = wal
        .append(&[0u8; 17], Durability::Sync)
        .expect_err("too large");
    assert!(matches!(
        error,
        AppendError::RecordTooLarge {
            size_bytes: 17,
            limit_bytes: 16
        }
    ));
    assert_eq!(error.code(), "TM-WAL-4131");
    let error = wal
        .append_batch(&[b"ok", &[0u8; 99]], Durability::Sync)
        .expect_err("too large");
    assert_eq!(error.code(), "TM-WAL-4131");
    assert_eq!(
        wal.append_batch(&[], Durability::Sync)
            .expect_err("empty")
            .code(),
        "TM-WAL-4001"
    );
    assert_eq!(wal.last_lsn(), Lsn::ZERO, "nothing was appended");
    assert_eq!(
        wal.append(&[0u8; 16], Durability::Sync)
            .expect("at the limit"),
        Lsn::new(1)
    );

    for options in [
        WalOptions {
            record_bytes_max: 0,
            ..sim_options(&sim)
        },
        WalOptions {
            segment_records_max: 0,
            ..sim_options(&sim)
        },
        WalOptions {
            group_commit_bytes_max: 0,
            ..sim_options(&sim)
        },
        WalOptions {
            sync_interval: std::time::Duration::ZERO,
            ..sim_options(&sim)
        },
        WalOptions {
            sync_bytes_max: 0,
            ..sim_options(&sim)
        },
    ] {
        let error = Wal::open(&sim_dir().join("other"), options).expect_err("invalid options");
        assert!(matches!(error, OpenError::InvalidArgument { .. }));
        assert_eq!(error.code(), "TM-WAL-4001");
        // Through the umbrella type the code is the same.
        assert_eq!(WalError::from(error).code(), "TM-WAL-4001");
    }
}
