//! Tests for text-to-speech. Tests named `espeak_*` run the real espeak-ng (Debian package
//! `espeak-ng`) and fail if it is missing; `cargo test -- --skip espeak_` leaves them out. The cache is
//! tested against a fake engine; timeouts and failures against small shell scripts posing as espeak-ng.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::Barrier;
use std::sync::atomic::AtomicBool;

use super::*;
use crate::media::prompt::RATE;

fn espeak() -> EspeakNg {
    EspeakNg::with_program(EspeakNg::PROGRAM)
        .unwrap_or_else(|e| panic!("this test needs espeak-ng (apt-get install espeak-ng): {e}"))
}

/// An engine whose program does not exist: anything that reaches it fails as `NotInstalled`, so a
/// different error proves the request was refused before a process was started.
fn missing_engine() -> EspeakNg {
    EspeakNg {
        program: PathBuf::from("/nonexistent/espeak-ng"),
        version: String::new(),
        default_voice: None,
        timeout: DEFAULT_TIMEOUT,
    }
}

/// A shell script posing as espeak-ng (it skips the `--version` check).
fn script_engine(dir: &Path, name: &str, body: &str, timeout: Duration) -> EspeakNg {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    EspeakNg {
        program: path,
        version: String::new(),
        default_voice: None,
        timeout,
    }
}

