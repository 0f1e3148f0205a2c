//! Config reload (SIGHUP, or `POST /api/v1/config/reload` by an admin): the config file is read
//! and checked as a start checks it, and what can change under running calls changes at once:
//! operators added, changed (name, password, `max_calls`, dialling rights, skills, `supervisor`)
//! or removed, and queue members (in ring order). Everything else (queues added or removed, a
//! queue's strategy or timeouts, trunks, `[sip]`, …) is named in the answer as waiting for a
//! restart, and keeps its value until then.
//!
//! Decision: a file with an error changes nothing (a TOML error names file:line:column); a change
//! refused on the way (a member this process does not know) is reported and the rest still
//! applies. Changes apply in an order that keeps every step valid: operators added or changed,
//! skills, supervisors, queue members, then operators removed (a removed operator leaves the
//! queues first). A removed operator's calls that are up go on to their end; their phone can no
//! longer register, call or be rung, and its bindings are forgotten. A new password holds for
//! the next challenge; a phone registered with the old one stays registered until it renews. A reload compares the file with what the last start or reload took from
//! it: a queue whose members the file changes gets the file's list (replacing what the API set
//! since), one whose members the file leaves alone keeps what the API set. A change that waits
//! for a restart is named again at each reload until then.

use crate::config::{FileConfig, OperatorConfig};
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
    /// An operator added (`added`) or changed beyond skills and the supervisor flag, taken as
    /// the file has them.
    Operator {
        config: Box<OperatorConfig>,
        added: bool,
    },
    /// An operator no longer in the file.
    OperatorRemoved(String),
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
            // (Never the settings themselves: a password is among them.)
            LiveChange::Operator { config, added } => {
                let what = if *added { "added" } else { "changed" };
                format!("operator {}: {what}", config.extension)
            }
            LiveChange::OperatorRemoved(ext) => format!("operator {ext}: removed"),
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
            LiveChange::Operator { config: new, .. } => {
                match config
                    .operators
                    .iter_mut()
                    .find(|o| o.extension == new.extension)
                {
                    Some(op) => *op = (**new).clone(),
                    None => config.operators.push((**new).clone()),
                }
            }
            LiveChange::OperatorRemoved(ext) => config.operators.retain(|o| &o.extension != ext),
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

