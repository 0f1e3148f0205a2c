//! The IO shell: sockets, timers, tasks, storage hand-off and shutdown. Everything protocol-shaped is
//! in the sans-IO cores; this module moves bytes and time into them and carries out what they return.
//!
//! Shutdown is a tree: SIGINT/SIGTERM → new INVITEs get 503 → running calls drain until
//! `shutdown.drain_timeout` → the rest get BYE → listeners stop → the records writer empties its queue
//! → the database pool closes last.

pub mod acd;
pub mod background;
pub mod broadcasts;
pub mod call_task;
pub mod calls;
pub mod clock;
pub mod events;
pub mod flows;
pub mod health;
pub mod http_server;
pub mod icmp;
pub mod ivr_io;
pub mod memory;
pub mod overload;
pub mod ports;
pub mod records;
pub mod reload;
pub mod retention;
pub mod sip_task;
pub mod tcp_limits;
pub mod transport;

use crate::api::{self, ApiState};
use crate::config::{Settings, decode_secret};
use crate::sip::endpoint::{Endpoint, EndpointConfig};
use crate::sip::registrar::{OperatorSecret, RegistrarConfig};
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{ConnId, Peer};
use crate::store::{OperatorRecord, Store, StoreError};
use bytes::Bytes;
use chrono::Utc;
use sha2::Digest;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the transport tasks hand to the SIP task.
pub enum SipInput {
    Packet {
        peer: Peer,
        bytes: Bytes,
    },
    /// A TCP message that cannot be taken: answer `status` from its head.
    Refuse {
        peer: Peer,
        head: Bytes,
        status: u16,
    },
    TcpOpened {
        conn: ConnId,
        tx: mpsc::Sender<Bytes>,
    },
    TcpClosed {
        conn: ConnId,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot bind SIP on {addr}: {source}")]
    BindSip {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind HTTP on {addr}: {source}")]
    BindHttp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error(transparent)]
    Records(#[from] records::ReplayError),
    #[error("the SIP task stopped unexpectedly (see the log); the node stopped with it")]
    SipTaskDied,
}

/// How long shutdown waits for the records writer to empty its queue.
const RECORDS_DRAIN: Duration = Duration::from_secs(30);

/// The records journal's directory under the data directory.
pub const RECORDS_JOURNAL: &str = "records-journal";

/// Runs the server until SIGINT/SIGTERM, then shuts down gracefully.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let shutdown = CancellationToken::new();
    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        signal_token.cancel();
    });
    run(settings, shutdown).await
}

