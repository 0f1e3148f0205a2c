//! Config reload (SIGHUP, or `POST /api/v1/config/reload` by an admin): the config file is read
//! and checked as a start checks it, and what can change under running calls changes at once:
//! queue members (in ring order), operators' skills and `supervisor` flags. Everything else
//! (queues or operators added or removed, a queue's strategy or timeouts, passwords, trunks,
//! `[sip]`, …) is named in the answer as waiting for a restart, and keeps its value until then.
//!
//! Decision: a file with an error changes nothing (a TOML error names file:line:column); a member
//! change the queue refuses (an operator this process does not know yet) is reported and the
//! rest still applies. A reload compares the file with what the last start or reload took from
//! it: a queue whose members the file changes gets the file's list (replacing what the API set
//! since), one whose members the file leaves alone keeps what the API set. A change that waits
//! for a restart is named again at each reload until then.

use crate::config::FileConfig;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::sip_task::SipCommand;

/// One change a reload makes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveChange {
    /// A queue's members, in ring order.
    Members { queue: String, members: Vec<String> },
    /// An operator's skills.
    Skills { ext: String, skills: Vec<String> },
    /// Who may supervise.
    Supervisors(BTreeSet<String>),
}

impl LiveChange {
    fn describe(&self) -> String {
        match self {
            LiveChange::Members { queue, members } => {
                format!("queue {queue}: members {}", members.join(", "))
            }
            LiveChange::Skills { ext, skills } => {
                format!("operator {ext}: skills [{}]", skills.join(", "))
            }
            LiveChange::Supervisors(set) => {
                let list: Vec<&str> = set.iter().map(String::as_str).collect();
                format!("supervisors: [{}]", list.join(", "))
            }
        }
    }

