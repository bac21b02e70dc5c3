//! Files whose header, index and blocks are random or hostile but carry valid checksums (all
//! recomputed: header, blocks, index, footer, trailer, whole file) never make `load` or
//! `verify` panic: each returns a snapshot or one of the crate's typed errors, and a loaded
//! snapshot holds exactly the sessions its header counts. The reader never changes the file.

mod common;

use std::sync::Arc;

use proptest::prelude::*;
use tokm_crypto_adaptive::{Algorithm, FileSalt, KeyId};
use tokm_proto::pb;
use tokm_snapshot::{LoadError, SnapshotError, SnapshotReader};

use common::craft;
use common::{dir_contents, keyring, sessions, sim_dir, sim_with};

/// What one block holds.
#[derive(Clone, Debug)]
enum Body {
    /// Arbitrary bytes.
    Random(Vec<u8>),
    /// This many 2-byte empty `Session` entries.
    EmptySessions(usize),
    /// This many valid sessions.
    Valid(usize),
    /// Field-1 entries of arbitrary bytes, each a would-be session.
    Entries(Vec<Vec<u8>>),
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Random(bytes) => bytes.clone(),
            Body::EmptySessions(count) => [0x0A, 0x00].repeat(*count),
            Body::Valid(count) => craft::session_block(&sessions(*count, 5)),
            Body::Entries(entries) => {
                let mut block = Vec::new();
                for entry in entries {
                    prost::encoding::bytes::encode(1, entry, &mut block);
                }
                block
            }
        }
    }

    /// How many sessions an honest handle would declare.
    fn entries_count(&self) -> u32 {
        match self {
            Body::Random(_) => 0,
            Body::EmptySessions(count) | Body::Valid(count) => *count as u32,
            Body::Entries(entries) => entries.len() as u32,
        }
    }
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512).prop_map(Body::Random),
        1 => (0_usize..2_000).prop_map(Body::EmptySessions),
        3 => (1_usize..40).prop_map(Body::Valid),
        1 => proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)
            .prop_map(Body::Entries),
    ]
}

/// How the index describes the blocks.
#[derive(Clone, Debug)]
enum Index {
    /// True offsets, lengths and checksums; each block's count honest or drawn.
    Honest(Vec<Option<u32>>),
    /// Handles of drawn offsets, lengths, counts and checksums.
    Hostile(Vec<(u64, u64, u32, Vec<u8>)>),
    /// Arbitrary bytes.
    Raw(Vec<u8>),
}

fn count() -> impl Strategy<Value = u32> {
    prop_oneof![0_u32..1_100, any::<u32>()]
}

fn index() -> impl Strategy<Value = Index> {
    let length = prop_oneof![0_u64..4_096, any::<u64>()];
    let checksum = prop_oneof![
        proptest::collection::vec(any::<u8>(), 16),
        proptest::collection::vec(any::<u8>(), 0..40)
    ];
    let drawn_count = prop_oneof![6 => Just(None), 1 => count().prop_map(Some)];
    prop_oneof![
        6 => proptest::collection::vec(drawn_count, 0..6).prop_map(Index::Honest),
        2 => proptest::collection::vec((any::<u64>(), length, count(), checksum), 0..6)
            .prop_map(Index::Hostile),
        1 => proptest::collection::vec(any::<u8>(), 0..256).prop_map(Index::Raw),
    ]
}

/// How a header says its blocks are stored.
#[derive(Clone, Debug)]
enum Cipher {
    /// No cipher, no key id, no salt.
    Plain,
    /// AES-256-GCM (1) or ChaCha20-Poly1305 (2) under `key_id` with `salt`; when `seal` is
    /// set the blocks are really sealed under the test keyring's key (id 1), so tags pass and
    /// the plaintext's own hostility is what the reader meets.
    Sealed {
        cipher: i32,
        key_id: u32,
        salt: [u8; 32],
        seal: bool,
    },
    /// Any cipher value, key id and salt, consistent or not.
    Drawn {
        cipher: i32,
        key_id: u32,
        salt: Vec<u8>,
    },
}

