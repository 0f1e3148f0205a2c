//! Tests for prompt decoding and the prompt cache. WAV inputs are written here with `hound`; MP3,
//! Ogg/Vorbis, FLAC and the µ-law/A-law/ADPCM WAVs are fixtures in `tests/data/audio/` (see its README).

use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use hound::{SampleFormat, WavSpec, WavWriter};

use super::*;

const FULL_SCALE: f64 = 32768.0;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/audio")
        .join(name)
}

/// Writes a WAV whose sample for (frame, channel) is `signal(t_seconds, channel)` in full scale ±1.
fn write_wav(
    path: &Path,
    rate: u32,
    channels: u16,
    (format, bits): (SampleFormat, u16),
    frames: u32,
    signal: impl Fn(f64, u16) -> f64,
) {
    let spec = WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: format,
    };
    let mut writer = WavWriter::create(path, spec).expect("create wav");
    for n in 0..frames {
        let t = f64::from(n) / f64::from(rate);
        for ch in 0..channels {
            let x = signal(t, ch).clamp(-1.0, 1.0);
            match format {
                SampleFormat::Float => writer.write_sample(x as f32),
                SampleFormat::Int => {
                    let max = (1i64 << (bits - 1)) as f64;
                    let v = (x * max).round().clamp(-max, max - 1.0) as i32;
                    writer.write_sample(v)
                }
            }
            .expect("write sample");
        }
    }
    writer.finalize().expect("finalize wav");
}

fn sine(freq: f64, amplitude: f64) -> impl Fn(f64, u16) -> f64 {
    move |t, _| amplitude * (2.0 * PI * freq * t).sin()
}

/// Least-squares fit of `a·sin + b·cos` at `freq` over `x` (8 kHz), skipping 100 ms at each end.
/// Returns (fraction of the energy explained, amplitude in full scale). The square root of the
/// fraction is the correlation with a 440 Hz reference aligned to the best phase.
fn tone_fit(x: &[i16], freq: f64) -> (f64, f64) {
    let edge = 800.min(x.len() / 4);
    let body = &x[edge..x.len() - edge];
    let w = 2.0 * PI * freq / f64::from(RATE);
    let (mut ss, mut cc, mut sc, mut xs, mut xc, mut xx) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, &v) in body.iter().enumerate() {
        let v = f64::from(v) / FULL_SCALE;
        let (s, c) = (w * n as f64).sin_cos();
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += v * s;
        xc += v * c;
        xx += v * v;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    let explained = a * xs + b * xc;
    (if xx > 0.0 { explained / xx } else { 0.0 }, a.hypot(b))
}

fn rms(x: &[i16]) -> f64 {
    let sum: f64 = x.iter().map(|&v| (f64::from(v) / FULL_SCALE).powi(2)).sum();
    (sum / x.len().max(1) as f64).sqrt()
}

const FORMATS: [(SampleFormat, u16); 5] = [
    (SampleFormat::Int, 8),
    (SampleFormat::Int, 16),
    (SampleFormat::Int, 24),
    (SampleFormat::Int, 32),
    (SampleFormat::Float, 32),
];

#[test]
fn wav_in_every_encoding_rate_and_layout_decodes_to_one_second_of_the_tone() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [8000, 11025, 16000, 22050, 44100, 48000] {
        for channels in [1, 2] {
            for format in FORMATS {
                let path = dir
                    .path()
                    .join(format!("t-{rate}-{channels}-{}.wav", format.1));
                write_wav(&path, rate, channels, format, rate, sine(440.0, 0.5));
                let out = decode_file(&path).unwrap();
                let case = format!("{rate} Hz, {channels} ch, {format:?}");
                assert_eq!(out.len(), 8000, "{case}");
                let (fit, amplitude) = tone_fit(&out, 440.0);
                assert!(fit > 0.999, "{case}: fit {fit}");
                assert!(
                    (amplitude - 0.5).abs() < 0.01,
                    "{case}: amplitude {amplitude}"
                );
            }
        }
    }
}

#[test]
fn output_length_is_the_source_duration_at_8k_rounded_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.wav");
    write_wav(&path, 44100, 1, FORMATS[1], 12345, sine(440.0, 0.3));
    // ceil(12345 · 8000 / 44100) = ceil(2239.46)
    assert_eq!(decode_file(&path).unwrap().len(), 2240);
}

