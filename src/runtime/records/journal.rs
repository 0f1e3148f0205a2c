//! The records journal on disk: numbered entries appended as JSON lines to segment files under
//! `DATA/records-journal/`, one file per run of `SEGMENT_BYTES`, named by its first sequence
//! number. Appends are plain `write(2)` calls, so an entry is in the kernel before the call path
//! goes on: a killed process loses nothing. The writer fsyncs once per batch, so a power cut
//! loses at most the entries of the batch in flight (SQLite in WAL mode with `synchronous =
//! NORMAL` makes the same trade). Segments whose entries are all in the database are deleted.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::RecordEntry;

/// A segment is closed and a new one opened past this size.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
const SUFFIX: &str = ".jsonl";
/// Entries the database refused for good (a constraint they break), kept for an admin.
pub const REJECTED_FILE: &str = "rejected.jsonl";

/// One line of a segment.
#[derive(Serialize)]
struct LineRef<'a> {
    seq: u64,
    entry: &'a RecordEntry,
}

#[derive(Deserialize)]
struct Line {
    seq: u64,
    entry: RecordEntry,
}

/// The segment being appended to, and the closed ones not yet deleted.
pub struct JournalFile {
    dir: PathBuf,
    file: File,
    bytes: u64,
    /// (first sequence number, path), oldest first; the last is the open segment.
    segments: VecDeque<(u64, PathBuf)>,
    line: Vec<u8>,
    /// The last write failed and may have left part of a line: the next one starts on a new
    /// line, so only the torn entry is unreadable.
    torn: bool,
}

impl JournalFile {
    /// Opens a new segment in `dir` (created when missing) whose first entry is `next_seq`.
    pub fn create(dir: &Path, next_seq: u64) -> io::Result<JournalFile> {
        fs::create_dir_all(dir)?;
        let (file, path) = open_segment(dir, next_seq)?;
        Ok(JournalFile {
            dir: dir.to_path_buf(),
            file,
            bytes: 0,
            segments: VecDeque::from([(next_seq, path)]),
            line: Vec::with_capacity(512),
            torn: false,
        })
    }

    /// Appends entry `seq` in one write; opens the next segment when this one is full (the full
    /// one is fsynced first: the writer's periodic fsync sees only the open segment).
    pub fn append(&mut self, seq: u64, entry: &RecordEntry) -> io::Result<()> {
        if self.bytes >= SEGMENT_BYTES {
            let full = self.file.try_clone();
            self.roll(seq)?;
            // The full segment reaches the disk off the call path.
            if let Ok(full) = full {
                std::thread::spawn(move || {
                    if let Err(error) = full.sync_data() {
                        tracing::warn!(%error, "records journal fsync of a full segment failed");
                    }
                });
            }
        }
        self.line.clear();
        if self.torn {
            self.line.push(b'\n');
        }
        serde_json::to_writer(&mut self.line, &LineRef { seq, entry }).map_err(io::Error::other)?;
        self.line.push(b'\n');
        if let Err(e) = self.file.write_all(&self.line) {
            self.torn = true;
            return Err(e);
        }
        self.torn = false;
        self.bytes += self.line.len() as u64;
        Ok(())
    }

    /// Starts a new segment at `seq` (after a failed write: a full disk, a removed file), keeping
    /// the list of older segments so they are still deleted once applied.
    pub fn roll(&mut self, seq: u64) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let (file, path) = open_segment(&self.dir, seq)?;
        self.file = file;
        self.bytes = 0;
        // Reopening the same file (its first entry failed): it may end in a torn line.
        self.torn = self.torn || self.segments.back().is_some_and(|(first, _)| *first == seq);
        if self.segments.back().is_some_and(|(first, _)| *first == seq) {
            self.segments.pop_back();
        }
        self.segments.push_back((seq, path));
        Ok(())
    }

    /// Every segment file this journal knows, oldest first (to delete once all is applied).
    pub fn all_segments(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|(_, p)| p.clone()).collect()
    }

    /// A second handle on the open segment, to fsync it without holding up appends.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Takes out the closed segments whose entries are all at or below `applied` (to delete).
    pub fn applied_segments(&mut self, applied: u64) -> Vec<PathBuf> {
        let mut done = Vec::new();
        while self.segments.len() > 1 && self.segments[1].0 <= applied + 1 {
            if let Some((_, path)) = self.segments.pop_front() {
                done.push(path);
            }
        }
        done
    }
}

