//! The managers' page in a real browser (acceptance 3): tests/browser/web.mjs drives Debian's
//! headless chromium with playwright-core (both installed by scripts/test.sh). Screenshots are
//! kept under `CARGO_TARGET_TMPDIR/artefacts/web`.
//!
//! The server has one trunk so that broadcasts can be created; nobody answers on it, and the
//! browser test never starts a campaign (they stay drafts until it cancels them).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const EVIL_NAME: &str =
    "<script>window.__openlineXss=1;alert(1)</script><img src=x onerror=alert(2)>";

/// Broadcasts need a trunk; port 9 (discard) is never called, no campaign is started.
const TRUNK: &str = "[[trunks]]\nname = \"carrier\"\nproxy = \"127.0.0.1:9\"\n";

#[test]
fn sign_in_filter_open_a_call_play_its_recording_and_run_broadcasts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let driver = root.join("tests/browser/node_modules/playwright-core");
    assert!(
        driver.exists() && Path::new("/usr/bin/chromium").exists(),
        "run scripts/test.sh: it installs chromium and playwright-core (npm ci in tests/browser)"
    );
    let server = Server::start(TRUNK);
    place_call(server.sip, "web-1", "+380441234567", "Olena", "100");
    place_call(server.sip, "web-2", "+380501234567", EVIL_NAME, "100");
    let calls = server.wait_for_calls("", "two calls", |c| c.len() == 2);
    let call = calls
        .iter()
        .find(|c| c["caller"] == "+380441234567")
        .expect("the first call");
    add_recording(&server, call["id"].as_str().unwrap(), 3, None);
    wait_for_json(&server, "/api/v1/leads", "two leads", |b| {
        b["items"].as_array().is_some_and(|a| a.len() == 2)
    });

    let artefacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artefacts/web");
    let _ = std::fs::remove_dir_all(&artefacts);
    let mut child = Command::new("node")
        .arg(root.join("tests/browser/web.mjs"))
        .env("OPENLINE_URL", format!("http://{}", server.http))
        .env("OPENLINE_TOKEN", MANAGER_TOKEN)
        .env("OPENLINE_NUMBER", "+380441234567")
        .env("OPENLINE_EVIL_NAME", EVIL_NAME)
        .env("OPENLINE_AUDIO", root.join("sounds/beep.wav"))
        .env("OPENLINE_ARTEFACTS", &artefacts)
        .spawn()
        .expect("node must be installed");
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the browser test did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("screenshots: {}", artefacts.display());
    assert!(
        status.success(),
        "browser test failed; screenshots in {}",
        artefacts.display()
    );
}