/// Synthesizes, retrying when the script was still open for writing in a child forked by another test
/// at that moment (ETXTBSY, a known race of freshly written executables in multithreaded tests).
fn synthesize_script(engine: &EspeakNg, text: &str) -> Result<Vec<i16>, TtsError> {
    for _ in 0..5 {
        match engine.synthesize(text, None) {
            Err(TtsError::Failed { reason, .. }) if reason.contains("Text file busy") => {
                thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
    engine.synthesize(text, None)
}

fn seconds(pcm: &[i16]) -> f64 {
    pcm.len() as f64 / f64::from(RATE)
}

fn rms(pcm: &[i16]) -> f64 {
    let sum: f64 = pcm.iter().map(|&v| (f64::from(v) / 32768.0).powi(2)).sum();
    (sum / pcm.len().max(1) as f64).sqrt()
}

// ---- espeak-ng ----

#[test]
fn espeak_speaks_a_short_sentence_as_8k_audio() {
    let engine = EspeakNg::detect().expect("espeak-ng on PATH (apt-get install espeak-ng)");
    assert!(
        engine.version().contains("eSpeak NG"),
        "{}",
        engine.version()
    );
    let pcm = engine
        .synthesize("Thank you for calling.", Some("en-us"))
        .unwrap();
    let secs = seconds(&pcm);
    assert!((0.5..5.0).contains(&secs), "{secs} s");
    // Speech, not silence: espeak speaks at about −20 dBFS RMS; peak normalised to −3 dBFS.
    assert!(rms(&pcm) > 0.03, "rms {}", rms(&pcm));
    let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(
        (TARGET_PEAK as u16 - 200..=TARGET_PEAK as u16).contains(&peak),
        "peak {peak}"
    );
}

#[test]
fn espeak_voices_change_the_audio() {
    let engine = espeak();
    let text = "Hello, one two three.";
    let en = engine.synthesize(text, Some("en")).unwrap();
    let de = engine.synthesize(text, Some("de")).unwrap();
    let uk = engine.synthesize(text, Some("uk")).unwrap();
    assert_ne!(en, de);
    assert_ne!(en, uk);
    assert_ne!(de, uk);
    // The same request twice is the same audio: espeak-ng is deterministic.
    assert_eq!(en, engine.synthesize(text, Some("en")).unwrap());
}

#[test]
fn espeak_default_voice_applies_when_the_request_names_none() {
    let german = espeak().with_default_voice("de").unwrap();
    let text = "Guten Tag.";
    assert_eq!(
        german.synthesize(text, None).unwrap(),
        espeak().synthesize(text, Some("de")).unwrap()
    );
    assert_ne!(
        german.synthesize(text, None).unwrap(),
        espeak().synthesize(text, None).unwrap()
    );
    assert!(matches!(
        espeak().with_default_voice("--help"),
        Err(TtsError::BadVoice { .. })
    ));
}

#[test]
fn espeak_option_and_shell_lookalikes_in_text_are_spoken_literally() {
    let dir = tempfile::tempdir().unwrap();
    let canary = dir.path().join("canary");
    let c = canary.display();
    let engine = espeak();
    let texts = [
        "--help".to_owned(),
        "--version".to_owned(),
        "-v de -w /tmp/out.wav".to_owned(),
        format!("; touch {c}; rm -rf {c}"),
        format!("$(touch {c})"),
        format!("`touch {c}`"),
        format!("\"; touch {c}; echo \"'"),
        format!("line one\ntouch {c}\r\nline\0three"),
        "[[h@l'oU]] <speak>hi</speak>".to_owned(),
    ];
    for text in &texts {
        // Had espeak-ng obeyed `--help` or `--version`, stdout would be text, not a WAV.
        let pcm = engine
            .synthesize(text, None)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let secs = seconds(&pcm);
        assert!((0.3..15.0).contains(&secs), "{text:?}: {secs} s");
        assert!(rms(&pcm) > 0.02, "{text:?}: silent");
    }
    assert!(!canary.exists(), "text was run by a shell");
}

#[test]
fn espeak_unknown_voice_is_a_bad_voice_error() {
    let engine = espeak();
    let err = engine
        .synthesize("Hello.", Some("zz-nonexistent"))
        .unwrap_err();
    assert!(
        matches!(&err, TtsError::BadVoice { voice, reason: "is not installed", .. } if voice == "zz-nonexistent"),
        "{err}"
    );
    assert_eq!(err.code(), "tts.bad_voice");
    engine.check_voice("en-us").unwrap();
    engine.check_voice("de").unwrap();
    assert!(engine.check_voice("zz").is_err());
}

#[test]
fn espeak_cache_hit_returns_the_same_audio() {
    let cache = TtsCache::new(Arc::new(espeak()), 1 << 20);
    let first = cache.get("Please hold.", Some("en-us")).unwrap();
    let second = cache.get("Please hold.", Some("en-us")).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(cache.syntheses(), 1);
    assert_eq!(cache.bytes(), first.len() * 2);
}

// ---- requests refused before anything runs ----

#[test]
fn malformed_voice_names_are_refused_before_running_anything() {
    let engine = missing_engine();
    let long = "a".repeat(MAX_VOICE_CHARS + 1);
    for voice in [
        "",
        "--help",
        "-v",
        "en;rm -rf /",
        "en us",
        "en\n",
        "../en",
        "/usr/bin/x",
        "en'",
        "$(id)",
        "en/us",
        "é",
        &long,
    ] {
        let err = engine.synthesize("Hello.", Some(voice)).unwrap_err();
        assert!(matches!(err, TtsError::BadVoice { .. }), "{voice:?}: {err}");
    }
    for voice in ["en", "en-us", "en-GB-x-rp", "en+f3", "mb-en1", "zh_yue"] {
        check_voice_name("espeak-ng", voice).unwrap();
    }
}

#[test]
fn text_too_long_or_empty_is_refused_before_running_anything() {
    let engine = missing_engine();
    let err = engine
        .synthesize(&"a".repeat(MAX_TEXT_CHARS + 1), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            TtsError::TooLong {
                chars: 2001,
                max: 2000
            }
        ),
        "{err}"
    );
    // Characters, not bytes: 2,000 Cyrillic letters are 4,000 bytes and allowed.
    check_text(&"я".repeat(MAX_TEXT_CHARS)).unwrap();
    for text in ["", "   ", "\n\t"] {
        assert!(matches!(
            engine.synthesize(text, None),
            Err(TtsError::EmptyText)
        ));
    }
    // A well-formed request does reach the (missing) program.
    assert!(matches!(
        engine.synthesize("Hello.", Some("en")),
        Err(TtsError::NotInstalled { .. })
    ));
}

#[test]
fn text_is_made_literal_for_espeak() {
    assert!(matches!(literal_text("Hello, world."), Cow::Borrowed(_)));
    assert_eq!(literal_text("a\nb\r\0c\td"), "a b  c d");
    assert_eq!(literal_text("[[h@l'oU]]"), "[ [h@l'oU]]");
    assert_eq!(literal_text("[[[x"), "[ [ [x");
    assert_eq!(literal_text("[a] [b]"), "[a] [b]");
}

// ---- a missing or misbehaving engine ----

#[test]
fn a_missing_or_wrong_program_is_not_installed() {
    for program in [
        "/nonexistent/espeak-ng",
        "no-such-tts-program-here",
        "false",
        "echo",
    ] {
        let err = EspeakNg::with_program(program).unwrap_err();
        assert!(
            matches!(&err, TtsError::NotInstalled { program: p, .. } if p == Path::new(program)),
            "{program}: {err}"
        );
        assert_eq!(err.code(), "tts.not_installed");
    }
    let err = missing_engine().synthesize("Hello.", None).unwrap_err();
    assert!(matches!(err, TtsError::NotInstalled { .. }), "{err}");
}

#[test]
fn a_hung_engine_is_killed_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // `exec`, so the killed process is the one holding the pipes.
    let engine = script_engine(
        dir.path(),
        "hang",
        "exec sleep 30",
        Duration::from_millis(300),
    );
    let started = Instant::now();
    let err = synthesize_script(&engine, "Hello.").unwrap_err();
    assert!(matches!(err, TtsError::Timeout { .. }), "{err}");
    assert_eq!(err.code(), "tts.timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn engine_failures_and_garbage_output_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = DEFAULT_TIMEOUT;
    let failing = script_engine(dir.path(), "fail", "echo 'out of memory' >&2; exit 3", t);
    let err = synthesize_script(&failing, "Hello.").unwrap_err();
    assert!(
        matches!(&err, TtsError::Failed { reason, .. } if reason.contains("out of memory")),
        "{err}"
    );
    let garbage = script_engine(dir.path(), "garbage", "echo 'this is not a wav'", t);
    let err = synthesize_script(&garbage, "Hello.").unwrap_err();
    assert!(matches!(err, TtsError::Decode { .. }), "{err}");
    let silent = script_engine(dir.path(), "silent", "exit 0", t);
    assert!(synthesize_script(&silent, "Hello.").is_err());
    // A flood of output is cut off at the limit, not buffered without end.
    let flood = script_engine(dir.path(), "flood", "exec cat /dev/zero", t);
    let err = synthesize_script(&flood, "Hello.").unwrap_err();
    assert!(matches!(err, TtsError::Failed { .. }), "{err}");
}

// ---- decoding and level ----

fn wav_bytes(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
    for &s in samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
    cursor.into_inner()
}

#[test]
fn a_streamed_wav_with_a_placeholder_length_reads_to_the_end_of_the_bytes() {
    let samples: Vec<i16> = (0..1000).map(|n| (n * 7 % 2000) as i16).collect();
    let mut bytes = wav_bytes(22050, 1, &samples);
    // What espeak-ng writes to a pipe: RIFF and data sizes of 0x7ffff000-ish.
    bytes[4..8].copy_from_slice(&0x7fff_f024u32.to_le_bytes());
    bytes[40..44].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
    assert_eq!(read_wav(&bytes).unwrap(), (samples, 22050));
    assert!(read_wav(&wav_bytes(22050, 2, &[0; 10])).is_err());
    assert!(read_wav(b"RIFF\0\0\0\0WAVE").is_err());
    assert!(read_wav(b"").is_err());
}

#[test]
fn in_memory_audio_is_resampled_to_8k_keeping_the_tone() {
    let tone: Vec<i16> = (0..22050)
        .map(|n| {
            let t = f64::from(n) / 22050.0;
            (10000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
        })
        .collect();
    let out = resample_mono(&tone, 22050).unwrap();
    assert_eq!(out.len(), 8000);
    let expected = 10000.0 / 32768.0 / 2f64.sqrt();
    let body = &out[800..7200];
    assert!(
        (rms(body) - expected).abs() < expected * 0.02,
        "{}",
        rms(body)
    );
    // Already at 8 kHz: untouched.
    assert_eq!(resample_mono(&tone[..100], RATE).unwrap(), &tone[..100]);
    assert!(resample_mono(&tone, 0).is_err());
}

#[test]
fn level_is_normalised_to_the_target_peak_with_bounded_gain() {
    let mut loud = vec![0, 32767, -32768, 1000];
    normalise(&mut loud);
    assert_eq!(
        loud.iter().map(|s| s.unsigned_abs()).max(),
        Some(TARGET_PEAK as u16)
    );
    let mut quiet = vec![0, 100, -100];
    normalise(&mut quiet);
    assert_eq!(quiet, [0, 400, -400]);
    let mut silence = vec![0; 10];
    normalise(&mut silence);
    assert_eq!(silence, [0; 10]);
}

// ---- the cache, against a fake engine ----

/// Audio of `text.len()` × 100 samples whose value encodes the voice; "fail" fails, and with
/// `fail_once` the first request fails whatever it is.
#[derive(Default)]
struct FakeEngine {
    calls: AtomicUsize,
    delay: Duration,
    fail_once: AtomicBool,
}

impl Tts for FakeEngine {
    fn name(&self) -> &str {
        "fake"
    }

    fn synthesize(&self, text: &str, voice: Option<&str>) -> Result<Vec<i16>, TtsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        thread::sleep(self.delay);
        if text == "fail" || self.fail_once.swap(false, Ordering::SeqCst) {
            return Err(TtsError::Failed {
                engine: "fake".into(),
                reason: "asked to fail".into(),
            });
        }
        let value = voice.map_or(1, |v| v.len() as i16 + 1);
        Ok(vec![value; text.len() * 100])
    }
}

fn fake(engine: FakeEngine, max_bytes: usize) -> (Arc<FakeEngine>, TtsCache) {
    let engine = Arc::new(engine);
    let cache = TtsCache::new(Arc::clone(&engine) as Arc<dyn Tts>, max_bytes);
    (engine, cache)
}

#[test]
fn a_cache_hit_returns_the_same_arc_and_keys_are_text_and_voice() {
    let (engine, cache) = fake(FakeEngine::default(), 1 << 20);
    let a = cache.get("hello", None).unwrap();
    let b = cache.get("hello", None).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(engine.calls.load(Ordering::SeqCst), 1);
    let en = cache.get("hello", Some("en")).unwrap();
    let de = cache.get("hello", Some("de")).unwrap();
    let other = cache.get("hello!", None).unwrap();
    assert_eq!((a[0], en[0], de[0], other.len()), (1, 3, 3, 600));
    assert!(!Arc::ptr_eq(&en, &de));
    assert_eq!(cache.len(), 4);
    assert_eq!(cache.syntheses(), 4);
    assert_eq!(cache.bytes(), (500 * 3 + 600) * 2);
    assert_eq!(cache.engine().name(), "fake");
}

#[test]
fn sixteen_concurrent_first_requests_synthesize_once() {
    let (engine, cache) = fake(
        FakeEngine {
            delay: Duration::from_millis(50),
            ..FakeEngine::default()
        },
        1 << 20,
    );
    let start = Barrier::new(16);
    let results: Vec<Arc<[i16]>> = thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    cache.get("welcome", Some("en")).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(engine.calls.load(Ordering::SeqCst), 1);
    assert!(results.iter().all(|r| Arc::ptr_eq(r, &results[0])));
}

#[test]
fn least_recently_used_entries_are_evicted_beyond_the_budget() {
    // Each 10-character text is 1,000 samples = 2,000 bytes; the budget holds two.
    let (engine, cache) = fake(FakeEngine::default(), 4000);
    let first = cache.get("aaaaaaaaaa", None).unwrap();
    cache.get("bbbbbbbbbb", None).unwrap();
    cache.get("aaaaaaaaaa", None).unwrap(); // a is now more recent than b
    cache.get("cccccccccc", None).unwrap(); // evicts b
    assert_eq!((cache.len(), cache.bytes()), (2, 4000));
    assert_eq!(engine.calls.load(Ordering::SeqCst), 3);
    assert!(Arc::ptr_eq(&first, &cache.get("aaaaaaaaaa", None).unwrap()));
    cache.get("bbbbbbbbbb", None).unwrap();
    assert_eq!(engine.calls.load(Ordering::SeqCst), 4);
    // An entry larger than the whole budget is returned but not kept.
    let big = cache.get(&"x".repeat(50), None).unwrap();
    assert_eq!(big.len(), 5000);
    assert!(cache.bytes() <= 4000);
}

#[test]
fn errors_are_returned_to_the_caller_and_not_cached() {
    let (engine, cache) = fake(
        FakeEngine {
            fail_once: AtomicBool::new(true),
            ..FakeEngine::default()
        },
        1 << 20,
    );
    let err = cache.get("hello", None).unwrap_err();
    assert_eq!(err.code(), "tts.failed");
    assert!(cache.is_empty());
    cache.get("hello", None).unwrap();
    assert!(cache.get("fail", None).is_err());
    assert!(cache.get("fail", None).is_err());
    assert_eq!(engine.calls.load(Ordering::SeqCst), 4);
    assert_eq!(cache.len(), 1);
}

#[test]
fn the_cache_refuses_bad_requests_without_calling_the_engine() {
    let (engine, cache) = fake(FakeEngine::default(), 1 << 20);
    assert!(matches!(cache.get("", None), Err(TtsError::EmptyText)));
    assert!(matches!(
        cache.get(&"a".repeat(MAX_TEXT_CHARS + 1), None),
        Err(TtsError::TooLong { .. })
    ));
    assert!(matches!(
        cache.get("hello", Some("--help")),
        Err(TtsError::BadVoice { .. })
    ));
    assert_eq!(engine.calls.load(Ordering::SeqCst), 0);
    assert!(cache.is_empty());
}

#[test]
fn engines_the_cache_and_errors_cross_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<EspeakNg>();
    shared::<TtsCache>();
    shared::<TtsError>();
    shared::<Arc<dyn Tts>>();
}
