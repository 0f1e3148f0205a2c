//! The flows in force: loaded from `ivr-flows/` at start and reloaded when a file there changes
//! (file-system notifications, debounced). A file that fails to load keeps its previous version
//! serving; new calls get the new snapshot, running calls keep the one they started with.

use crate::ivr::{self, FlowSet, LoadReport};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Edits often come as several events (truncate, write, rename): wait this long for quiet.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Where flows and their sounds live, and whether `say` can work.
#[derive(Clone)]
pub struct FlowSource {
    pub dir: PathBuf,
    pub sounds: PathBuf,
    pub tts_available: bool,
}

impl FlowSource {
    pub fn load(&self) -> LoadReport {
        let sounds = self.sounds.clone();
        let exists = move |name: &str| sounds.join(name).is_file();
        ivr::load_dir(&self.dir, &exists, self.tts_available)
    }
}

/// Logs a load's diagnostics; returns how many errors it had.
pub fn log_report(report: &LoadReport) -> usize {
    for e in &report.errors {
        tracing::error!(diagnostic = %e, "flow rejected");
    }
    for w in &report.warnings {
        tracing::warn!(diagnostic = %w, "flow warning");
    }
    report.errors.len()
}

/// The first load at start.
pub fn initial(source: &FlowSource) -> Arc<FlowSet> {
    if !source.dir.is_dir() {
        tracing::warn!(dir = %source.dir.display(), "no flows directory; calls will get 404/503");
        return Arc::new(FlowSet::new(Vec::new()));
    }
    let report = source.load();
    log_report(&report);
    let set = FlowSet::new(report.flows.clone());
    tracing::info!(flows = set.len(), dir = %source.dir.display(), "flows loaded");
    metrics::gauge!("openline_flows_loaded").set(set.len() as f64);
    Arc::new(set)
}

/// Watches the flows directory and publishes a new snapshot after each change.
pub fn spawn_reloader(
    source: FlowSource,
    flows: watch::Sender<Arc<FlowSet>>,
    token: CancellationToken,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the files (our own reload) shows up as access events: only changes count.
        let changed = event.is_ok_and(|e| {
            matches!(
                e.kind,
                notify::EventKind::Create(_)
                    | notify::EventKind::Modify(_)
                    | notify::EventKind::Remove(_)
            )
        });
        if changed {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the flows directory; edits need a restart");
            return;
        }
    };
    if let Err(e) = notify::Watcher::watch(
        &mut watcher,
        &source.dir,
        notify::RecursiveMode::NonRecursive,
    ) {
        tracing::error!(error = %e, dir = %source.dir.display(), "cannot watch the flows directory");
        return;
    }
    tokio::spawn(async move {
        let _watcher = watcher; // dropped (and stopped) with the task
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                event = rx.recv() => if event.is_none() { break },
            }
            // Debounce: wait until the directory has been quiet for a moment.
            loop {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let loader = source.clone();
            let Ok(report) = tokio::task::spawn_blocking(move || loader.load()).await else {
                continue;
            };
            let errors = log_report(&report);
            let next = flows.borrow().reload(&report);
            tracing::info!(flows = next.len(), errors, "flows reloaded");
            let result = if errors == 0 { "ok" } else { "errors" };
            metrics::counter!("openline_flow_reloads_total", "result" => result).increment(1);
            metrics::gauge!("openline_flows_loaded").set(next.len() as f64);
            flows.send_replace(Arc::new(next));
        }
    });
}

/// `openline check-flows`: validates files or directories with a progress line per file and a
/// summary; the process exits 1 when any file has an error.
pub fn check(paths: &[PathBuf], sounds: &Path, tts_available: bool) -> bool {
    let sounds = sounds.to_path_buf();
    let exists = move |name: &str| sounds.join(name).is_file();
    let report = ivr::load_paths(paths, &exists, tts_available);
    let total = report.files.len();
    for (i, file) in report.files.iter().enumerate() {
        let name = file.display().to_string();
        let errors = report.errors.iter().filter(|d| d.file == name).count();
        let warnings = report.warnings.iter().filter(|d| d.file == name).count();
        let state = match (errors, warnings) {
            (0, 0) => "ok".to_string(),
            (0, w) => format!("ok, {w} warning(s)"),
            (e, _) => format!("{e} error(s)"),
        };
        println!("[{}/{total}] {name}: {state}", i + 1);
    }
    for d in report.errors.iter().chain(&report.warnings) {
        println!("{d}");
    }
    println!(
        "{} flow(s) in {total} file(s): {} error(s), {} warning(s)",
        report.flows.len(),
        report.errors.len(),
        report.warnings.len()
    );
    report.errors.is_empty()
}