fn cipher() -> impl Strategy<Value = Cipher> {
    let sealed = (
        prop_oneof![Just(1), Just(2)],
        prop_oneof![4 => Just(1_u32), 1 => any::<u32>()],
        any::<[u8; 32]>(),
        prop_oneof![3 => Just(true), 1 => Just(false)],
    )
        .prop_map(|(cipher, key_id, salt, seal)| Cipher::Sealed {
            cipher,
            key_id,
            salt,
            seal,
        });
    let drawn = (
        any::<i32>(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(cipher, key_id, salt)| Cipher::Drawn {
            cipher,
            key_id,
            salt,
        });
    prop_oneof![5 => Just(Cipher::Plain), 4 => sealed, 1 => drawn]
}

/// A header: mostly consistent, sometimes with a drawn session count or compression.
#[derive(Clone, Debug)]
struct Header {
    /// `None`: the sum of what the blocks hold.
    session_count: Option<u64>,
    cipher: Cipher,
    compression: i32,
    snapshot_id: u64,
}

fn header() -> impl Strategy<Value = Header> {
    (
        prop_oneof![
            4 => Just(None),
            1 => prop_oneof![0_u64..5_000, any::<u64>()].prop_map(Some)
        ],
        cipher(),
        prop_oneof![9 => Just(0), 1 => any::<i32>()],
        any::<u64>(),
    )
        .prop_map(|(session_count, cipher, compression, snapshot_id)| Header {
            session_count,
            cipher,
            compression,
            snapshot_id,
        })
}

/// Block `block_index` of snapshot `snapshot_id` sealed as the writer seals it, under the test
/// keyring's key (id 1, every byte 0x42) and `salt`.
fn seal(cipher: i32, salt: [u8; 32], snapshot_id: u64, block_index: u64, plain: &[u8]) -> Vec<u8> {
    let algorithm = if cipher == 1 {
        Algorithm::Aes256Gcm
    } else {
        Algorithm::ChaCha20Poly1305
    };
    let file_cipher = keyring(1, 0x42, algorithm)
        .file_cipher(KeyId::new(1), algorithm, &FileSalt::from_bytes(salt))
        .expect("key 1 is in the keyring");
    let mut aad = b"TOKMSNPB".to_vec();
    aad.extend_from_slice(&snapshot_id.to_le_bytes());
    aad.extend_from_slice(&block_index.to_le_bytes());
    let mut sealed = Vec::new();
    file_cipher
        .seal_into(block_index, &aad, plain, &mut sealed)
        .expect("small blocks seal");
    sealed
}

/// Footer changes on top of the honest footer.
#[derive(Clone, Debug)]
struct FooterEdit {
    without_index_checksum: bool,
    index_offset: Option<u64>,
    index_length: Option<u64>,
    session_count: Option<u64>,
}

fn footer_edit() -> impl Strategy<Value = FooterEdit> {
    (
        any::<bool>(),
        prop_oneof![15 => Just(None), 1 => any::<u64>().prop_map(Some)],
        prop_oneof![15 => Just(None), 1 => any::<u64>().prop_map(Some)],
        prop_oneof![15 => Just(None), 1 => any::<u64>().prop_map(Some)],
    )
        .prop_map(
            |(without_index_checksum, index_offset, index_length, session_count)| FooterEdit {
                without_index_checksum,
                index_offset,
                index_length,
                session_count,
            },
        )
}

/// Assembles the file; returns its name and bytes.
fn build(header: &Header, bodies: &[Body], index: &Index, edit: &FooterEdit) -> (String, Vec<u8>) {
    let mut blocks: Vec<Vec<u8>> = bodies.iter().map(Body::bytes).collect();
    let honest_counts: Vec<u32> = bodies.iter().map(Body::entries_count).collect();
    let honest_total = honest_counts.iter().map(|c| u64::from(*c)).sum();
    let session_count = header.session_count.unwrap_or(honest_total);
    let (cipher, key_id, salt) = match &header.cipher {
        Cipher::Plain => (0, 0, Vec::new()),
        Cipher::Sealed {
            cipher,
            key_id,
            salt,
            seal: sealed,
        } => {
            if *sealed {
                for (block_index, block) in blocks.iter_mut().enumerate() {
                    *block = seal(
                        *cipher,
                        *salt,
                        header.snapshot_id,
                        block_index as u64,
                        block,
                    );
                }
            }
            (*cipher, *key_id, salt.to_vec())
        }
        Cipher::Drawn {
            cipher,
            key_id,
            salt,
        } => (*cipher, *key_id, salt.clone()),
    };
    let message = pb::SnapshotHeader {
        snapshot_id: header.snapshot_id,
        cipher,
        key_id,
        salt,
        compression: header.compression,
        ..craft::plain_header(session_count)
    };
    let head = craft::head(&message);
    let index_bytes = match index {
        Index::Honest(counts) => {
            let counts: Vec<u32> = honest_counts
                .iter()
                .zip(counts.iter().chain(std::iter::repeat(&None)))
                .map(|(honest, drawn)| drawn.unwrap_or(*honest))
                .collect();
            craft::index(craft::handles(head.len(), &blocks, &counts))
        }
        Index::Hostile(handles) => craft::index(
            handles
                .iter()
                .map(
                    |(offset, length, session_count, checksum)| pb::BlockHandle {
                        offset: *offset,
                        length: *length,
                        session_count: *session_count,
                        checksum: checksum.clone(),
                    },
                )
                .collect(),
        ),
        Index::Raw(bytes) => bytes.clone(),
    };
    let bytes = craft::assemble(&head, &blocks, &index_bytes, session_count, |footer| {
        if edit.without_index_checksum {
            footer.index_checksum.clear();
        }
        footer.index_offset = edit.index_offset.unwrap_or(footer.index_offset);
        footer.index_length = edit.index_length.unwrap_or(footer.index_length);
        footer.session_count = edit.session_count.unwrap_or(footer.session_count);
    });
    (craft::file_name(&message), bytes)
}

/// An error, if any, is one of the crate's own, with a listed code.
fn assert_typed<T>(result: &Result<T, LoadError>) {
    if let Err(error) = result {
        assert!(SnapshotError::CODES.contains(&error.code()), "{error}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hostile_files_with_valid_checksums_never_panic(
        header in header(),
        bodies in proptest::collection::vec(body(), 0..4),
        index in index(),
        edit in footer_edit(),
    ) {
        let (name, bytes) = build(&header, &bodies, &index, &edit);
        let sim = sim_with(&[(&name, &bytes)]);
        let before = dir_contents(&sim, &sim_dir());
        // The keyring blocks are sealed under (key id 1), so sealed headers reach the tags.
        let ring = Some(keyring(1, 0x42, Algorithm::Aes256Gcm));
        let reader = SnapshotReader::new(&sim_dir(), Arc::new(sim.clone()), ring);

        let verified = reader.verify(&name);
        assert_typed(&verified);
        let loaded = reader.load(&name);
        assert_typed(&loaded);
        if let Ok(snapshot) = &loaded {
            prop_assert_eq!(snapshot.records.len() as u64, snapshot.meta.session_count);
            prop_assert!(verified.is_ok(), "loads but does not verify: {verified:?}");
        }
        prop_assert_eq!(dir_contents(&sim, &sim_dir()), before);
    }
}
