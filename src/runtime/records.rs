//! The call records path: the call path describes what happened as `RecordOp`s; `RecordsTx`
//! turns each into a self-contained `RecordEntry`, numbers it and appends it to the journal on
//! disk before handing it to the writer task, which applies batches in one transaction each
//! with the journal checkpoint. So the SIP loop never waits on the database, SQLite sees one
//! writer, and no record is lost or written twice: not when the database is down for a while
//! (the writer retries without dropping), not when the process is killed (the next start
//! replays what the database does not have).
//!
//! ```text
//! call path ──RecordOp──> RecordsTx ──append──> records-journal/*.jsonl
//!                             └──(seq, entry)──> writer ──batch + checkpoint──> Store
//! ```
//!
//! Memory stays bounded: when the writer falls `max_backlog` entries behind, admission refuses
//! new calls with 503 while the calls up go on being recorded.

mod journal;
mod writer;

use crate::sip::dialog::LegId;
use crate::store::{BindingRecord, NewCall, NewLeg, NewRecording, RecordEntry, Store};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

pub use writer::{ReplayError, run};

#[derive(Debug, Clone)]
pub enum RecordOp {
    CallStarted {
        leg: LegId,
        call: NewCall,
        sip_leg: NewLeg,
    },
    CallAnswered {
        leg: LegId,
        at: DateTime<Utc>,
    },
    CallEnded {
        leg: LegId,
        at: DateTime<Utc>,
        disposition: String,
        hangup_by: Option<&'static str>,
        final_status: Option<i32>,
    },
    CallEvent {
        leg: LegId,
        at: DateTime<Utc>,
        kind: &'static str,
        detail: serde_json::Value,
    },
    /// The IVR flow of the call and its path so far (JSON).
    CallFlow {
        leg: LegId,
        flow: String,
        path: serde_json::Value,
    },
    CallRating {
        leg: LegId,
        rating: u8,
    },
    /// The voice broadcast that placed the call, and its attempt's result (JSON; null until
    /// the call ends).
    CallBroadcast {
        leg: LegId,
        broadcast_id: String,
        result: serde_json::Value,
    },
    /// A leg we placed for a call (an operator rung by the flow).
    LegStarted {
        caller_leg: LegId,
        leg: LegId,
        sip_call_id: String,
        remote_uri: String,
        remote_addr: String,
        transport: &'static str,
    },
    LegAnswered {
        leg: LegId,
        at: DateTime<Utc>,
    },
    LegEnded {
        leg: LegId,
        at: DateTime<Utc>,
        status: Option<i32>,
    },
    RecordingStarted {
        leg: LegId,
        id: String,
        /// Relative to the data directory.
        path: String,
        at: DateTime<Utc>,
    },
    RecordingFinished {
        id: String,
        duration_ms: i64,
        size_bytes: i64,
        at: DateTime<Utc>,
    },
    RecordingFailed {
        id: String,
        error: String,
        at: DateTime<Utc>,
    },
    /// The caller joined a queue (again, on overflow into another).
    CallQueued {
        leg: LegId,
        queue: String,
        position: usize,
        at: DateTime<Utc>,
    },
    /// The caller left the queue: bridged to `operator`, abandoned or overflowed, after `waited`.
    CallQueueOutcome {
        leg: LegId,
        queue: String,
        operator: Option<String>,
        waited: Duration,
        /// `answered` | `abandoned` | `overflow`.
        outcome: &'static str,
    },
    /// The server changed an operator's status (missed rings).
    OperatorStatus {
        ext: String,
        status: &'static str,
        reason: Option<String>,
        at: DateTime<Utc>,
    },
    BindingUpsert(BindingRecord),
    BindingRemove {
        extension: String,
        contact_uri: String,
    },
    /// The call's media task has finished: nothing more will be written for this leg.
    Forget {
        leg: LegId,
    },
}

