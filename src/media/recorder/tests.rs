//! Tests for the stereo recorder and crash repair: alignment on the call clock, bounded buffering,
//! files valid at every header rewrite, repair after a simulated kill, and full disks.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use super::*;

/// A recognisable, non-zero sample for each position: the left channel positive, the right negative.
fn mark(channel: Channel, pos: u64) -> i16 {
    let v = 1 + (pos % 20_000) as i16;
    match channel {
        Channel::Left => v,
        Channel::Right => -v,
    }
}

fn chunk(channel: Channel, at: u64, len: u64) -> Vec<i16> {
    (at..at + len).map(|pos| mark(channel, pos)).collect()
}

/// (left, right) as read back by `hound`.
fn read_back(path: &Path) -> (Vec<i16>, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).expect("a valid WAV");
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

fn assert_marks(channel: Channel, samples: &[i16], range: std::ops::Range<u64>) {
    for pos in range {
        assert_eq!(
            samples[pos as usize],
            mark(channel, pos),
            "{channel:?} at {pos}"
        );
    }
}

fn assert_silent(samples: &[i16], range: std::ops::Range<u64>) {
    assert!(
        samples[range.start as usize..range.end as usize]
            .iter()
            .all(|&s| s == 0)
    );
}

#[test]
fn channels_are_aligned_on_the_call_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    let mut rec = StereoRecorder::create(&path, 800).unwrap();
    for at in (0..8000).step_by(160) {
        rec.write(Channel::Left, at, &chunk(Channel::Left, at, 160))
            .unwrap();
        if at >= 4000 {
            rec.write(Channel::Right, at, &chunk(Channel::Right, at, 160))
                .unwrap();
        }
        rec.advance(at + 160).unwrap();
        assert_eq!(rec.samples_written(), (at + 160).saturating_sub(800));
    }
    let info = rec.finish(8000).unwrap();
    assert_eq!(
        info,
        RecordingInfo {
            frames: 8000,
            duration_ms: 1000,
            size_bytes: 44 + 32_000
        }
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), info.size_bytes);
    let (left, right) = read_back(&path);
    assert_eq!((left.len(), right.len()), (8000, 8000));
    assert_marks(Channel::Left, &left, 0..8000);
    assert_silent(&right, 0..4000);
    assert_marks(Channel::Right, &right, 4000..8000);
}

#[test]
fn gaps_in_the_middle_are_written_as_silence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gap.wav");
    let mut rec = StereoRecorder::create(&path, 400).unwrap();
    for at in (0..4800).step_by(160) {
        if !(1600..3200).contains(&at) {
            rec.write(Channel::Left, at, &chunk(Channel::Left, at, 160))
                .unwrap();
        }
        rec.write(Channel::Right, at, &chunk(Channel::Right, at, 160))
            .unwrap();
    }
    // Audio past the end is cut.
    rec.write(Channel::Left, 4800, &chunk(Channel::Left, 4800, 160))
        .unwrap();
    assert_eq!(rec.finish(4800).unwrap().frames, 4800);
    let (left, right) = read_back(&path);
    assert_eq!(left.len(), 4800);
    assert_marks(Channel::Left, &left, 0..1600);
    assert_silent(&left, 1600..3200);
    assert_marks(Channel::Left, &left, 3200..4800);
    assert_marks(Channel::Right, &right, 0..4800);
}

#[test]
fn late_and_overlapping_audio_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.wav");
    let mut rec = StereoRecorder::create(&path, 1000).unwrap();
    rec.write(Channel::Left, 0, &chunk(Channel::Left, 0, 320))
        .unwrap();
    // Overlaps 160..320: that half is dropped, 320..480 kept.
    rec.write(Channel::Left, 160, &[7777; 320]).unwrap();
    assert_eq!(rec.dropped_samples(), 160);
    // Entirely behind the channel's audio.
    rec.write(Channel::Left, 0, &[5555; 100]).unwrap();
    assert_eq!(rec.dropped_samples(), 260);

    rec.advance(5000).unwrap();
    assert_eq!(rec.samples_written(), 4000);
    // Behind what the file holds.
    rec.write(Channel::Right, 100, &[3333; 160]).unwrap();
    assert_eq!(rec.dropped_samples(), 420);
    // Straddles the file's end: the first 10 are dropped, the rest lands at 4000.
    rec.write(Channel::Right, 3990, &chunk(Channel::Right, 3990, 20))
        .unwrap();
    assert_eq!(rec.dropped_samples(), 430);
    rec.finish(4010).unwrap();

    let (left, right) = read_back(&path);
    assert_marks(Channel::Left, &left, 0..320);
    assert!(left[320..480].iter().all(|&s| s == 7777));
    assert_silent(&left, 480..4010);
    assert_silent(&right, 0..4000);
    assert_marks(Channel::Right, &right, 4000..4010);
}

