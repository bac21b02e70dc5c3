//! Reading one segment file through a bounded window, frame by frame.
//!
//! Recovery never holds a whole segment: it reads [`WINDOW_BYTES`] at a time and moves the
//! window forward, so the memory an open needs does not grow with the log's length. A frame
//! larger than the window is read whole, but only after its length field was checked against
//! the format's limit and the bytes left in the file, so a corrupt or crafted length never
//! sizes an allocation beyond what the file holds.

use std::path::Path;
use std::sync::Arc;

use crate::error::ReplayError;
use crate::format::{
    FRAME_HEADER_LEN, FrameRead, SEGMENT_READ_BYTES_MAX, claimed_frame_len, peek_frame_lsn,
    read_frame,
};
use tokm_storage::{Access, Lsn, Storage, StorageFile};

/// Bytes read per window refill.
pub(crate) const WINDOW_BYTES: usize = 1 << 20;

/// One segment file opened for reading, with a window over part of it.
///
/// It reads no further than [`SEGMENT_READ_BYTES_MAX`], the longest segment a writer makes:
/// whatever lies beyond is not the log's.
#[derive(Debug)]
pub(crate) struct SegmentReader {
    file: Arc<dyn StorageFile>,
    name: String,
    /// The readable length: the file's, capped at `SEGMENT_READ_BYTES_MAX`.
    len_bytes: u64,
    file_len_bytes: u64,
    window: Vec<u8>,
    /// File offset of `window[0]`.
    window_start: u64,
}

impl SegmentReader {
    /// Opens `dir/name` read-only.
    pub(crate) fn open(
        storage: &dyn Storage,
        dir: &Path,
        name: &str,
    ) -> Result<SegmentReader, ReplayError> {
        let file = storage
            .open(&dir.join(name), Access::ReadOnly)
            .map_err(|source| ReplayError::io("open", name, source))?;
        let file_len_bytes = file
            .len_bytes()
            .map_err(|source| ReplayError::io("stat", name, source))?;
        Ok(SegmentReader {
            file,
            name: name.to_owned(),
            len_bytes: file_len_bytes.min(SEGMENT_READ_BYTES_MAX),
            file_len_bytes,
            window: Vec::new(),
            window_start: 0,
        })
    }

    /// How much of the file is read: its length when opened, at most
    /// `SEGMENT_READ_BYTES_MAX`.
    pub(crate) fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// The file's whole length when it was opened.
    pub(crate) fn file_len_bytes(&self) -> u64 {
        self.file_len_bytes
    }

    /// Up to `want` bytes from `offset`: fewer only at the end of the file. Callers bound
    /// `want` by a frame's size limit.
    pub(crate) fn bytes(&mut self, offset: u64, want: usize) -> Result<&[u8], ReplayError> {
        let end = offset
            .saturating_add(want as u64)
            .min(self.len_bytes)
            .max(offset);
        let window_end = self.window_start + self.window.len() as u64;
        if offset < self.window_start || end > window_end {
            self.refill(offset, want)?;
        }
        // Both ends lie inside the window now; the subtraction and the casts cannot overflow
        // because the window is at most a frame or `WINDOW_BYTES` long.
        let from = (offset - self.window_start) as usize;
        let to = (end - self.window_start) as usize;
        Ok(&self.window[from..to])
    }

    /// Moves the window to start at `offset`, holding at least `want` bytes (or the rest of
    /// the file).
    fn refill(&mut self, offset: u64, want: usize) -> Result<(), ReplayError> {
        let available = self.len_bytes.saturating_sub(offset);
        let len = (want.max(WINDOW_BYTES) as u64).min(available) as usize;
        self.window.clear();
        self.window.resize(len, 0);
        self.window_start = offset;
        self.file
            .read_exact_at(offset, &mut self.window)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::UnexpectedEof {
                    ReplayError::Corrupt {
                        file: self.name.clone(),
                        offset,
                        what: "segment shrank while it was read",
                    }
                } else {
                    ReplayError::io("read", &self.name, source)
                }
            })
    }

    /// The frame starting at `offset`.
    pub(crate) fn frame(&mut self, offset: u64) -> Result<FrameRead<'_>, ReplayError> {
        let header = self.bytes(offset, FRAME_HEADER_LEN)?;
        let Some(frame_len) = claimed_frame_len(header) else {
            return Ok(if header.len() < FRAME_HEADER_LEN {
                FrameRead::Truncated
            } else {
                FrameRead::Invalid
            });
        };
        if frame_len as u64 > self.len_bytes - offset {
            return Ok(FrameRead::Truncated);
        }
        Ok(read_frame(self.bytes(offset, frame_len)?))
    }

    /// Offset of the first intact frame at or after `from` whose LSN could follow `floor`
    /// (above it, and no further than the bytes left could hold), if any.
    ///
    /// Bounded: every byte up to the end of the file is looked at once (a cheap test of its
    /// LSN field), and only plausible positions are read and checksummed as frames.
    pub(crate) fn resync(&mut self, from: u64, floor: Lsn) -> Result<Option<u64>, ReplayError> {
        let header_len = FRAME_HEADER_LEN as u64;
        let len_bytes = self.len_bytes;
        let mut start = from;
        while start + header_len <= len_bytes {
            let window = self.bytes(start, WINDOW_BYTES)?;
            // Positions whose whole frame header lies in this window.
            let positions = window.len() + 1 - FRAME_HEADER_LEN;
            // A quick test first (with the most room any position here has), the exact one
            // only for the few positions that pass it: this loop sees every damaged byte.
            let room_max = plausible_room(len_bytes - start);
            let mut candidates = Vec::new();
            for position in 0..positions {
                let Some(lsn) = peek_frame_lsn(&window[position..]) else {
                    break;
                };
                let ahead = lsn.get().wrapping_sub(floor.get());
                if ahead == 0 || ahead > room_max {
                    continue;
                }
                let remaining = len_bytes - start - position as u64;
                if plausible_lsn(lsn, floor, remaining) {
                    candidates.push(start + position as u64);
                }
            }
            for candidate in candidates {
                if matches!(self.frame(candidate)?, FrameRead::Record { .. }) {
                    return Ok(Some(candidate));
                }
            }
            start += positions as u64;
        }
        Ok(None)
    }
}

