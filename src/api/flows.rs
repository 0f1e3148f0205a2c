//! `/api/v1/flows`: the IVR flows in force, and replacing one with a new YAML text. A text that
//! does not load is refused with every problem's line and column; an accepted one is written to
//! its file in the flows directory, where the hot reload picks it up for new calls.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::watch;
use utoipa::ToSchema;

use super::{ApiError, ApiState, Caller};
use crate::ivr::{self, FlowId, FlowSet};
use crate::runtime::flows::FlowSource;

/// What the flows endpoints need: the snapshot in force and where flows live.
#[derive(Clone)]
pub struct FlowsAccess {
    pub current: watch::Receiver<Arc<FlowSet>>,
    pub source: FlowSource,
}

impl std::fmt::Debug for FlowsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowsAccess")
            .field("dir", &self.source.dir)
            .finish()
    }
}

/// A flow file larger than this is refused (the loader skips them too).
const MAX_FLOW_BYTES: usize = 1024 * 1024;

#[derive(Serialize, ToSchema)]
pub struct FlowSummary {
    id: String,
    name: Option<String>,
    entry: String,
    nodes: usize,
    /// The file's name in the flows directory.
    file: String,
}

fn access(state: &ApiState) -> Result<&FlowsAccess, ApiError> {
    state.options().flows.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "flow.unavailable",
            "flows are not loaded on this node",
        )
    })
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

#[utoipa::path(get, path = "/api/v1/flows", tag = "flows",
    responses((status = 200, body = Vec<FlowSummary>)))]
pub async fn list(
    caller: Caller,
    State(state): State<ApiState>,
) -> Result<Json<Vec<FlowSummary>>, ApiError> {
    caller.staff("read flows")?;
    let flows = access(&state)?.current.borrow().clone();
    Ok(Json(
        flows
            .iter()
            .map(|f| FlowSummary {
                id: f.id.to_string(),
                name: f.name.clone(),
                entry: f.entry.to_string(),
                nodes: f.nodes.len(),
                file: file_name(&f.file),
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/flows/{id}", tag = "flows",
    params(("id" = String, Path, description = "flow id")),
    responses(
        (status = 200, description = "the flow file as written", content_type = "application/yaml"),
        (status = 404, description = "flow.not_found"),
    ))]
pub async fn get_one(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.staff("read flows")?;
    let flows = access(&state)?.current.borrow().clone();
    let flow = flows
        .get(&id)
        .ok_or_else(|| ApiError::not_found("flow.not_found", "no flow with that id"))?;
    let text = tokio::fs::read_to_string(&flow.file)
        .await
        .map_err(|_| ApiError::not_found("flow.not_found", "the flow's file is gone"))?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml; charset=utf-8"),
    );
    Ok(response)
}

#[utoipa::path(put, path = "/api/v1/flows/{id}", tag = "flows",
    params(("id" = String, Path, description = "flow id")),
    request_body(content = String, content_type = "application/yaml"),
    responses(
        (status = 200, description = "written; new calls get it after the reload"),
        (status = 400, description = "flow.invalid_id / flow.id_mismatch / request.invalid_body"),
        (status = 422, description = "flow.invalid: `diagnostics` holds file:line:column messages"),
    ))]
pub async fn put(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.admin("change flows")?;
    let access = access(&state)?.clone();
    let Ok(flow_id) = FlowId::new(&id) else {
        return Err(ApiError::bad_request(
            "flow.invalid_id",
            "a flow id is letters, digits, _ and -",
        ));
    };
    if body.len() > MAX_FLOW_BYTES {
        return Err(ApiError::bad_request(
            "request.invalid_body",
            "a flow file is at most 1 MiB",
        ));
    }
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return Err(ApiError::bad_request(
            "request.invalid_body",
            "the body is not UTF-8 text",
        ));
    };
    let target = access
        .current
        .borrow()
        .get(flow_id.as_str())
        .map(|f| f.file.clone())
        .unwrap_or_else(|| access.source.dir.join(format!("{id}.yaml")));
    if let Some(written) = declared_id(&text)
        && written != id
    {
        return Err(ApiError::bad_request(
            "flow.id_mismatch",
            &format!("the text's `id` is `{written}`, the URL's `{id}`"),
        ));
    }
    let report = {
        let source = access.source.clone();
        let target = target.clone();
        let text = text.clone();
        tokio::task::spawn_blocking(move || validate(&source, &target, text))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "flow.check_failed",
                    "the check failed",
                )
            })?
    };
    let name = target.display().to_string();
    let errors: Vec<String> = report
        .errors
        .iter()
        .filter(|d| d.file == name)
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        let body = serde_json::json!({
            "error": { "code": "flow.invalid", "message": errors.join("\n") },
            "diagnostics": errors,
        });
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response());
    }
    let loaded = report.flows.iter().find(|f| f.file == target);
    match loaded {
        Some(f) if f.id == flow_id => {}
        _ => {
            return Err(ApiError::bad_request(
                "flow.id_mismatch",
                &format!("the text's `id` must be `{id}`"),
            ));
        }
    }
    // Write beside and rename, so the reload never reads half a file.
    let temp = target.with_extension("yaml.tmp");
    let written = async {
        tokio::fs::write(&temp, &text).await?;
        tokio::fs::rename(&temp, &target).await
    }
    .await;
    if let Err(e) = written {
        tracing::error!(error = %e, file = %target.display(), "cannot write a flow");
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "flow.write_failed",
            "the flow could not be written",
        ));
    }
    tracing::info!(flow = %id, file = %target.display(), "flow replaced through the API");
    let warnings: Vec<String> = report
        .warnings
        .iter()
        .filter(|d| d.file == name)
        .map(ToString::to_string)
        .collect();
    Ok(
        Json(serde_json::json!({ "id": id, "file": file_name(&target), "warnings": warnings }))
            .into_response(),
    )
}

/// The `id:` a flow text declares at its top level, read without validating anything else.
fn declared_id(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix("id:")?;
        let value = value.split('#').next()?.trim().trim_matches(['"', '\'']);
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// Loads the flows directory as it would be with `text` in `target`, so cross-file checks
/// (duplicate ids, `goto` targets) see the whole set.
fn validate(source: &FlowSource, target: &std::path::Path, text: String) -> ivr::LoadReport {
    let mut files: Vec<(String, String)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&source.dir) {
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let is_flow = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if is_flow
                && path != target
                && let Ok(other) = std::fs::read_to_string(&path)
            {
                files.push((path.display().to_string(), other));
            }
        }
    }
    files.push((target.display().to_string(), text));
    let sounds = source.sounds.clone();
    let exists = move |name: &str| sounds.join(name).is_file();
    ivr::load_set(&files, &exists, source.tts_available)
}