/// The sending side of the records path, shared by every task that records something. The
/// writer's queue closes when the last clone is dropped.
#[derive(Clone)]
pub struct RecordsTx {
    sender: Arc<Mutex<SendState>>,
    shared: Arc<Shared>,
}

/// What the senders and the writer both use.
struct Shared {
    journal: Mutex<journal::JournalFile>,
    /// The last append failed (and so did opening a fresh segment): entries live only in memory
    /// until an append works again; admission refuses new calls meanwhile.
    journal_down: AtomicBool,
    /// The last sequence number handed out.
    appended: AtomicU64,
    /// The last sequence number whose rows are committed (set by the writer).
    applied: AtomicU64,
    /// Since when the writer has been trying to commit its current batch (health).
    writer: WriterClock,
    dir: PathBuf,
    node_id: String,
}

/// Held while an op is numbered, journaled and queued, so the queue's order is the numbers'.
struct SendState {
    next_seq: u64,
    /// Endpoint leg → (call id, the leg's SIP Call-ID): the names rows have in the database.
    legs: HashMap<LegId, (String, String)>,
    to_writer: mpsc::UnboundedSender<(u64, RecordEntry)>,
}

/// The writer's end of the path.
pub struct RecordsRx {
    entries: mpsc::UnboundedReceiver<(u64, RecordEntry)>,
    shared: Arc<Shared>,
}

impl RecordsTx {
    /// Replays what the journal in `dir` holds beyond the database's checkpoint for `node_id`,
    /// deletes the replayed segments and opens a new one. Runs before anything else writes.
    pub async fn open(
        store: &Store,
        node_id: &str,
        dir: &Path,
    ) -> Result<(RecordsTx, RecordsRx), ReplayError> {
        let last = writer::replay(store, node_id, dir).await?;
        let file =
            journal::JournalFile::create(dir, last + 1).map_err(|source| ReplayError::Journal {
                path: dir.to_path_buf(),
                source,
            })?;
        let (to_writer, entries) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            journal: Mutex::new(file),
            journal_down: AtomicBool::new(false),
            appended: AtomicU64::new(last),
            applied: AtomicU64::new(last),
            writer: WriterClock::default(),
            dir: dir.to_path_buf(),
            node_id: node_id.to_owned(),
        });
        let sender = Arc::new(Mutex::new(SendState {
            next_seq: last + 1,
            legs: HashMap::new(),
            to_writer,
        }));
        Ok((
            RecordsTx {
                sender,
                shared: shared.clone(),
            },
            RecordsRx { entries, shared },
        ))
    }

    /// Records `op`: journaled to disk and queued for the writer before this returns. An op of
    /// a leg that was never recorded (or already forgotten) is dropped, as its rows cannot be
    /// named. Fails only when the writer has stopped (shutdown).
    pub fn send(&self, op: RecordOp) -> Result<(), RecordsClosed> {
        let mut state = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = resolve(&mut state.legs, op) else {
            return Ok(());
        };
        let seq = state.next_seq;
        state.next_seq += 1;
        {
            let mut journal = self
                .shared
                .journal
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // A full disk or a removed directory: a fresh segment is tried once per entry.
            let appended = journal.append(seq, &entry).or_else(|_| {
                journal.roll(seq)?;
                journal.append(seq, &entry)
            });
            let was_down = self
                .shared
                .journal_down
                .swap(appended.is_err(), Ordering::AcqRel);
            match appended {
                Err(error) => {
                    metrics::counter!("openline_records_journal_failures_total").increment(1);
                    if !was_down {
                        tracing::error!(%error, seq, "records journal append failed: entries live only in memory and new calls are refused until it works again");
                    }
                }
                Ok(()) if was_down => tracing::warn!(seq, "records journal appends work again"),
                Ok(()) => {}
            }
        }
        state
            .to_writer
            .send((seq, entry))
            .map_err(|_| RecordsClosed)?;
        self.shared.appended.store(seq, Ordering::Release);
        Ok(())
    }

    /// How long the writer has been on its current batch (health: a database that has not taken
    /// a batch for long is a problem even though nothing is lost).
    pub fn writer_clock(&self) -> WriterClock {
        self.shared.writer.clone()
    }

    /// Whether the journal is failing (entries are not on disk): no new calls meanwhile. While
    /// it is, each question tries a fresh segment, so a node with no calls up (nothing else
    /// appends) takes calls again once the disk has room.
    pub fn journal_down(&self) -> bool {
        if !self.shared.journal_down.load(Ordering::Acquire) {
            return false;
        }
        let state = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let mut journal = self
            .shared
            .journal
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if journal.roll(state.next_seq).is_ok() {
            self.shared.journal_down.store(false, Ordering::Release);
            tracing::warn!("records journal writable again");
            return false;
        }
        true
    }

    /// Entries handed out and not yet committed.
    pub fn backlog(&self) -> u64 {
        let appended = self.shared.appended.load(Ordering::Acquire);
        appended.saturating_sub(self.shared.applied.load(Ordering::Acquire))
    }
}

