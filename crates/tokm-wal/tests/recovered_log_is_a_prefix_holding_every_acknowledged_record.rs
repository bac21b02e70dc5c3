//! Model test: random appends (sync and batch), syncs and simulated crashes; after every
//! recovery the log is a prefix of what was appended and holds every acknowledged record.
mod common;

use common::{replay_all, sim_dir, sim_options};
use proptest::prelude::*;
use tokm_storage::Lsn;
use tokm_storage::testkit::{CrashCut, SimStorage};
use tokm_wal::{Durability, Wal, WalOptions};

#[derive(Clone, Debug)]
enum Op {
    Append {
        len: usize,
        durability: Durability,
    },
    AppendBatch {
        count: usize,
        durability: Durability,
    },
    Sync,
    Crash(CrashCut),
}

fn op() -> impl Strategy<Value = Op> {
    let durability = prop_oneof![Just(Durability::Sync), Just(Durability::Batch)];
    let cut = prop_oneof![
        Just(CrashCut::KeepUnsynced),
        Just(CrashCut::DropUnsynced),
        any::<u64>().prop_map(|seed| CrashCut::Torn { seed }),
    ];
    prop_oneof![
        6 => (0usize..200, durability.clone()).prop_map(|(len, durability)| Op::Append { len, durability }),
        2 => (1usize..5, durability).prop_map(|(count, durability)| Op::AppendBatch { count, durability }),
        1 => Just(Op::Sync),
        1 => cut.prop_map(Op::Crash),
    ]
}

/// Payload `serial` of length `len`: distinct per append, so a wrong or reordered record shows.
fn payload(serial: u64, len: usize) -> Vec<u8> {
    let mut bytes = serial.to_le_bytes().to_vec();
    bytes.extend((0..len).map(|index| (serial as usize + index) as u8));
    bytes
}

/// The model: every record the log may hold, in order, and how many of them are acknowledged
/// as durable (always a prefix, since durability of LSN n implies all before it).
#[derive(Debug, Default)]
struct Model {
    records: Vec<(Lsn, Vec<u8>)>,
    durable_count: usize,
}

fn check_recovery(model: &mut Model, recovered: Vec<(Lsn, Vec<u8>)>) -> Result<(), TestCaseError> {
    prop_assert!(
        recovered.len() <= model.records.len(),
        "recovered more than appended"
    );
    prop_assert_eq!(
        &recovered[..],
        &model.records[..recovered.len()],
        "not a prefix"
    );
    prop_assert!(
        recovered.len() >= model.durable_count,
        "lost acknowledged records: {} recovered, {} acknowledged",
        recovered.len(),
        model.durable_count
    );
    model.durable_count = recovered.len();
    model.records = recovered;
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let sim = SimStorage::new();
    let dir = sim_dir();
    let options = WalOptions {
        segment_records_max: 5,
        group_commit_records_max: 3,
        ..sim_options(&sim)
    };
    let (mut wal, _) = Wal::open(&dir, options.clone()).expect("open");
    let mut model = Model::default();
    let mut serial = 0u64;
    for op in ops {
        match op {
            Op::Append { len, durability } => {
                serial += 1;
                let bytes = payload(serial, len);
                let lsn = wal.append(&bytes, durability).expect("append");
                model.records.push((lsn, bytes));
                if durability == Durability::Sync {
                    model.durable_count = model.records.len();
                }
            }
            Op::AppendBatch { count, durability } => {
                let payloads: Vec<Vec<u8>> = (0..count)
                    .map(|index| {
                        serial += 1;
                        payload(serial, index * 10)
                    })
                    .collect();
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                let range = wal.append_batch(&refs, durability).expect("append batch");
                prop_assert_eq!(range.last.get() - range.first.get() + 1, count as u64);
                for (offset, bytes) in payloads.into_iter().enumerate() {
                    model
                        .records
                        .push((Lsn::new(range.first.get() + offset as u64), bytes));
                }
                if durability == Durability::Sync {
                    model.durable_count = model.records.len();
                }
            }
            Op::Sync => {
                wal.sync().expect("sync");
                model.durable_count = model.records.len();
            }
            Op::Crash(cut) => {
                sim.crash(cut);
                // The old writer's handles are dead; dropping it cannot make anything durable.
                drop(wal);
                let (reopened, report) = Wal::open(&dir, options.clone()).expect("reopen");
                prop_assert!(
                    report.damaged.is_empty(),
                    "a crash is not damage: {:?}",
                    report
                );
                check_recovery(&mut model, replay_all(&reopened).expect("replay"))?;
                wal = reopened;
            }
        }
    }
    wal.close().expect("close");
    let (wal, _) = Wal::open(&dir, options).expect("final open");
    check_recovery(&mut model, replay_all(&wal).expect("replay"))?;
    prop_assert_eq!(model.records.len(), model.durable_count);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn recovered_log_is_a_prefix_holding_every_acknowledged_record(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        run(ops)?;
    }
}