/// The changes from `in_force` to `file` that apply live, in the order they apply, and what
/// else differs (by section).
pub fn plan(in_force: &FileConfig, file: &FileConfig) -> (Vec<LiveChange>, Vec<String>) {
    let (mut operators, mut skills, mut members, mut removed) = (vec![], vec![], vec![], vec![]);
    let mut restart = Vec::new();
    for q in &file.queues {
        let Some(old) = in_force.queues.iter().find(|o| o.name == q.name) else {
            restart.push(format!("queue {}: added", q.name));
            continue;
        };
        if old.members != q.members {
            members.push(LiveChange::Members {
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
            operators.push(LiveChange::Operator {
                config: Box::new(op.clone()),
                added: true,
            });
            continue;
        };
        if old.skills != op.skills {
            skills.push(LiveChange::Skills {
                ext: op.extension.clone(),
                skills: op.skills.clone(),
            });
        }
        let mut same = op.clone();
        same.skills = old.skills.clone();
        same.supervisor = old.supervisor;
        if same != *old {
            operators.push(LiveChange::Operator {
                config: Box::new(same),
                added: false,
            });
        }
    }
    for old in &in_force.operators {
        if !file.operators.iter().any(|o| o.extension == old.extension) {
            removed.push(LiveChange::OperatorRemoved(old.extension.clone()));
        }
    }
    let supervisors = |c: &FileConfig| -> BTreeSet<String> {
        c.operators
            .iter()
            .filter(|o| o.supervisor)
            .map(|o| o.extension.clone())
            .collect()
    };
    let mut live = operators;
    live.append(&mut skills);
    if supervisors(file) != supervisors(in_force) {
        live.push(LiveChange::Supervisors(supervisors(file)));
    }
    live.append(&mut members);
    live.append(&mut removed);
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
    /// Where operators' rows are kept (what `GET /api/v1/operators` lists).
    store: crate::store::Store,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish()
    }
}

impl Reloader {
    pub fn new(
        path: Option<PathBuf>,
        in_force: FileConfig,
        sip: mpsc::Sender<SipCommand>,
        store: crate::store::Store,
    ) -> Self {
        Reloader {
            path,
            in_force: Mutex::new(in_force),
            sip,
            store,
        }
    }

    /// An applied operator change, on the operator's row: a failure is logged and reported, the
    /// change stays in force (the row only lists the operator).
    async fn store_operator_change(&self, realm: &str, change: &LiveChange) -> Result<(), String> {
        let result = match change {
            LiveChange::Operator { config, .. } => {
                let secret = crate::sip::registrar::OperatorSecret::from_password(
                    &config.extension,
                    realm,
                    &config.password,
                );
                let row = super::operator_record(config, realm, &secret);
                self.store.upsert_operator(&row).await
            }
            LiveChange::OperatorRemoved(ext) => self.store.delete_operator(ext).await,
            _ => return Ok(()),
        };
        result.map_err(|e| format!("{}: not stored: {e}", change.describe()))
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
        let realm = in_force.sip.realm.clone();
        for (change, result) in changes.iter().zip(results) {
            match result {
                Ok(()) => {
                    change.apply_to(&mut in_force);
                    report.applied.push(change.describe());
                    if let Err(why) = self.store_operator_change(&realm, change).await {
                        tracing::warn!(%why, "operator change not stored");
                        report.failed.push(why);
                    }
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
    fn operators_are_added_changed_and_removed_live_in_an_order_that_keeps_each_step_valid() {
        let old = config("[[queues]]\nname = \"sales\"\nmembers = [\"101\", \"102\"]\n");
        let mut new = old.clone();
        new.operators[0].skills = vec!["billing".into()];
        new.operators[1].supervisor = true;
        new.operators[1].password = "changed".into();
        let mut third = new.operators[0].clone();
        third.extension = "103".into();
        third.supervisor = true;
        new.operators.push(third.clone());
        new.queues[0].members = vec!["103".into(), "101".into()];
        new.operators.remove(0);
        // 101 leaves (after the queue stops naming it); 102's password changed; 103 is new.
        let mut changed = old.operators[1].clone();
        changed.password = "changed".into();
        let (live, restart) = plan(&old, &new);
        assert_eq!(
            live,
            vec![
                LiveChange::Operator {
                    config: Box::new(changed),
                    added: false
                },
                LiveChange::Operator {
                    config: Box::new(third),
                    added: true
                },
                LiveChange::Supervisors(["102".to_string(), "103".to_string()].into()),
                LiveChange::Members {
                    queue: "sales".into(),
                    members: vec!["103".into(), "101".into()],
                },
                LiveChange::OperatorRemoved("101".into()),
            ]
        );
        assert!(restart.is_empty(), "{restart:?}");
        let described: Vec<String> = live.iter().map(LiveChange::describe).collect();
        assert!(
            described
                .iter()
                .all(|d| !d.contains("changed\"") && !d.contains("p2")),
            "no password in the report: {described:?}"
        );
        // Once applied, the same file plans nothing again.
        let mut in_force = old.clone();
        for change in &live {
            change.apply_to(&mut in_force);
        }
        let (again, restart_again) = plan(&in_force, &new);
        assert!(again.is_empty(), "{again:?}");
        assert!(restart_again.is_empty(), "{restart_again:?}");
        // Skills alone are a change of their own.
        let mut skilled = in_force.clone();
        skilled.operators[0].skills = vec!["ukrainian".into()];
        let (live, _) = plan(&in_force, &skilled);
        assert_eq!(
            live,
            vec![LiveChange::Skills {
                ext: "102".into(),
                skills: vec!["ukrainian".into()]
            }]
        );
    }
}