/// Since when the writer has been busy with one batch; `None` while it waits for entries.
#[derive(Debug, Clone)]
pub struct WriterClock {
    origin: std::time::Instant,
    /// Milliseconds after `origin`, plus 1; 0 while idle.
    busy_since: Arc<AtomicU64>,
}

impl Default for WriterClock {
    fn default() -> Self {
        WriterClock {
            origin: std::time::Instant::now(),
            busy_since: Arc::default(),
        }
    }
}

impl WriterClock {
    fn start(&self) {
        let ms = self.origin.elapsed().as_millis() as u64 + 1;
        self.busy_since.store(ms, Ordering::Release);
    }

    fn stop(&self) {
        self.busy_since.store(0, Ordering::Release);
    }

    /// How long the current batch has been waiting for the database; `None` when idle.
    pub fn busy_for(&self) -> Option<Duration> {
        let since = self.busy_since.load(Ordering::Acquire);
        (since > 0).then(|| {
            let now = self.origin.elapsed().as_millis() as u64 + 1;
            Duration::from_millis(now.saturating_sub(since))
        })
    }
}

/// The records writer has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordsClosed;

/// Replaces NUL bytes (which a quoted SIP display name may carry) with U+FFFD.
fn strip_nul(text: &mut String) {
    if text.contains('\0') {
        *text = text.replace('\0', "\u{fffd}");
    }
}