    /// `config` with this change made.
    fn apply_to(&self, config: &mut FileConfig) {
        match self {
            LiveChange::Members { queue, members } => {
                if let Some(q) = config.queues.iter_mut().find(|q| &q.name == queue) {
                    q.members = members.clone();
                }
            }
            LiveChange::Skills { ext, skills } => {
                if let Some(op) = config.operators.iter_mut().find(|o| &o.extension == ext) {
                    op.skills = skills.clone();
                }
            }
            LiveChange::Supervisors(set) => {
                for op in &mut config.operators {
                    op.supervisor = set.contains(&op.extension);
                }
            }
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ReloadReport {
    /// The changes now in force.
    pub applied: Vec<String>,
    /// Changes refused, with why (they stay as they were).
    pub failed: Vec<String>,
    /// What differs from the file but takes a restart.
    pub restart_needed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    #[error("the server was started without a config file (--config): nothing to reload")]
    NoFile,
    #[error("{0}")]
    Invalid(String),
    #[error("the SIP task is not running")]
    Unavailable,
}

/// The changes from `in_force` to `file` that apply live, and what else differs (by section).
pub fn plan(in_force: &FileConfig, file: &FileConfig) -> (Vec<LiveChange>, Vec<String>) {
    let mut live = Vec::new();
    let mut restart = Vec::new();
    for q in &file.queues {
        let Some(old) = in_force.queues.iter().find(|o| o.name == q.name) else {
            restart.push(format!("queue {}: added", q.name));
            continue;
        };
        if old.members != q.members {
            live.push(LiveChange::Members {
                queue: q.name.clone(),
                members: q.members.clone(),
            });
        }
        let mut same_members = q.clone();
        same_members.members = old.members.clone();
        if format!("{same_members:?}") != format!("{old:?}") {
            restart.push(format!("queue {}: settings other than members", q.name));
        }
    }
    for old in &in_force.queues {
        if !file.queues.iter().any(|q| q.name == old.name) {
            restart.push(format!("queue {}: removed", old.name));
        }
    }
    for op in &file.operators {
        let Some(old) = in_force
            .operators
            .iter()
            .find(|o| o.extension == op.extension)
        else {
            restart.push(format!("operator {}: added", op.extension));
            continue;
        };
        if old.skills != op.skills {
            live.push(LiveChange::Skills {
                ext: op.extension.clone(),
                skills: op.skills.clone(),
            });
        }
        let mut same = op.clone();
        same.skills = old.skills.clone();
        same.supervisor = old.supervisor;
        if format!("{same:?}") != format!("{old:?}") {
            restart.push(format!(
                "operator {}: settings other than skills and supervisor",
                op.extension
            ));
        }
    }
    for old in &in_force.operators {
        if !file.operators.iter().any(|o| o.extension == old.extension) {
            restart.push(format!("operator {}: removed", old.extension));
        }
    }
    let supervisors = |c: &FileConfig| -> BTreeSet<String> {
        c.operators
            .iter()
            .filter(|o| o.supervisor)
            .map(|o| o.extension.clone())
            .collect()
    };
    // Only operators this process knows can supervise; a new one's flag waits with them.
    let known: BTreeSet<String> = in_force
        .operators
        .iter()
        .map(|o| o.extension.clone())
        .collect();
    let wanted: BTreeSet<String> = supervisors(file).intersection(&known).cloned().collect();
    if wanted != supervisors(in_force) {
        live.push(LiveChange::Supervisors(wanted));
    }
    for ((name, old), (_, new)) in sections(in_force).iter().zip(sections(file).iter()) {
        if old != new {
            restart.push(format!("{name}: changed"));
        }
    }
    (live, restart)
}

/// The file's other sections, each as text to compare (never shown: tokens are in it).
fn sections(c: &FileConfig) -> Vec<(&'static str, String)> {
    vec![
        ("node_id", format!("{:?}", c.node_id)),
        ("[sip]", format!("{:?}", c.sip)),
        ("[shutdown]", format!("{:?}", c.shutdown)),
        ("[calls]", format!("{:?}", c.calls)),
        ("[crm]", format!("{:?}", c.crm)),
        ("[crm_sync]", format!("{:?}", c.crm_sync)),
        ("[retention]", format!("{:?}", c.retention)),
        ("[web]", format!("{:?}", c.web)),
        ("[http]", format!("{:?}", c.http)),
        ("[broadcasts]", format!("{:?}", c.broadcasts)),
        ("[[api_tokens]]", format!("{:?}", c.api_tokens)),
        ("[[trunks]]", format!("{:?}", c.trunks)),
        ("[routes]", format!("{:?}", c.routes)),
        ("[dialplan]", format!("{:?}", c.dialplan)),
    ]
}

/// Reads the config file again and has the SIP task apply what can change live; one reload at a
/// time.
pub struct Reloader {
    path: Option<PathBuf>,
    in_force: Mutex<FileConfig>,
    sip: mpsc::Sender<SipCommand>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish()
    }
}

impl Reloader {
    pub fn new(path: Option<PathBuf>, in_force: FileConfig, sip: mpsc::Sender<SipCommand>) -> Self {
        Reloader {
            path,
            in_force: Mutex::new(in_force),
            sip,
        }
    }

    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let result = self.reload_file().await;
        let outcome = match &result {
            Ok(report) if report.failed.is_empty() => "ok",
            Ok(_) => "partial",
            Err(_) => "error",
        };
        metrics::counter!("openline_config_reloads_total", "result" => outcome).increment(1);
        match &result {
            Ok(report) => tracing::info!(
                applied = ?report.applied,
                failed = ?report.failed,
                restart_needed = ?report.restart_needed,
                "config reloaded"
            ),
            Err(e) => tracing::warn!(error = %e, "config not reloaded"),
        }
        result
    }

    async fn reload_file(&self) -> Result<ReloadReport, ReloadError> {
        let path = self.path.clone().ok_or(ReloadError::NoFile)?;
        // Held from the read on: two reloads apply their files in the order they read them.
        let mut in_force = self.in_force.lock().await;
        let file = tokio::task::spawn_blocking(move || {
            let file = FileConfig::read(&path)?;
            file.validate()?;
            Ok::<_, crate::config::ConfigError>(file)
        })
        .await
        .map_err(|e| ReloadError::Invalid(e.to_string()))?
        .map_err(|e| ReloadError::Invalid(e.to_string()))?;
        let (changes, restart_needed) = plan(&in_force, &file);
        let mut report = ReloadReport {
            restart_needed,
            ..Default::default()
        };
        if changes.is_empty() {
            return Ok(report);
        }
        let (tx, rx) = oneshot::channel();
        self.sip
            .send(SipCommand::Reload {
                changes: changes.clone(),
                reply: tx,
            })
            .await
            .map_err(|_| ReloadError::Unavailable)?;
        let results = rx.await.map_err(|_| ReloadError::Unavailable)?;
        for (change, result) in changes.iter().zip(results) {
            match result {
                Ok(()) => {
                    change.apply_to(&mut in_force);
                    report.applied.push(change.describe());
                }
                Err(why) => report.failed.push(format!("{}: {why}", change.describe())),
            }
        }
        Ok(report)
    }
}

/// SIGHUP caught from now on (its default would end the process): called first thing at start,
/// the reloads begin once the server is up ([`spawn_on_hangup`]).
#[cfg(unix)]
pub fn catch_hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    let caught = signal(SignalKind::hangup());
    if let Err(e) = &caught {
        tracing::warn!(error = %e, "SIGHUP cannot be caught: reload through the API");
    }
    caught.ok()
}

