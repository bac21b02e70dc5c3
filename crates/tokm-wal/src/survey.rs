//! The first, cheap step of recovery: list a log directory and judge every segment header and
//! key, changing nothing.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use tokm_crypto_adaptive::KeyId;

use crate::error::OpenError;
use crate::findings::{HeaderFacts, HeaderState};
use crate::format::{
    FileName, HEADER_LEN, HeaderCipher, HeaderRead, SegmentHeader, classify_name, read_header,
};
use crate::options::WalOptions;
use crate::seal::{PayloadSeal, SealCheck};
use tokm_storage::{Access, Lsn, Storage};

/// A log directory as listed, with every segment's header judged and every key checked.
///
/// Made by [`LogSurvey::read`], which reads only headers and changes nothing; then
/// [`LogSurvey::walk`](crate::LogSurvey::walk) reads the records. A survey refuses what no
/// recovery policy may touch: a `*.wal` file that is not ours or is from a newer format, and a
/// key problem (a key id the keyring lacks, or key bytes that open none of the segments sealed
/// under that id) — a key problem is never taken for damage.
#[derive(Clone, Debug)]
pub struct LogSurvey {
    pub(crate) dir: PathBuf,
    pub(crate) options: WalOptions,
    pub(crate) segments: Vec<SurveyedSegment>,
    pub(crate) temp_files: Vec<String>,
    verified_key_ids: BTreeSet<KeyId>,
}

/// One segment as the survey judged it.
#[derive(Clone, Debug)]
pub(crate) struct SurveyedSegment {
    pub(crate) name: String,
    pub(crate) first_lsn: Lsn,
    pub(crate) size_bytes: u64,
    pub(crate) header: HeaderState,
    /// The decoded header and its seal, when the records can be read.
    pub(crate) readable: Option<(SegmentHeader, PayloadSeal)>,
}

impl LogSurvey {
    /// Lists `dir` and judges every segment's header and key. A missing directory is an empty
    /// log. Changes nothing.
    ///
    /// # Errors
    /// [`OpenError::NotASegment`] / [`OpenError::UnsupportedVersion`] for a `*.wal` file this
    /// crate did not write or cannot read; [`OpenError::WrongKey`] naming the first segment
    /// and the key id it needs when that key is missing, or when it opens none of the
    /// segments sealed under its id; [`OpenError::Io`], also when `dir` is not a directory.
    pub fn read(dir: &Path, options: &WalOptions) -> Result<LogSurvey, OpenError> {
        options.validate()?;
        let storage = options.storage.as_ref();
        let names = match storage.list(dir) {
            Ok(names) => names,
            Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(OpenError::io("list", &dir.display().to_string(), source)),
        };
        let mut listed = Vec::new();
        let mut temp_files = Vec::new();
        for name in names {
            match classify_name(&name) {
                FileName::Segment(first_lsn) => listed.push((first_lsn, name)),
                FileName::SegmentTemp => temp_files.push(name),
                FileName::MalformedSegment => {
                    return Err(OpenError::NotASegment {
                        file: name,
                        reason: "name ends in .wal but is not <20-digit LSN>.wal",
                    });
                }
                FileName::Unrelated => {}
            }
        }
        listed.sort();
        temp_files.sort();
        let mut judged = Vec::with_capacity(listed.len());
        for (first_lsn, name) in listed {
            judged.push(judge_header(storage, dir, first_lsn, name)?);
        }
        let (segments, verified_key_ids) = check_keys(judged, options)?;
        Ok(LogSurvey {
            dir: dir.to_path_buf(),
            options: options.clone(),
            segments,
            temp_files,
            verified_key_ids,
        })
    }