/// The durable form of `op`, named by call id and SIP Call-ID; `None` for an op of an unknown
/// leg and for `Forget` (which only drops the leg's name).
fn resolve(legs: &mut HashMap<LegId, (String, String)>, op: RecordOp) -> Option<RecordEntry> {
    let call_of = |legs: &HashMap<LegId, (String, String)>, leg: &LegId| {
        legs.get(leg).map(|(call_id, _)| call_id.clone())
    };
    Some(match op {
        RecordOp::CallStarted {
            leg,
            mut call,
            mut sip_leg,
        } => {
            if legs.contains_key(&leg) {
                return None;
            }
            // Text from the INVITE: PostgreSQL refuses a NUL byte in text.
            for text in [&mut call.caller, &mut call.callee, &mut sip_leg.remote_uri] {
                strip_nul(text);
            }
            if let Some(name) = call.caller_name.as_mut() {
                strip_nul(name);
            }
            legs.insert(leg, (call.id.clone(), sip_leg.sip_call_id.clone()));
            RecordEntry::CallStarted { call, leg: sip_leg }
        }
        RecordOp::CallAnswered { leg, at } => {
            let (call_id, sip_call_id) = legs.get(&leg)?.clone();
            RecordEntry::CallAnswered {
                call_id,
                sip_call_id,
                at,
            }
        }
        RecordOp::CallEnded {
            leg,
            at,
            disposition,
            hangup_by,
            final_status,
        } => {
            let (call_id, sip_call_id) = legs.get(&leg)?.clone();
            RecordEntry::CallEnded {
                call_id,
                sip_call_id,
                at,
                disposition,
                hangup_by: hangup_by.map(str::to_owned),
                final_status,
            }
        }
        RecordOp::CallEvent {
            leg,
            at,
            kind,
            detail,
        } => RecordEntry::CallEvent {
            call_id: call_of(legs, &leg)?,
            at,
            kind: kind.to_owned(),
            detail,
        },
        RecordOp::CallFlow { leg, flow, path } => RecordEntry::CallFlow {
            call_id: call_of(legs, &leg)?,
            flow,
            path,
        },
        RecordOp::CallRating { leg, rating } => RecordEntry::CallRating {
            call_id: call_of(legs, &leg)?,
            rating: i32::from(rating),
        },
        RecordOp::CallBroadcast {
            leg,
            broadcast_id,
            result,
        } => RecordEntry::CallBroadcast {
            call_id: call_of(legs, &leg)?,
            broadcast_id,
            result,
        },
        RecordOp::LegStarted {
            caller_leg,
            leg,
            sip_call_id,
            remote_uri,
            remote_addr,
            transport,
        } => {
            let call_id = call_of(legs, &caller_leg)?;
            legs.insert(leg, (call_id.clone(), sip_call_id.clone()));
            RecordEntry::LegStarted {
                leg: NewLeg {
                    call_id,
                    sip_call_id,
                    direction: "outbound".into(),
                    local_tag: None,
                    remote_tag: None,
                    remote_uri,
                    remote_addr: Some(remote_addr),
                    transport: transport.into(),
                    started_at: Utc::now(),
                },
            }
        }
        RecordOp::LegAnswered { leg, at } => {
            let (call_id, sip_call_id) = legs.get(&leg)?.clone();
            RecordEntry::LegAnswered {
                call_id,
                sip_call_id,
                at,
            }
        }
        RecordOp::LegEnded { leg, at, status } => {
            let (call_id, sip_call_id) = legs.remove(&leg)?;
            RecordEntry::LegEnded {
                call_id,
                sip_call_id,
                at,
                status,
            }
        }
        RecordOp::RecordingStarted { leg, id, path, at } => RecordEntry::RecordingStarted {
            recording: NewRecording {
                id,
                call_id: call_of(legs, &leg)?,
                path,
                format: "wav".into(),
                channels: 2,
                sample_rate: 8000,
                created_at: at,
            },
        },
        RecordOp::RecordingFinished {
            id,
            duration_ms,
            size_bytes,
            at,
        } => RecordEntry::RecordingFinished {
            id,
            duration_ms,
            size_bytes,
            at,
        },
        RecordOp::RecordingFailed { id, error, at } => {
            RecordEntry::RecordingFailed { id, error, at }
        }
        RecordOp::CallQueued {
            leg,
            queue,
            position,
            at,
        } => RecordEntry::CallQueued {
            call_id: call_of(legs, &leg)?,
            queue,
            position: u32::try_from(position).unwrap_or(u32::MAX),
            at,
        },
        RecordOp::CallQueueOutcome {
            leg,
            queue,
            operator,
            waited,
            outcome,
        } => RecordEntry::CallQueueOutcome {
            call_id: call_of(legs, &leg)?,
            queue,
            operator,
            wait_ms: i64::try_from(waited.as_millis()).unwrap_or(i64::MAX),
            outcome: outcome.to_owned(),
            at: Utc::now(),
        },
        RecordOp::OperatorStatus {
            ext,
            status,
            reason,
            at,
        } => RecordEntry::OperatorStatus {
            extension: ext,
            status: status.to_owned(),
            reason,
            at,
        },
        RecordOp::BindingUpsert(binding) => RecordEntry::BindingUpsert { binding },
        RecordOp::BindingRemove {
            extension,
            contact_uri,
        } => RecordEntry::BindingRemove {
            extension,
            contact_uri,
        },
        RecordOp::Forget { leg } => {
            legs.remove(&leg);
            return None;
        }
    })
}

#[cfg(test)]
mod tests;