/// Reloads on every SIGHUP caught by [`catch_hangups`] until `stop`.
#[cfg(unix)]
pub fn spawn_on_hangup(
    hangups: Option<tokio::signal::unix::Signal>,
    reloader: Arc<Reloader>,
    stop: CancellationToken,
) {
    let Some(mut hangups) = hangups else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = hangups.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading the config");
                    let _ = reloader.reload().await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> FileConfig {
        let base = "[[operators]]\nextension = \"101\"\nname = \"A\"\npassword = \"p1\"\n\
                    [[operators]]\nextension = \"102\"\nname = \"B\"\npassword = \"p2\"\n";
        FileConfig::parse(&format!("{base}{text}")).unwrap()
    }

    #[test]
    fn a_plan_applies_members_skills_and_supervisors_and_names_the_rest() {
        let queue = |members: &str, extra: &str| {
            format!("[[queues]]\nname = \"sales\"\nmembers = [{members}]\n{extra}")
        };
        let old = config(&queue("\"101\"", ""));
        let table: &[(&str, String, Vec<LiveChange>, Vec<&str>)] = &[
            ("nothing changed", queue("\"101\"", ""), vec![], vec![]),
            (
                "members reordered and added",
                queue("\"102\", \"101\"", ""),
                vec![LiveChange::Members {
                    queue: "sales".into(),
                    members: vec!["102".into(), "101".into()],
                }],
                vec![],
            ),
            (
                "a strategy waits for a restart",
                queue("\"101\"", "strategy = \"all\"\n"),
                vec![],
                vec!["queue sales: settings other than members"],
            ),
            (
                "a new queue and a new section",
                format!(
                    "{}[[queues]]\nname = \"b\"\nmembers = [\"102\"]\n[calls]\nrecord = true\n",
                    queue("\"101\"", "")
                ),
                vec![],
                vec!["queue b: added", "[calls]: changed"],
            ),
            (
                "the queue removed",
                String::new(),
                vec![],
                vec!["queue sales: removed"],
            ),
        ];
        for (what, text, live, restart) in table {
            let (got_live, got_restart) = plan(&old, &config(text));
            assert_eq!(&got_live, live, "{what}");
            assert_eq!(got_restart, *restart, "{what}");
        }
    }

    #[test]
    fn operators_skills_and_supervisor_flags_apply_live_and_new_operators_wait() {
        let old = config("");
        let mut new = old.clone();
        new.operators[0].skills = vec!["billing".into()];
        new.operators[1].supervisor = true;
        new.operators[1].password = "changed".into();
        let mut third = new.operators[0].clone();
        third.extension = "103".into();
        third.supervisor = true;
        new.operators.push(third);
        let (live, restart) = plan(&old, &new);
        assert_eq!(
            live,
            vec![
                LiveChange::Skills {
                    ext: "101".into(),
                    skills: vec!["billing".into()],
                },
                LiveChange::Supervisors(["102".to_string()].into()),
            ]
        );
        assert_eq!(
            restart,
            vec![
                "operator 102: settings other than skills and supervisor",
                "operator 103: added",
            ]
        );
        // Once applied, the same file plans no live change again; the restart items stay.
        let mut in_force = old.clone();
        for change in &live {
            change.apply_to(&mut in_force);
        }
        let (again, restart_again) = plan(&in_force, &new);
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(restart_again, restart);
    }
}