    /// Key ids that opened the key check of at least one segment: proof that the keyring
    /// holds the right bytes for them. A caller judging other files sealed under the same key
    /// (the engine, for snapshots) uses it to tell damage from a wrong key.
    pub fn verified_key_ids(&self) -> &BTreeSet<KeyId> {
        &self.verified_key_ids
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A segment with its header read and classified, before keys are checked.
struct Judged {
    name: String,
    first_lsn: Lsn,
    size_bytes: u64,
    read: HeaderRead,
}

fn judge_header(
    storage: &dyn Storage,
    dir: &Path,
    first_lsn: Lsn,
    name: String,
) -> Result<Judged, OpenError> {
    let file = storage
        .open(&dir.join(&name), Access::ReadOnly)
        .map_err(|source| OpenError::io("open", &name, source))?;
    let size_bytes = file
        .len_bytes()
        .map_err(|source| OpenError::io("stat", &name, source))?;
    let mut head = vec![0u8; HEADER_LEN.min(usize::try_from(size_bytes).unwrap_or(HEADER_LEN))];
    file.read_exact_at(0, &mut head)
        .map_err(|source| OpenError::io("read", &name, source))?;
    let read = match read_header(&head, first_lsn) {
        HeaderRead::Foreign => {
            return Err(OpenError::NotASegment {
                file: name,
                reason: "wrong magic",
            });
        }
        HeaderRead::UnsupportedVersion(version) => {
            return Err(OpenError::UnsupportedVersion {
                file: name,
                version,
            });
        }
        read => read,
    };
    Ok(Judged {
        name,
        first_lsn,
        size_bytes,
        read,
    })
}

/// Opens each sealed header's key check, then classifies failures across segments: a key id
/// the keyring lacks, or whose key opens no segment at all, is a key problem (an error); a
/// segment whose check fails while another under the same id opens is damage.
fn check_keys(
    judged: Vec<Judged>,
    options: &WalOptions,
) -> Result<(Vec<SurveyedSegment>, BTreeSet<KeyId>), OpenError> {
    let keyring = options.keyring.as_deref();
    let checked: Vec<(Judged, Option<SealCheck>)> = judged
        .into_iter()
        .map(|judged| {
            let check = usable_header(&judged.read).map(|header| {
                PayloadSeal::for_existing_segment(keyring, &header.cipher, header.segment_id)
            });
            (judged, check)
        })
        .collect();
    let verified: BTreeSet<KeyId> = checked
        .iter()
        .filter_map(
            |(judged, check)| match (check, usable_header(&judged.read)) {
                (Some(SealCheck::Ready(PayloadSeal::Sealed(_))), Some(header)) => key_id(header),
                _ => None,
            },
        )
        .collect();
    let mut segments = Vec::with_capacity(checked.len());
    for (judged, check) in checked {
        let trusted = matches!(
            judged.read,
            HeaderRead::Intact(_) | HeaderRead::IdentityDamaged(_)
        );
        let seal = match check {
            Some(SealCheck::Ready(seal)) => Some(seal),
            // A trusted header's key id is what the file needs: a key problem, not damage,
            // unless the same key opened another segment (then this header lies).
            Some(SealCheck::KeyMissing { key_id }) if trusted => {
                return Err(wrong_key(&judged.name, key_id));
            }
            Some(SealCheck::KeyCheckFailed { key_id })
                if trusted && !verified.contains(&key_id) =>
            {
                return Err(wrong_key(&judged.name, key_id));
            }
            Some(
                SealCheck::KeyMissing { .. }
                | SealCheck::KeyCheckFailed { .. }
                | SealCheck::UnknownAlgorithm,
            )
            | None => None,
        };
        segments.push(surveyed(judged, seal));
    }
    Ok((segments, verified))
}

fn surveyed(judged: Judged, seal: Option<PayloadSeal>) -> SurveyedSegment {
    let facts = |header: &SegmentHeader| HeaderFacts {
        segment_id: header.segment_id,
        previous_lsn: header.previous_lsn,
        key_id: key_id(header),
    };
    let (state, readable) = match (judged.read, seal) {
        (HeaderRead::Intact(header), Some(seal)) => {
            (HeaderState::Intact(facts(&header)), Some((header, seal)))
        }
        (HeaderRead::IdentityDamaged(header), Some(seal)) => (
            HeaderState::IdentityDamaged(facts(&header)),
            Some((header, seal)),
        ),
        (HeaderRead::Salvaged(header), Some(seal)) => {
            (HeaderState::Salvaged(facts(&header)), Some((header, seal)))
        }
        _ => (HeaderState::Unreadable, None),
    };
    SurveyedSegment {
        name: judged.name,
        first_lsn: judged.first_lsn,
        size_bytes: judged.size_bytes,
        header: state,
        readable,
    }
}

fn usable_header(read: &HeaderRead) -> Option<&SegmentHeader> {
    match read {
        HeaderRead::Intact(header)
        | HeaderRead::IdentityDamaged(header)
        | HeaderRead::Salvaged(header) => Some(header),
        HeaderRead::Unreadable | HeaderRead::Foreign | HeaderRead::UnsupportedVersion(_) => None,
    }
}

fn key_id(header: &SegmentHeader) -> Option<KeyId> {
    match header.cipher {
        HeaderCipher::None => None,
        HeaderCipher::Sealed { key_id, .. } => Some(KeyId::new(key_id)),
    }
}

fn wrong_key(file: &str, key_id: KeyId) -> OpenError {
    OpenError::WrongKey {
        file: file.to_owned(),
        key_id: key_id.get(),
    }
}