#[test]
fn memory_stays_bounded_when_one_side_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one-sided.wav");
    let max_lag = 800;
    let mut rec = StereoRecorder::create(&path, max_lag).unwrap();
    // The caller talks for 10 s; the other side stops after 1 s and comes back at 9 s. The clock is
    // never advanced: the left channel's own progress pushes the file forward.
    for at in (0..80_000).step_by(160) {
        rec.write(Channel::Left, at, &chunk(Channel::Left, at, 160))
            .unwrap();
        if !(8000..72_000).contains(&at) {
            rec.write(Channel::Right, at, &chunk(Channel::Right, at, 160))
                .unwrap();
        }
        assert!(rec.buffered(Channel::Left) as u64 <= max_lag);
        assert!(rec.buffered(Channel::Right) as u64 <= max_lag);
        assert_eq!(rec.samples_written(), (at + 160).saturating_sub(max_lag));
    }
    assert_eq!(rec.dropped_samples(), 0);
    rec.finish(80_000).unwrap();
    let (left, right) = read_back(&path);
    assert_marks(Channel::Left, &left, 0..80_000);
    assert_marks(Channel::Right, &right, 0..8000);
    assert_silent(&right, 8000..72_000);
    assert_marks(Channel::Right, &right, 72_000..80_000);
}

#[test]
fn a_jump_forward_streams_silence_without_buffering_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jump.wav");
    let mut rec = StereoRecorder::create(&path, 800).unwrap();
    rec.write(Channel::Left, 0, &chunk(Channel::Left, 0, 160))
        .unwrap();
    rec.write(
        Channel::Right,
        480_000,
        &chunk(Channel::Right, 480_000, 160),
    )
    .unwrap();
    assert_eq!(rec.samples_written(), 480_160 - 800);
    assert!(rec.buffered(Channel::Right) <= 800);
    rec.finish(480_160).unwrap();
    let (left, right) = read_back(&path);
    assert_marks(Channel::Left, &left, 0..160);
    assert_silent(&left, 160..480_160);
    assert_silent(&right, 0..480_000);
    assert_marks(Channel::Right, &right, 480_000..480_160);

    // A position no call reaches stops the recording instead of writing days of silence.
    let path = dir.path().join("absurd.wav");
    let mut rec = StereoRecorder::create(&path, 800).unwrap();
    let error = rec
        .write(Channel::Left, u64::MAX - 10, &[1; 160])
        .unwrap_err();
    assert_eq!(error.code(), "recording.too_long");
    assert_eq!(
        rec.write(Channel::Left, 0, &[1; 160]).unwrap_err().code(),
        "recording.stopped"
    );
    assert_eq!(rec.finish(0).unwrap().frames, 0);
}

/// Writes both channels from `from` to `to` in 20 ms packets, advancing the clock.
fn talk(rec: &mut StereoRecorder, from: u64, to: u64) -> Result<(), RecorderError> {
    for at in (from..to).step_by(160) {
        rec.write(Channel::Left, at, &chunk(Channel::Left, at, 160))?;
        rec.write(Channel::Right, at, &chunk(Channel::Right, at, 160))?;
        rec.advance(at + 160)?;
    }
    Ok(())
}

#[test]
fn the_file_is_valid_at_every_header_rewrite_without_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.wav");
    let copy = dir.path().join("copy.wav");
    let mut rec = StereoRecorder::create(&path, 160).unwrap();
    // Valid (and empty) from the start.
    std::fs::copy(&path, &copy).unwrap();
    assert_eq!(read_back(&copy).0.len(), 0);

    talk(&mut rec, 0, 6000).unwrap();
    rec.flush_header().unwrap();
    std::fs::copy(&path, &copy).unwrap();
    let (left, right) = read_back(&copy);
    assert_eq!(left.len() as u64, rec.samples_written());
    assert_marks(Channel::Left, &left, 0..5840);
    assert_marks(Channel::Right, &right, 0..5840);

    // No explicit flush: the header is rewritten every second of audio written.
    talk(&mut rec, 6000, 20_000).unwrap();
    std::fs::copy(&path, &copy).unwrap();
    let (left, _) = read_back(&copy);
    let lag = rec.samples_written() - left.len() as u64;
    assert!(lag < 8000, "the header is {lag} frames behind");
    assert_marks(Channel::Left, &left, 0..left.len() as u64);

    // A kill: nothing more runs for this recorder, buffers included.
    let written = rec.samples_written();
    std::mem::forget(rec);
    let on_disk = read_back(&path).0.len() as u64;
    assert!(written - on_disk < 8000);
    // Repair recovers what reached the disk after the last header rewrite.
    let info = repair(&path).unwrap().expect("the file needed repair");
    assert!(info.frames >= on_disk && info.frames <= written, "{info:?}");
    let (left, right) = read_back(&path);
    assert_eq!(left.len() as u64, info.frames);
    assert_marks(Channel::Left, &left, 0..info.frames);
    assert_marks(Channel::Right, &right, 0..info.frames);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), info.size_bytes);
}