pub async fn run(settings: Settings, shutdown: CancellationToken) -> Result<(), ServeError> {
    #[cfg(unix)]
    let hangups = reload::catch_hangups();
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| ServeError::DataDir {
        path: settings.data_dir.display().to_string(),
        source,
    })?;
    // Two sockets per call: the default soft limit of 1024 files would cap us near 500 calls.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| ServeError::Metrics(e.to_string()))?;
    let node_id = node_id(&settings)?;
    let store = Store::connect(&settings.database_url).await?;
    // Replayed first: a call the journal ends is not one the crash cut.
    let (records_tx, records_rx) =
        records::RecordsTx::open(&store, &node_id, &settings.data_dir.join(RECORDS_JOURNAL))
            .await?;
    let repaired = store.close_orphaned_calls(&node_id, Utc::now()).await?;
    if repaired > 0 {
        tracing::warn!(
            calls = repaired,
            "closed calls left open by a crash as system.crashed"
        );
    }
    let realm = settings.file.sip.realm.clone();
    let mut secrets = Vec::new();
    for op in &settings.file.operators {
        let secret = OperatorSecret::from_password(&op.extension, &realm, &op.password);
        store
            .upsert_operator(&operator_record(op, &realm, &secret))
            .await?;
        secrets.push((op.extension.clone(), secret));
    }
    ensure_api_tokens(&store, &settings).await?;
    repair_recordings(&store, &settings.data_dir, &node_id).await;
    let (udp, tcp) = transport::bind(settings.sip)
        .await
        .map_err(|source| ServeError::BindSip {
            addr: settings.sip,
            source,
        })?;
    let sip_addr = udp.local_addr().map_err(|source| ServeError::BindSip {
        addr: settings.sip,
        source,
    })?;
    let http = tokio::net::TcpListener::bind(settings.http)
        .await
        .map_err(|source| ServeError::BindHttp {
            addr: settings.http,
            source,
        })?;
    let http_addr = http.local_addr().map_err(|source| ServeError::BindHttp {
        addr: settings.http,
        source,
    })?;

    let advertised_ip = settings.public_ip.unwrap_or_else(|| {
        if sip_addr.ip().is_unspecified() {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        } else {
            sip_addr.ip()
        }
    });
    let sip = &settings.file.sip;
    let nonce_secret = sip
        .nonce_secret
        .as_deref()
        .and_then(decode_secret)
        .unwrap_or_else(rand::random);
    let mut endpoint = Endpoint::new(EndpointConfig {
        timers: TimerConfig {
            t1: sip.t1,
            t2: sip.t2,
            t4: sip.t4,
        },
        registrar: RegistrarConfig {
            realm: realm.clone(),
            min_expires: sip.min_expires,
            max_expires: sip.max_expires,
            default_expires: sip.default_expires,
            max_failures: sip.max_auth_failures,
            failure_window: sip.auth_failure_window,
            cooldown: sip.auth_cooldown,
            max_failed_users_per_source: sip.max_failed_users_per_source,
            nonce_lifetime_secs: 300,
            algorithms: sip
                .digest_algorithms
                .iter()
                .filter_map(|a| crate::sip::auth::Algorithm::parse(a))
                .collect(),
        },
        advertised: SocketAddr::new(advertised_ip, sip_addr.port()).to_string(),
        nonce_secret,
        external_prefix: settings
            .file
            .dialplan
            .external
            .as_ref()
            .map(|rule| rule.prefix.clone()),
    });
    for (extension, secret) in secrets {
        restore_bindings(&store, &mut endpoint, &extension, &node_id).await?;
        endpoint.registrar_mut().set_operator(&extension, secret);
    }
    let acd = build_acd(&settings, &store, &endpoint).await?;

    let tracker = TaskTracker::new();
    let io_token = CancellationToken::new();
    let events = events::EventBus::new();
    let background = background::Background::spawn(&store, &settings, &events);
    let mut health = health::Health::default();
    health.watch_writer(records_tx.writer_clock());
    let records = health.spawn_records(records::run(store.clone(), records_rx, events.clone()));
    let (input_tx, input_rx) = mpsc::channel(16_384);
    let (command_tx, command_rx) = mpsc::channel(64);
    let udp = Arc::new(udp);
    transport::spawn_udp_reader(udp.clone(), input_tx.clone(), io_token.clone(), &tracker);
    transport::spawn_tcp_acceptor(
        tcp,
        input_tx.clone(),
        transport::TcpPolicy {
            limits: tcp_limits::TcpLimits::new(
                sip.max_tcp_connections.max(1),
                sip.max_tcp_connections_per_source.max(1),
            ),
            message_timeout: sip.tcp_message_timeout,
        },
        io_token.clone(),
        &tracker,
    );
    drop(input_tx);
    let calls_config = &settings.file.calls;
    let clock = settings
        .clock_start
        .map(clock::Clock::starting_at)
        .unwrap_or_default();
    if let Some(start) = settings.clock_start {
        tracing::warn!(%start, "the wall clock for calling windows and business hours starts at a set instant");
    }
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let (notice_tx, notice_rx) = mpsc::unbounded_channel();
    let tts = text_to_speech();
    let tts_available = tts.is_some();
    let flow_source = flows::FlowSource {
        dir: settings.flows.clone(),
        sounds: settings.sounds.clone(),
        tts_available: tts.is_some(),
    };
    let (flows_tx, flows_rx) = tokio::sync::watch::channel(flows::initial(&flow_source));
    flows::spawn_reloader(flow_source.clone(), flows_tx, io_token.clone());
    let flows_for_api = api::flows::FlowsAccess {
        current: flows_rx.clone(),
        source: flow_source,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let webhook_client = reqwest::Client::builder()
        .user_agent(crate::sip::message::build::PRODUCT)
        .build()
        .map_err(|e| tracing::error!(error = %e, "no HTTP client: webhooks will fail"))
        .ok();
    let mut calls = calls::Calls::new(
        calls::CallsConfig {
            answer_delay: calls_config.answer_delay,
            routes: settings.file.routes.clone(),
            sounds: settings.sounds.clone(),
            record: calls_config.record,
            media_timeout: calls_config.media_timeout,
            data_dir: settings.data_dir.clone(),
            public_ip: settings.public_ip,
            rtp_bind: sip_addr.ip(),
            node_id: node_id.clone(),
            external: settings.file.dialplan.external.as_ref().and_then(|rule| {
                let trunk = settings.file.trunks.iter().find(|t| t.name == rule.trunk)?;
                Some(calls::ExternalDialing::from_config(
                    rule,
                    trunk,
                    &settings.file.operators,
                ))
            }),
            trunks: settings.file.trunks.clone(),
            clock,
            max_calls: calls_config.max_calls,
            max_calls_per_source: calls_config.max_calls_per_source,
            max_records_backlog: calls_config.max_records_backlog.max(1),
            max_call_rate: calls_config.max_call_rate,
            supervisors: settings
                .file
                .operators
                .iter()
                .filter(|o| o.supervisor)
                .map(|o| o.extension.clone())
                .collect(),
        },
        ports::PortPool::new(settings.rtp_ports),
        calls::CallsShared {
            prompts: Arc::new(crate::media::prompt::PromptCache::new(
                calls_config.prompt_cache_mb * 1024 * 1024,
            )),
            tts,
            http: webhook_client,
            flows: flows_rx,
            broadcast_reports: Some(reports_tx),
        },
        records_tx.clone(),
        notice_tx,
        acd,
    );
    let overloaded =
        overload::spawn_lag_probe(calls_config.overload_lag, io_token.clone(), &tracker);
    memory::spawn_trimmer(overloaded.clone(), io_token.clone(), &tracker);
    calls.set_overload_signal(overloaded);
    let sip_task = sip_task::SipTask::new(endpoint, udp, node_id.clone(), records_tx, calls);
    let mut sip_handle = health.spawn_sip(sip_task.run(input_rx, command_rx, notice_rx));
    let broadcasts_stop = CancellationToken::new();
    let (broadcasts, broadcasts_task) = broadcasts::spawn(
        store.clone(),
        broadcasts::DispatcherConfig {
            node_id: node_id.clone(),
            lease: settings.file.broadcasts.lease,
            trunks: settings.file.trunks.clone(),
            clock,
        },
        command_tx.clone(),
        reports_rx,
        events.clone(),
        broadcasts_stop.clone(),
    );

    let reloader = Arc::new(reload::Reloader::new(
        settings.config_path.clone(),
        settings.file.clone(),
        command_tx.clone(),
        store.clone(),
    ));
    #[cfg(unix)]
    reload::spawn_on_hangup(hangups, reloader.clone(), io_token.clone());
    let sip_access = api::sip_access::SipAccess::new(command_tx.clone());
    let api_state = ApiState::new(
        store.clone(),
        metrics,
        node_id.clone(),
        api::ApiOptions {
            flows: Some(flows_for_api),
            acd: Some(api::queues::AcdAccess::new(sip_access.clone())),
            sip: Some(sip_access),
            broadcasts: Some(broadcasts),
            clock,
            tts: tts_available,
            health: Some(health.clone()),
            reload: Some(reloader),
            ..api::ApiOptions::new(&settings, events)
        },
    );
    let http_token = CancellationToken::new();
    let http_stop = http_token.clone();
    let http_config = &settings.file.http;
    let http_policy = http_server::HttpPolicy {
        limits: tcp_limits::TcpLimits::new(
            http_config.max_connections,
            http_config.max_connections_per_source,
        ),
        header_timeout: http_config.header_timeout,
    };
    let http_server = tokio::spawn(async move {
        let app = api::router(api_state);
        http_server::serve(http, app, http_policy, http_stop).await;
    });

    tracing::info!(sip = %sip_addr, http = %http_addr, node = %node_id, "openline ready");
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "openline ready sip={sip_addr} http={http_addr}");
        let _ = stdout.flush();
    }

    let woken = health::wait(&shutdown, &mut sip_handle).await;
    let sip_died = match woken {
        health::Woken::Shutdown => false,
        health::Woken::SipDied(reason) => {
            let reason = reason.unwrap_or_else(|| "it returned".into());
            tracing::error!(%reason, "the SIP task ended; stopping the node");
            shutdown.cancel();
            true
        }
    };
    broadcasts_stop.cancel();
    drain(&command_tx, settings.file.shutdown.drain_timeout).await;
    io_token.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    drop(command_tx);
    if !sip_died {
        let _ = sip_handle.await;
    }
    // Every broadcast call is reported once the SIP task is gone.
    let _ = tokio::time::timeout(Duration::from_secs(10), broadcasts_task).await;
    http_token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), http_server).await;
    // Everything is journaled: a database that does not take the rest in time does not keep
    // the node from stopping; the next start replays it.
    if tokio::time::timeout(RECORDS_DRAIN, records).await.is_err() {
        tracing::warn!(
            seconds = RECORDS_DRAIN.as_secs(),
            "records not all written at shutdown; the journal keeps them for the next start"
        );
    }
    background.stop().await;
    store.close().await;
    if sip_died {
        return Err(ServeError::SipTaskDied);
    }
    tracing::info!("shutdown complete");
    Ok(())
}