/// Frames past a bad one can only carry LSNs up to this far ahead: each frame takes at least
/// `FRAME_HEADER_LEN` bytes, and a segment's LSNs only grow.
fn plausible_lsn(candidate: Lsn, floor: Lsn, remaining_bytes: u64) -> bool {
    candidate > floor && candidate.get() - floor.get() <= plausible_room(remaining_bytes)
}

/// How far past the last LSN a frame starting `remaining_bytes` before the end may be.
fn plausible_room(remaining_bytes: u64) -> u64 {
    remaining_bytes / FRAME_HEADER_LEN as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{begin_frame, finish_frame};
    use tokm_storage::testkit::SimStorage;

    fn segment_with_frames(payload_len: usize, count: u64) -> (SimStorage, Vec<u64>) {
        let sim = SimStorage::new();
        let mut bytes = vec![0xAB; 120];
        let mut offsets = Vec::new();
        for lsn in 1..=count {
            offsets.push(bytes.len() as u64);
            let start = begin_frame(&mut bytes);
            bytes.extend(std::iter::repeat_n(lsn as u8, payload_len));
            finish_frame(&mut bytes, start, Lsn::new(lsn));
        }
        sim.put_file(Path::new("/w/s"), &bytes);
        (sim, offsets)
    }

    #[test]
    fn frames_are_read_through_a_window_smaller_than_the_file() {
        let (sim, offsets) = segment_with_frames(100_000, 30);
        let mut reader = SegmentReader::open(&sim, Path::new("/w"), "s").expect("open");
        assert!(reader.len_bytes() > 2 * WINDOW_BYTES as u64);
        for (index, offset) in offsets.iter().enumerate() {
            match reader.frame(*offset).expect("read") {
                FrameRead::Record { lsn, payload, .. } => {
                    assert_eq!(lsn, Lsn::new(index as u64 + 1));
                    assert_eq!(payload.len(), 100_000);
                }
                other => panic!("frame {index}: {other:?}"),
            }
            assert!(reader.window.len() <= WINDOW_BYTES);
        }
    }

    #[test]
    fn a_length_beyond_the_file_is_a_cut_frame_not_an_allocation() {
        let (sim, offsets) = segment_with_frames(10, 2);
        let path = Path::new("/w/s");
        let mut bytes = sim.file_bytes(path).expect("file");
        let second = offsets[1] as usize;
        bytes[second..second + 4].copy_from_slice(&(60u32 << 20).to_le_bytes());
        sim.put_file(path, &bytes);
        let mut reader = SegmentReader::open(&sim, Path::new("/w"), "s").expect("open");
        assert_eq!(
            reader.frame(offsets[1]).expect("read"),
            FrameRead::Truncated
        );
        assert!(reader.window.capacity() <= WINDOW_BYTES);
    }

    #[test]
    fn resync_finds_the_next_intact_frame_past_damage() {
        let (sim, offsets) = segment_with_frames(50, 4);
        let path = Path::new("/w/s");
        let mut bytes = sim.file_bytes(path).expect("file");
        bytes[offsets[1] as usize + 25] ^= 1;
        sim.put_file(path, &bytes);
        let mut reader = SegmentReader::open(&sim, Path::new("/w"), "s").expect("open");
        assert_eq!(reader.frame(offsets[1]).expect("read"), FrameRead::Invalid);
        assert_eq!(
            reader.resync(offsets[1] + 1, Lsn::new(1)).expect("scan"),
            Some(offsets[2])
        );
        assert_eq!(
            reader.resync(offsets[3] + 1, Lsn::new(4)).expect("scan"),
            None
        );
    }
}