// Regression: at 11.025, 22.05 and 44.1 kHz, rubato's FFT block (2,205 frames) is longer than our
// 2,048-frame chunk, so one pump of silence in `finish` can yield no output; that was taken for a
// stall and sources of 27,563 to 28,672 frames (and others) failed with "buffer size mismatch".
#[test]
fn sources_whose_tail_needs_a_silent_pump_still_decode() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [11025, 22050, 44100] {
        for frames in [27_563, 28_000, 28_672] {
            let path = dir.path().join(format!("tail-{rate}-{frames}.wav"));
            write_wav(
                &path,
                rate,
                1,
                (SampleFormat::Int, 16),
                frames,
                sine(440.0, 0.5),
            );
            let out = decode_file(&path).unwrap_or_else(|e| panic!("{rate} Hz, {frames}: {e}"));
            let expected = (u64::from(frames) * u64::from(RATE)).div_ceil(u64::from(rate));
            assert_eq!(out.len() as u64, expected, "{rate} Hz, {frames} frames");
        }
    }
}

#[test]
fn stereo_is_mixed_down_to_the_average_of_the_channels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two-tones.wav");
    let two_tones = |t: f64, ch: u16| {
        let freq = if ch == 0 { 440.0 } else { 1000.0 };
        0.5 * (2.0 * PI * freq * t).sin()
    };
    write_wav(&path, 16000, 2, FORMATS[1], 16000, two_tones);
    let out = decode_file(&path).unwrap();
    let (fit_440, amp_440) = tone_fit(&out, 440.0);
    let (fit_1k, amp_1k) = tone_fit(&out, 1000.0);
    assert!((amp_440 - 0.25).abs() < 0.005, "440 Hz amplitude {amp_440}");
    assert!((amp_1k - 0.25).abs() < 0.005, "1 kHz amplitude {amp_1k}");
    assert!(fit_440 + fit_1k > 0.999, "{fit_440} + {fit_1k}");

    // Opposite channels cancel.
    let path = dir.path().join("opposite.wav");
    let opposite = |t: f64, ch: u16| {
        let x = 0.5 * (2.0 * PI * 440.0 * t).sin();
        if ch == 0 { x } else { -x }
    };
    write_wav(&path, 8000, 2, FORMATS[1], 8000, opposite);
    let out = decode_file(&path).unwrap();
    assert!(out.iter().all(|&v| v.abs() <= 1));
}

#[test]
fn mono_16_bit_wav_at_8k_passes_through_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noise.wav");
    let mut state: u32 = 0x1234_5678;
    let mut samples: Vec<i16> = (0..8000)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 16) as u16 as i16
        })
        .collect();
    samples[..4].copy_from_slice(&[i16::MIN, i16::MAX, 0, -1]);
    let spec = WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    };
    let mut writer = WavWriter::create(&path, spec).unwrap();
    for &s in &samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
    assert_eq!(decode_file(&path).unwrap(), samples);
}

#[test]
fn downsampling_keeps_in_band_tones() {
    let dir = tempfile::tempdir().unwrap();
    for (rate, freq) in [
        (48000, 1000.0),
        (48000, 3000.0),
        (44100, 3400.0),
        (16000, 300.0),
    ] {
        let path = dir.path().join(format!("in-band-{rate}-{freq}.wav"));
        write_wav(&path, rate, 1, FORMATS[1], rate, sine(freq, 0.5));
        let out = decode_file(&path).unwrap();
        let (fit, amplitude) = tone_fit(&out, freq);
        let loss_db = 20.0 * (0.5 / amplitude).log10();
        assert!(fit > 0.999, "{freq} Hz at {rate}: fit {fit}");
        assert!(loss_db.abs() < 0.5, "{freq} Hz at {rate}: {loss_db:.2} dB");
    }
}

#[test]
fn downsampling_filters_out_tones_above_4k_instead_of_aliasing_them() {
    let dir = tempfile::tempdir().unwrap();
    for (rate, freq) in [
        (48000, 5000.0),
        (48000, 7000.0),
        (44100, 12000.0),
        (16000, 4500.0),
    ] {
        let path = dir.path().join(format!("above-{rate}-{freq}.wav"));
        write_wav(&path, rate, 1, FORMATS[1], rate, sine(freq, 0.5));
        let out = decode_file(&path).unwrap();
        let body = &out[800..out.len() - 800];
        let attenuation_db = 20.0 * (0.5 / 2f64.sqrt() / rms(body)).log10();
        assert!(
            attenuation_db > 40.0,
            "{freq} Hz at {rate}: only {attenuation_db:.1} dB"
        );
    }
}