/// Stops new calls, lets running ones finish until `deadline`, then hangs up the rest and waits
/// for their BYE transactions.
async fn drain(commands: &mpsc::Sender<sip_task::SipCommand>, deadline: Duration) {
    let _ = commands.send(sip_task::SipCommand::StopAccepting).await;
    let load = || async {
        let (tx, rx) = oneshot::channel();
        if commands.send(sip_task::SipCommand::Load(tx)).await.is_err() {
            return (0, 0);
        }
        rx.await.unwrap_or((0, 0))
    };
    let until = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < until {
        let (calls, _) = load().await;
        if calls == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (calls, _) = load().await;
    if calls > 0 {
        tracing::info!(calls, "drain deadline reached; hanging up");
        let _ = commands.send(sip_task::SipCommand::HangupAll).await;
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < until && load().await.0 > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An operator's row as the config says (the stored status is kept by the upsert).
pub(crate) fn operator_record(
    op: &crate::config::OperatorConfig,
    realm: &str,
    secret: &OperatorSecret,
) -> OperatorRecord {
    OperatorRecord {
        extension: op.extension.clone(),
        name: op.name.clone(),
        realm: realm.to_string(),
        ha1_md5: secret.ha1_md5.clone(),
        ha1_sha256: secret.ha1_sha256.clone(),
        max_calls: op.max_calls as i32,
        status: "online".into(),
        status_reason: None,
        status_changed_at: None,
    }
}

/// The queues from the config and the operators with their stored status and live bindings.
async fn build_acd(
    settings: &Settings,
    store: &Store,
    endpoint: &Endpoint,
) -> Result<acd::Acd, ServeError> {
    let stored = store.operators().await?;
    let now = std::time::Instant::now();
    let seeds = settings
        .file
        .operators
        .iter()
        .map(|op| {
            let row = stored.iter().find(|r| r.extension == op.extension);
            acd::OperatorSeed {
                extension: op.extension.clone(),
                name: op.name.clone(),
                max_calls: op.max_calls,
                status: row
                    .and_then(|r| acd::parse_presence(&r.status))
                    .unwrap_or(crate::queue::Presence::Online),
                status_reason: row.and_then(|r| r.status_reason.clone()),
                skills: op.skills.clone(),
            }
        })
        .collect();
    let mut acd = acd::Acd::new(&settings.file.queues, seeds, now);
    for op in &settings.file.operators {
        let registered = !endpoint.registrar().bindings(&op.extension, now).is_empty();
        acd.set_registered(now, &op.extension, registered);
    }
    for q in &settings.file.queues {
        tracing::info!(queue = %q.name, members = ?q.members, strategy = ?q.strategy, "queue ready");
    }
    Ok(acd)
}

/// Puts back this node's unexpired UDP bindings after a restart, so operators stay reachable
/// without waiting for their phones to re-register. TCP bindings die with their connection.
async fn restore_bindings(
    store: &Store,
    endpoint: &mut Endpoint,
    extension: &str,
    node_id: &str,
) -> Result<(), ServeError> {
    let now = std::time::Instant::now();
    let utc = Utc::now();
    for b in store.bindings(extension).await? {
        let Some(addr) = b
            .received
            .as_deref()
            .and_then(|r| r.parse::<SocketAddr>().ok())
        else {
            continue;
        };
        let left = (b.expires_at - utc).to_std().unwrap_or_default();
        if b.node_id != node_id || b.transport != "udp" || left.is_zero() {
            continue;
        }
        endpoint
            .registrar_mut()
            .restore(crate::sip::registrar::Binding {
                extension: b.extension,
                contact_uri: b.contact_uri,
                peer: Peer {
                    transport: crate::sip::transport::TransportKind::Udp,
                    addr,
                    conn: None,
                },
                expires_at: now + left,
                expires_utc: b.expires_at,
                call_id: b.call_id,
                cseq: u32::try_from(b.cseq).unwrap_or(0),
                user_agent: b.user_agent,
            });
    }
    Ok(())
}

/// Recordings left unfinished by a crash of this node get valid WAV headers again (their audio up
/// to the last header flush survives) and are marked complete with what they hold.
async fn repair_recordings(store: &Store, data_dir: &Path, node_id: &str) {
    let unfinished = match store.unfinished_recordings(node_id).await {
        Ok(list) => list,
        Err(e) => {
            tracing::error!(error = %e, "cannot list unfinished recordings");
            return;
        }
    };
    for rec in unfinished {
        let Some(path) = rec.file_in(data_dir) else {
            continue;
        };
        let repaired = match crate::media::recorder::repair(&path) {
            Ok(Some(info)) => Ok(info),
            Ok(None) => hound::WavReader::open(&path)
                .map(|r| crate::media::recorder::RecordingInfo {
                    frames: u64::from(r.duration()),
                    duration_ms: u64::from(r.duration()) / 8,
                    size_bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                })
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let now = Utc::now();
        let result = match repaired {
            Ok(info) => {
                tracing::warn!(recording = %rec.id, seconds = info.duration_ms / 1000, "recording repaired after a crash");
                store
                    .recording_completed(
                        &rec.id,
                        info.duration_ms as i64,
                        info.size_bytes as i64,
                        now,
                    )
                    .await
            }
            Err(error) => {
                tracing::error!(recording = %rec.id, %error, "recording lost in a crash");
                store
                    .recording_failed(&rec.id, "recording.crash_unrecoverable", now)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot update a repaired recording");
        }
    }
}

/// espeak-ng when installed; without it flows with `say` nodes are rejected at load (a clear
/// warning now instead of silence mid-call).
fn text_to_speech() -> Option<Arc<crate::media::tts::TtsCache>> {
    use crate::media::tts::{EspeakNg, TtsCache};
    match EspeakNg::with_program(EspeakNg::PROGRAM) {
        Ok(engine) => {
            tracing::info!(version = %engine.version(), "text-to-speech: espeak-ng");
            Some(Arc::new(TtsCache::new(Arc::new(engine), 32 * 1024 * 1024)))
        }
        Err(e) => {
            tracing::warn!("{e}; flows with say nodes will not load");
            None
        }
    }
}

/// The node id: from the config, else generated once and kept beside the data.
fn node_id(settings: &Settings) -> Result<String, ServeError> {
    if let Some(id) = &settings.file.node_id {
        return Ok(id.clone());
    }
    let path = settings.data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let id = format!("node-{}", hex::encode(rand::random::<[u8; 6]>()));
    write_private(&path, &id).map_err(|source| ServeError::DataDir {
        path: path.display().to_string(),
        source,
    })?;
    Ok(id)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Tokens from the config are stored hashed. With none anywhere, a random admin token is created
/// and printed once (INTERFACE.md: no fixed default password ships).
async fn ensure_api_tokens(store: &Store, settings: &Settings) -> Result<(), ServeError> {
    let configured: Vec<String> = settings
        .file
        .api_tokens
        .iter()
        .map(|t| token_hash(&t.token))
        .collect();
    let removed = store.remove_config_tokens_except(&configured).await?;
    if removed > 0 {
        tracing::warn!(
            tokens = removed,
            "API tokens no longer in the config were revoked (and their sessions ended)"
        );
    }
    for t in &settings.file.api_tokens {
        let hash = token_hash(&t.token);
        if store.api_token(&hash).await?.is_none() {
            store
                .insert_api_token(&hash, t.role.as_str(), t.extension.as_deref(), "config")
                .await?;
        }
    }
    if store.api_token_count().await? == 0 {
        let token: String = {
            let bytes: [u8; 24] = rand::random();
            hex::encode(bytes)
        };
        store
            .insert_api_token(
                &token_hash(&token),
                "admin",
                None,
                "generated at first start",
            )
            .await?;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(
            stdout,
            "openline: created an admin API token (shown only now, keep it): {token}"
        );
        let _ = stdout.flush();
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