fn open_segment(dir: &Path, first_seq: u64) -> io::Result<(File, PathBuf)> {
    let path = dir.join(format!("{first_seq:020}{SUFFIX}"));
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    Ok((file, path))
}

/// The segment files in `dir`, oldest first (none when the directory is missing).
pub fn segments(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(SUFFIX) && n != REJECTED_FILE)
            })
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    found.sort();
    Ok(found)
}

/// What reading one segment found.
#[derive(Debug, Default)]
pub struct SegmentRead {
    pub entries: Vec<(u64, RecordEntry)>,
    /// Lines that do not parse, with their line numbers (a torn last line after a power cut).
    pub unreadable: Vec<(usize, String)>,
}

/// Reads every entry of a segment file.
pub fn read_segment(path: &Path) -> io::Result<SegmentRead> {
    let bytes = fs::read(path)?;
    let mut read = SegmentRead::default();
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Line>(line) {
            Ok(Line { seq, entry }) => read.entries.push((seq, entry)),
            Err(e) => read.unreadable.push((index + 1, e.to_string())),
        }
    }
    Ok(read)
}

/// Appends `entry` with the database's reason to `DIR/rejected.jsonl`.
pub fn reject(dir: &Path, seq: u64, entry: &RecordEntry, error: &str) -> io::Result<()> {
    let mut line = serde_json::to_vec(&serde_json::json!({
        "seq": seq,
        "error": error,
        "entry": entry,
    }))
    .map_err(io::Error::other)?;
    line.push(b'\n');
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(REJECTED_FILE))?
        .write_all(&line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(n: i32) -> RecordEntry {
        RecordEntry::CallRating {
            call_id: format!("call-{n}"),
            rating: n,
        }
    }

    #[test]
    fn appended_entries_read_back_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = JournalFile::create(dir.path(), 7).unwrap();
        journal.append(7, &rating(1)).unwrap();
        journal.bytes = SEGMENT_BYTES; // the next append opens a second segment
        journal.append(8, &rating(2)).unwrap();
        let files = segments(dir.path()).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        let all: Vec<_> = files
            .iter()
            .flat_map(|f| read_segment(f).unwrap().entries)
            .collect();
        assert_eq!(all, vec![(7, rating(1)), (8, rating(2))]);
    }

    #[test]
    fn a_torn_last_line_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = JournalFile::create(dir.path(), 1).unwrap();
        journal.append(1, &rating(3)).unwrap();
        let path = segments(dir.path()).unwrap().remove(0);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":2,\"entry\":{\"op\":\"call_ra")
            .unwrap();
        let read = read_segment(&path).unwrap();
        assert_eq!(read.entries, vec![(1, rating(3))]);
        assert_eq!(read.unreadable.len(), 1);
        assert_eq!(read.unreadable[0].0, 2);
    }

    #[test]
    fn only_segments_wholly_applied_are_handed_out_for_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = JournalFile::create(dir.path(), 1).unwrap();
        for seq in 1..=3 {
            journal.append(seq, &rating(seq as i32)).unwrap();
            journal.bytes = SEGMENT_BYTES;
        }
        // Segments hold entry 1, entry 2 and entry 3 (open).
        assert!(journal.applied_segments(0).is_empty());
        let first = journal.applied_segments(1);
        assert_eq!(first.len(), 1);
        assert!(first[0].ends_with(format!("{:020}{SUFFIX}", 1)));
        assert_eq!(journal.applied_segments(3).len(), 1);
        assert_eq!(journal.segments.len(), 1, "the open segment stays");
        assert_eq!(journal.segments[0].0, 3);
    }

    #[test]
    fn rejected_entries_keep_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        reject(dir.path(), 9, &rating(4), "FOREIGN KEY constraint failed").unwrap();
        let text = fs::read_to_string(dir.path().join(REJECTED_FILE)).unwrap();
        assert!(
            text.contains("\"seq\":9") && text.contains("FOREIGN KEY"),
            "{text}"
        );
        assert!(segments(dir.path()).unwrap().is_empty());
    }
}
