//! The HTTP API (axum) and the managers' web page: health, Prometheus metrics, calls, recordings
//! (HTTP Range), leads, contacts and timelines, operators, ratings, the live event WebSocket, and
//! the OpenAPI description generated from the handlers. Bearer tokens or the page's session
//! cookie; every error is one JSON shape with a stable dotted code (see [`ApiError`]).

mod auth;
mod broadcasts;
mod call_control;
mod calls;
mod config_reload;
mod crm;
mod do_not_call;
mod error;
mod events;
pub mod flows;
mod idempotency;
mod limits;
mod openapi;
mod operators;
mod params;
pub mod queues;
mod ratings;
mod recordings;
mod session;
pub mod sip_access;
mod sip_blocks;
mod tokens;
mod web;

pub use auth::{CSRF_HEADER, Caller, SESSION_COOKIE};
pub use error::ApiError;

use crate::config::Settings;
use crate::crm::DefaultCountry;
use crate::runtime::events::EventBus;
use crate::store::Store;
use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What the API needs beyond the store: the event bus, where recordings live, how numbers are
/// read, and the web session settings.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub events: EventBus,
    pub data_dir: PathBuf,
    pub country: DefaultCountry,
    pub session_ttl: Duration,
    pub secure_cookie: bool,
    /// The IVR flows (set by the runtime once they are loaded).
    pub flows: Option<flows::FlowsAccess>,
    /// The live queues and operators (set by the runtime; the SIP task owns them).
    pub acd: Option<queues::AcdAccess>,
    /// The SIP task, for what only it knows (brute-force blocks; set by the runtime).
    pub sip: Option<sip_access::SipAccess>,
    /// The broadcast dispatcher (set by the runtime).
    pub broadcasts: Option<crate::runtime::broadcasts::BroadcastsHandle>,
    /// The trunks broadcasts may name, with their calls-per-second caps.
    pub trunks: Vec<(String, f64)>,
    /// Calling windows are judged by this clock.
    pub clock: crate::runtime::clock::Clock,
    /// The sounds directory and whether text-to-speech is installed (broadcast messages).
    pub sounds: PathBuf,
    pub tts: bool,
    pub max_upload_bytes: usize,
    /// Request deadline and concurrency cap.
    pub http: crate::config::HttpConfig,
    /// Liveness of the SIP task and the records writer (set by the runtime).
    pub health: Option<crate::runtime::health::Health>,
    /// Reads the config file again (set by the runtime).
    pub reload: Option<std::sync::Arc<crate::runtime::reload::Reloader>>,
}

impl ApiOptions {
    pub fn new(settings: &Settings, events: EventBus) -> ApiOptions {
        ApiOptions {
            events,
            data_dir: settings.data_dir.clone(),
            country: DefaultCountry::parse(&settings.file.crm.default_country).unwrap_or_default(),
            session_ttl: settings.file.web.session_ttl,
            secure_cookie: settings.file.web.secure_cookie,
            flows: None,
            acd: None,
            sip: None,
            broadcasts: None,
            trunks: settings
                .file
                .trunks
                .iter()
                .map(|t| (t.name.clone(), t.max_cps))
                .collect(),
            clock: settings
                .clock_start
                .map(crate::runtime::clock::Clock::starting_at)
                .unwrap_or_default(),
            sounds: settings.sounds.clone(),
            tts: false,
            max_upload_bytes: settings.file.broadcasts.max_upload_mb * 1024 * 1024,
            http: settings.file.http.clone(),
            health: None,
            reload: None,
        }
    }
}

#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    metrics: PrometheusHandle,
    node_id: String,
    options: ApiOptions,
}