#[test]
fn fixtures_in_every_format_decode_to_one_second_of_440_hz() {
    for name in [
        "tone-44k1.mp3",
        "tone-48k-stereo.ogg",
        "tone-22k05.flac",
        "tone-8k-ulaw.wav",
        "tone-8k-alaw.wav",
        "tone-16k-ima-adpcm.wav",
        "tone-11k025-ms-adpcm.wav",
    ] {
        let out = decode_file(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            (7900..=8400).contains(&out.len()),
            "{name}: {} samples",
            out.len()
        );
        let (fit, amplitude) = tone_fit(&out, 440.0);
        assert!(fit.sqrt() > 0.9, "{name}: correlation {}", fit.sqrt());
        assert!(
            (amplitude - 0.5).abs() < 0.08,
            "{name}: amplitude {amplitude}"
        );
    }
}

#[test]
fn bad_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wav");
    assert_eq!(decode_file(&missing).unwrap_err().code(), "prompt.io");

    let empty = dir.path().join("empty.mp3");
    std::fs::write(&empty, b"").unwrap();
    assert_eq!(decode_file(&empty).unwrap_err().code(), "prompt.empty");

    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        b"this is not audio, just some words in a file\n".repeat(40),
    )
    .unwrap();
    assert_eq!(decode_file(&text).unwrap_err().code(), "prompt.unsupported");

    let silent = dir.path().join("no-frames.wav");
    write_wav(&silent, 8000, 1, FORMATS[1], 0, sine(440.0, 0.5));
    assert_eq!(decode_file(&silent).unwrap_err().code(), "prompt.empty");

    let whole = dir.path().join("whole.wav");
    write_wav(&whole, 16000, 1, FORMATS[1], 16000, sine(440.0, 0.5));
    let bytes = std::fs::read(&whole).unwrap();
    let truncated = dir.path().join("truncated.wav");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(decode_file(&truncated).unwrap_err().code(), "prompt.decode");
    let header_only = dir.path().join("header-cut.wav");
    std::fs::write(&header_only, &bytes[..30]).unwrap();
    assert_eq!(
        decode_file(&header_only).unwrap_err().code(),
        "prompt.decode"
    );
    let mut garbage_fmt = bytes.clone();
    garbage_fmt[20..36].copy_from_slice(&[0xAB; 16]);
    let corrupt = dir.path().join("corrupt-fmt.wav");
    std::fs::write(&corrupt, &garbage_fmt).unwrap();
    let code = decode_file(&corrupt).unwrap_err().code();
    assert!(
        matches!(code, "prompt.decode" | "prompt.unsupported"),
        "{code}"
    );

    for name in ["tone-22k05.flac", "tone-44k1.mp3", "tone-48k-stereo.ogg"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let cut = dir.path().join(format!("cut-{name}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let result = decode_file(&cut);
        assert_eq!(
            result.map(|s| s.len()).unwrap_err().code(),
            "prompt.decode",
            "{name}"
        );
    }
}

#[test]
fn mutated_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("seed.wav");
    write_wav(&wav, 22050, 2, FORMATS[2], 4000, sine(440.0, 0.5));
    let mut seeds = vec![("seed.wav".to_string(), std::fs::read(&wav).unwrap())];
    for name in [
        "tone-22k05.flac",
        "tone-44k1.mp3",
        "tone-48k-stereo.ogg",
        "tone-16k-ima-adpcm.wav",
    ] {
        seeds.push((name.to_string(), std::fs::read(fixture(name)).unwrap()));
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (name, seed) in &seeds {
        for round in 0..12 {
            let mut bytes = seed.clone();
            let limit = if round % 2 == 0 {
                64.min(bytes.len())
            } else {
                bytes.len()
            };
            for _ in 0..1 + round {
                let at = (next() as usize) % limit;
                bytes[at] = next() as u8;
            }
            if round % 3 == 2 {
                bytes.truncate((next() as usize) % bytes.len());
            }
            let path = dir.path().join(format!("{round}-{name}"));
            std::fs::write(&path, &bytes).unwrap();
            let outcome = std::panic::catch_unwind(|| decode_file(&path));
            assert!(outcome.is_ok(), "{name} round {round} panicked");
        }
    }
}

#[test]
fn cache_hit_returns_the_same_decoded_copy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("welcome.wav");
    write_wav(&path, 16000, 1, FORMATS[1], 16000, sine(440.0, 0.5));
    let cache = PromptCache::new(1 << 20);
    let first = cache.get(&path).unwrap();
    let second = cache.get(&path).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!((cache.len(), cache.decodes(), cache.bytes()), (1, 1, 16000));
}