#[test]
fn repair_recovers_audio_behind_a_header_that_says_zero_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crashed.wav");
    let rec = StereoRecorder::create(&path, 800).unwrap();
    std::mem::forget(rec); // killed before any header rewrite
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    for pos in 0..1000 {
        file.write_all(&mark(Channel::Left, pos).to_le_bytes())
            .unwrap();
        file.write_all(&mark(Channel::Right, pos).to_le_bytes())
            .unwrap();
    }
    file.write_all(&[0x12, 0x34]).unwrap(); // half a frame
    drop(file);
    assert_eq!(read_back(&path).0.len(), 0); // what the header says

    let info = repair(&path).unwrap();
    assert_eq!(
        info,
        Some(RecordingInfo {
            frames: 1000,
            duration_ms: 125,
            size_bytes: 4044
        })
    );
    let (left, right) = read_back(&path);
    assert_eq!(left.len(), 1000);
    assert_marks(Channel::Left, &left, 0..1000);
    assert_marks(Channel::Right, &right, 0..1000);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4044);
    // Idempotent.
    assert_eq!(repair(&path).unwrap(), None);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4044);
}

#[test]
fn repair_shrinks_a_header_that_claims_more_than_the_disk_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.wav");
    let mut rec = StereoRecorder::create(&path, 160).unwrap();
    talk(&mut rec, 0, 8000).unwrap();
    rec.finish(8000).unwrap();
    assert_eq!(repair(&path).unwrap(), None); // a finished file is left alone
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(44 + 4 * 500 + 3).unwrap();
    drop(file);
    assert_eq!(repair(&path).unwrap().map(|i| i.frames), Some(500));
    let (left, right) = read_back(&path);
    assert_marks(Channel::Left, &left, 0..500);
    assert_marks(Channel::Right, &right, 0..500);
    assert_eq!(left.len(), 500);
}

#[test]
fn repair_refuses_files_that_are_not_wav() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wav");
    assert_eq!(repair(&missing).unwrap_err().code(), "recording.io");
    let text = dir.path().join("notes.wav");
    std::fs::write(&text, b"hello, this is not a recording").unwrap();
    let error = repair(&text).unwrap_err();
    assert!(matches!(
        error,
        RecorderError::Format {
            problem: FormatProblem::NotRiffWave,
            ..
        }
    ));
    let cut = dir.path().join("cut.wav");
    let rec = StereoRecorder::create(&cut, 0).unwrap();
    rec.finish(0).unwrap();
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..38]).unwrap();
    let error = repair(&cut).unwrap_err();
    assert!(matches!(
        error,
        RecorderError::Format {
            problem: FormatProblem::NoDataChunk,
            ..
        }
    ));
}

#[test]
fn a_full_disk_at_create_is_an_io_error() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        return; // not Linux
    }
    let error = StereoRecorder::create(full, 800).unwrap_err();
    assert!(error.is_disk_full(), "{error:?}");
    assert_eq!(error.code(), "recording.disk_full");
}

/// A file on a disk that fills up at `limit` bytes.
struct FillsUpAt {
    file: File,
    limit: u64,
}

impl Write for FillsUpAt {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let pos = self.file.stream_position()?;
        let room = usize::try_from(self.limit.saturating_sub(pos)).unwrap_or(usize::MAX);
        if room == 0 {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        self.file.write(&buf[..buf.len().min(room)])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for FillsUpAt {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.file.seek(to)
    }
}

#[test]
fn a_full_disk_mid_call_stops_the_recording_and_keeps_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.wav");
    let sink = FillsUpAt {
        file: File::create(&path).unwrap(),
        limit: 44 + 4 * 30_000 + 2,
    };
    let mut rec = StereoRecorder::with_sink(&path, Box::new(sink), 800).unwrap();
    let error = talk(&mut rec, 0, 80_000).unwrap_err();
    assert!(error.is_disk_full(), "{error:?}");
    assert_eq!(error.code(), "recording.disk_full");
    // The call goes on; the recorder says it has stopped.
    let again = talk(&mut rec, 80_000, 80_160).unwrap_err();
    assert_eq!(again.code(), "recording.stopped");
    assert_eq!(rec.flush_header().unwrap_err().code(), "recording.stopped");
    assert_eq!(
        (rec.buffered(Channel::Left), rec.buffered(Channel::Right)),
        (0, 0)
    );

    let info = rec.finish(80_160).unwrap();
    assert_eq!(info.frames, 30_000);
    let (left, right) = read_back(&path);
    assert_eq!(left.len(), 30_000);
    assert_marks(Channel::Left, &left, 0..30_000);
    assert_marks(Channel::Right, &right, 0..30_000);
}

#[test]
fn a_recorder_can_move_to_a_blocking_thread() {
    fn movable<T: Send>() {}
    movable::<StereoRecorder>();
    movable::<RecorderError>();
}