impl ApiState {
    pub fn new(
        store: Store,
        metrics: PrometheusHandle,
        node_id: String,
        options: ApiOptions,
    ) -> Self {
        ApiState {
            inner: Arc::new(Inner {
                store,
                metrics,
                node_id,
                options,
            }),
        }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn options(&self) -> &ApiOptions {
        &self.inner.options
    }
}

/// Every JSON body the API reads, each parsed from the same bytes as its handler parses it (the
/// `http_json` fuzz target, `crate::fuzzing`).
#[doc(hidden)]
pub fn parse_request_bodies(data: &[u8]) {
    use params::json_body;
    let _ = json_body::<operators::StatusBody>(data);
    let _ = json_body::<do_not_call::DoNotCallBody>(data);
    let _ = json_body::<tokens::NewTokenBody>(data);
    let _ = json_body::<crm::NewPersonBody>(data);
    let _ = json_body::<session::SignIn>(data);
    let _ = json_body::<broadcasts::creation::NewBroadcastBody>(data);
    let _ = json_body::<call_control::TransferBody>(data);
    let _ = json_body::<call_control::SuperviseBody>(data);
    let _ = json_body::<queues::MembersBody>(data);
    let _ = json_body::<queues::MemberBody>(data);
}

pub fn router(state: ApiState) -> Router {
    let http = &state.options().http;
    let limits = limits::HttpLimits::new(
        http.max_concurrent_requests,
        http.max_concurrent_requests_per_source,
        http.request_timeout,
        state.options().max_upload_bytes.max(1024 * 1024) as u64,
    );
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(web::routes())
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route(
            "/api/v1/session",
            post(session::sign_in)
                .get(session::current)
                .delete(session::sign_out),
        )
        .route("/api/v1/calls", get(calls::list))
        .route("/api/v1/calls/{id}", get(calls::get_one))
        .route("/api/v1/config/reload", post(config_reload::reload))
        .route("/api/v1/calls/{id}/transfer", post(call_control::transfer))
        .route(
            "/api/v1/calls/{id}/supervise",
            post(call_control::supervise),
        )
        .route(
            "/api/v1/calls/{id}/transfer/complete",
            post(call_control::complete),
        )
        .route(
            "/api/v1/calls/{id}/transfer/cancel",
            post(call_control::cancel),
        )
        .route(
            "/api/v1/calls/{id}/recording/pause",
            post(call_control::pause),
        )
        .route(
            "/api/v1/calls/{id}/recording/resume",
            post(call_control::resume),
        )
        .route("/api/v1/recordings/{id}", get(recordings::serve))
        .route("/api/v1/leads", get(crm::list_leads).post(crm::create_lead))
        .route(
            "/api/v1/leads/{id}",
            get(crm::get_lead).delete(crm::erase_lead),
        )
        .route("/api/v1/leads/{id}/timeline", get(crm::lead_timeline))
        .route("/api/v1/leads/{id}/convert", post(crm::convert_lead))
        .route(
            "/api/v1/contacts",
            get(crm::list_contacts).post(crm::create_contact),
        )
        .route(
            "/api/v1/contacts/{id}",
            get(crm::get_contact).delete(crm::erase_contact),
        )
        .route("/api/v1/contacts/{id}/timeline", get(crm::contact_timeline))
        .route("/api/v1/queues", get(queues::list))
        .route("/api/v1/queues/{name}", get(queues::get_one))
        .route(
            "/api/v1/queues/{name}/members",
            put(queues::put_members).post(queues::add_member),
        )
        .route(
            "/api/v1/queues/{name}/members/{ext}",
            delete(queues::remove_member),
        )
        .route("/api/v1/operators", get(operators::list))
        .route("/api/v1/operators/{ext}/status", put(operators::set_status))
        .route("/api/v1/ratings", get(ratings::list))
        .route("/api/v1/events", get(events::stream))
        .route("/api/v1/flows", get(flows::list))
        .route("/api/v1/flows/{id}", get(flows::get_one).put(flows::put))
        .route(
            "/api/v1/broadcasts",
            get(broadcasts::list)
                .post(broadcasts::creation::create)
                .layer(DefaultBodyLimit::max(
                    state.options().max_upload_bytes.max(1024 * 1024),
                )),
        )
        .route("/api/v1/broadcasts/{id}", get(broadcasts::get_one))
        .route(
            "/api/v1/broadcasts/{id}/recipients",
            get(broadcasts::recipients_of),
        )
        .route(
            "/api/v1/broadcasts/{id}/{action}",
            post(broadcasts::control),
        )
        .route(
            "/api/v1/do-not-call",
            get(do_not_call::list).post(do_not_call::add),
        )
        .route("/api/v1/do-not-call/{number}", delete(do_not_call::remove))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{id}", delete(tokens::revoke))
        .route("/api/v1/sip/blocks", get(sip_blocks::list))
        .route("/api/v1/sip/blocks/{ip}", delete(sip_blocks::lift))
        .fallback(|| async { ApiError::not_found("route.not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "request.method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(limits, limits::guard))
        .with_state(state)
}

#[utoipa::path(get, path = "/healthz", tag = "system", security(),
    responses((status = 200, description = "SIP, the database and the records writer work"),
              (status = 503, description = "One of them does not; `checks` says which")))]
async fn healthz(State(state): State<ApiState>) -> Response {
    let (sip, records) = match &state.options().health {
        Some(h) => (h.sip_running(), h.records_healthy()),
        // An API without a runtime (tests of the router alone) has no tasks to watch.
        None => (true, true),
    };
    let database = state.store().ping().await;
    let ok = sip && records && database;
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "unavailable" },
        "node": state.inner.node_id,
        "checks": { "sip": sip, "database": database, "records": records },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "system", security(),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
async fn metrics(State(state): State<ApiState>) -> Response {
    // Read at scrape time: a leak of tasks (calls, connections) shows as growth here.
    let alive = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    metrics::gauge!("openline_tasks_alive").set(alive as f64);
    let mut response = state.inner.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