#[test]
fn rewriting_or_touching_the_file_invalidates_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("menu.wav");
    write_wav(&path, 8000, 1, FORMATS[1], 8000, sine(440.0, 0.5));
    let cache = PromptCache::new(1 << 20);
    let first = cache.get(&path).unwrap();

    // Rewritten with a different length.
    write_wav(&path, 8000, 1, FORMATS[1], 4000, sine(440.0, 0.5));
    let second = cache.get(&path).unwrap();
    assert_eq!(
        (first.len(), second.len(), cache.decodes()),
        (8000, 4000, 2)
    );

    // Same content and length, new modification time.
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    let later =
        std::fs::metadata(&path).unwrap().modified().unwrap() + std::time::Duration::from_secs(5);
    file.set_modified(later).unwrap();
    let third = cache.get(&path).unwrap();
    assert!(!Arc::ptr_eq(&second, &third));
    assert_eq!((cache.decodes(), cache.len(), cache.bytes()), (3, 1, 8000));

    // Deleted: an error, and the entry is gone.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(cache.get(&path).unwrap_err().code(), "prompt.io");
    assert_eq!((cache.len(), cache.bytes()), (0, 0));
}

#[test]
fn sixteen_concurrent_first_requests_decode_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue-music.wav");
    write_wav(&path, 48000, 2, FORMATS[1], 96000, sine(440.0, 0.5));
    let cache = PromptCache::new(1 << 20);
    let start = Barrier::new(16);
    let results: Vec<Arc<[i16]>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    cache.get(&path).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(cache.decodes(), 1);
    assert!(results.iter().all(|r| Arc::ptr_eq(r, &results[0])));
    assert_eq!(results[0].len(), 16000);
}

#[test]
fn least_recently_used_entries_are_evicted_beyond_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let path = dir.path().join(format!("{name}.wav"));
            write_wav(&path, 8000, 1, FORMATS[1], 8000, sine(440.0, 0.5));
            path
        })
        .collect();
    let cache = PromptCache::new(40_000); // two one-second prompts (16 000 bytes each) fit
    let a = cache.get(&paths[0]).unwrap();
    cache.get(&paths[1]).unwrap();
    assert!(Arc::ptr_eq(&a, &cache.get(&paths[0]).unwrap())); // a is now the most recent
    cache.get(&paths[2]).unwrap(); // evicts b
    assert_eq!(
        (cache.len(), cache.bytes(), cache.decodes()),
        (2, 32_000, 3)
    );
    assert!(Arc::ptr_eq(&a, &cache.get(&paths[0]).unwrap()));
    cache.get(&paths[1]).unwrap(); // decoded again, evicts c
    assert_eq!((cache.len(), cache.decodes()), (2, 4));

    let tiny = PromptCache::new(100); // nothing fits: served, not kept
    assert_eq!(tiny.get(&paths[0]).unwrap().len(), 8000);
    assert_eq!((tiny.len(), tiny.bytes()), (0, 0));
}

#[test]
fn decode_errors_are_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.wav");
    std::fs::write(&path, b"not yet").unwrap();
    let cache = PromptCache::new(1 << 20);
    assert_eq!(cache.get(&path).unwrap_err().code(), "prompt.unsupported");
    assert_eq!(cache.len(), 0);
    write_wav(&path, 8000, 1, FORMATS[1], 800, sine(440.0, 0.5));
    assert_eq!(cache.get(&path).unwrap().len(), 800);
}

#[test]
fn the_cache_and_its_errors_cross_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<PromptCache>();
    shared::<PromptError>();
}
