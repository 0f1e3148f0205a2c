//! `/api/v1/recordings/{id}`: a recording as `audio/wav` with HTTP Range (RFC 9110 §14): one
//! byte range gives 206 with exactly those bytes, an unsatisfiable one 416 with `bytes */LEN`,
//! several ranges get the whole file (allowed by §14.2). The id is looked up in the database; the
//! file path comes only from that row, never from the request.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::params::is_id;
use super::{ApiError, ApiState, Caller};

/// A byte range resolved against the file length: `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// What a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No header, another unit, several ranges or a malformed one: the whole file.
    Whole,
    Partial(ByteRange),
    Unsatisfiable,
}

/// Reads a `Range` header against a file of `len` bytes.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(ByteRange {
                    start: len.saturating_sub(suffix),
                    end: len - 1,
                })
            }
        }
        (false, Some(start), last) if last.is_some() || last_is_empty(last, spec) => {
            if start >= len {
                return RangeRequest::Unsatisfiable;
            }
            match last {
                Some(end) if end < start => RangeRequest::Whole,
                Some(end) => RangeRequest::Partial(ByteRange {
                    start,
                    end: end.min(len - 1),
                }),
                None => RangeRequest::Partial(ByteRange {
                    start,
                    end: len - 1,
                }),
            }
        }
        _ => RangeRequest::Whole,
    }
}

/// `bytes=N-` (nothing after the dash) as opposed to garbage after it.
fn last_is_empty(last: Option<u64>, spec: &str) -> bool {
    last.is_none() && spec.trim().ends_with('-')
}

/// The recording's audio. Operators may fetch recordings of their own calls only.
#[utoipa::path(get, path = "/api/v1/recordings/{id}", tag = "recordings",
    params(
        ("id" = String, Path, description = "recording id"),
        ("Range" = Option<String>, Header, description = "bytes=START-END, bytes=START- or bytes=-N"),
    ),
    responses(
        (status = 200, description = "the whole file", content_type = "audio/wav"),
        (status = 206, description = "the requested bytes", content_type = "audio/wav"),
        (status = 404, description = "recording.not_found"),
        (status = 416, description = "recording.range_not_satisfiable"),
    ))]
pub async fn serve(
    caller: Caller,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("recording.not_found", "no recording with that id");
    if !is_id(&id) {
        return Err(not_found());
    }
    let store = state.store();
    let rec = store.recording(&id).await?.ok_or_else(not_found)?;
    if caller.call_scope().is_some() {
        let visible = match store.call(&rec.call_id).await? {
            Some((call, _)) => {
                caller.sees_call(&call.caller, &call.callee, call.operator.as_deref())
            }
            None => false,
        };
        if !visible {
            return Err(not_found());
        }
    }
    if rec.status != "complete" {
        return Err(ApiError::conflict(
            "recording.not_ready",
            "the recording is still being written or failed",
        ));
    }
    let path = rec
        .file_in(&state.options().data_dir)
        .ok_or_else(not_found)?;
    let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
        tracing::warn!(file = %path.display(), error = %e, "recording file missing");
        ApiError::not_found("recording.file_missing", "the recording's file is gone")
    })?;
    let len = file
        .metadata()
        .await
        .map_err(|_| ApiError::not_found("recording.file_missing", "the recording's file is gone"))?
        .len();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count) = match parse_range(range, len) {
        RangeRequest::Whole => (StatusCode::OK, 0, len),
        RangeRequest::Partial(r) => (StatusCode::PARTIAL_CONTENT, r.start, r.end - r.start + 1),
        RangeRequest::Unsatisfiable => {
            let mut response = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "recording.range_not_satisfiable",
                "the range is outside the file",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|_| {
            ApiError::not_found("recording.file_missing", "the recording's file is gone")
        })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(count)));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { start, end })
    }

    #[test]
    fn ranges() {
        let cases: &[(Option<&str>, RangeRequest)] = &[
            (None, RangeRequest::Whole),
            (Some("bytes=0-99"), partial(0, 99)),
            (Some("bytes=100-"), partial(100, 999)),
            (Some("bytes=-10"), partial(990, 999)),
            (Some("bytes=-5000"), partial(0, 999)),
            (Some("bytes=990-5000"), partial(990, 999)),
            (Some("bytes=1000-"), RangeRequest::Unsatisfiable),
            (Some("bytes=5000-6000"), RangeRequest::Unsatisfiable),
            (Some("bytes=-0"), RangeRequest::Unsatisfiable),
            (Some("bytes=0-1,5-6"), RangeRequest::Whole),
            (Some("bytes=9-3"), RangeRequest::Whole),
            (Some("bytes=abc"), RangeRequest::Whole),
            (Some("bytes=1-x"), RangeRequest::Whole),
            (Some("items=0-1"), RangeRequest::Whole),
            (Some("bytes=18446744073709551616-"), RangeRequest::Whole),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_range(*header, 1000), *expected, "{header:?}");
        }
        assert_eq!(
            parse_range(Some("bytes=0-"), 0),
            RangeRequest::Unsatisfiable
        );
    }
}
