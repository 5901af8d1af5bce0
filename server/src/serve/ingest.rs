//! `/v1/ingest`: create, inspect, pause, resume and delete Kafka ingestions.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use basalt_ingest::IngestSpec;
use serde_json::json;

use super::http::v1_error;
use super::{ServeError, Server};
use std::sync::Arc;

type AppState = Arc<Server>;

fn ingest_error(e: basalt_ingest::Error) -> ServeError {
    match e {
        basalt_ingest::Error::Spec(m) => {
            ServeError::BadRequest(format!("invalid ingest spec: {m}"))
        }
        basalt_ingest::Error::Limit(m) => ServeError::Conflict(m),
        basalt_ingest::Error::Segment(e @ basalt_segment::Error::TableNameTaken { .. }) => {
            ServeError::Conflict(e.to_string())
        }
        basalt_ingest::Error::NoIngestion(id) => {
            ServeError::NotFound(format!("no ingestion {id:?}"))
        }
        other => ServeError::Internal(other.to_string()),
    }
}

/// Runs a blocking supervisor call off the async workers and answers with its JSON.
async fn blocking<T: serde::Serialize + Send + 'static>(
    server: AppState,
    status: StatusCode,
    f: impl FnOnce(&Server) -> basalt_ingest::Result<T> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(move || f(&server)).await {
        Ok(Ok(v)) => (status, axum::Json(v)).into_response(),
        Ok(Err(e)) => v1_error(&ingest_error(e)),
        Err(e) => v1_error(&ServeError::Internal(format!("ingest task failed: {e}"))),
    }
}

/// `POST /v1/ingest`: a JSON ingest spec; creates the ingestion or replaces its spec.
pub async fn submit(State(server): State<AppState>, body: Bytes) -> Response {
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t.to_string(),
        Err(e) => {
            return v1_error(&ServeError::BadRequest(format!(
                "the spec is not UTF-8: {e}"
            )))
        }
    };
    let spec = match IngestSpec::from_json(&text) {
        Ok(s) => s,
        Err(e) => return v1_error(&ingest_error(e)),
    };
    blocking(server, StatusCode::OK, move |s| s.ingest.submit(spec)).await
}

pub async fn list(State(server): State<AppState>) -> Response {
    let all = server.ingest.list();
    axum::Json(json!({ "ingestions": all })).into_response()
}

pub async fn show(State(server): State<AppState>, Path(id): Path<String>) -> Response {
    match server.ingest.status(&id) {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) => v1_error(&ingest_error(e)),
    }
}

pub async fn pause(State(server): State<AppState>, Path(id): Path<String>) -> Response {
    blocking(server, StatusCode::OK, move |s| s.ingest.pause(&id)).await
}

pub async fn resume(State(server): State<AppState>, Path(id): Path<String>) -> Response {
    blocking(server, StatusCode::OK, move |s| s.ingest.resume(&id)).await
}

pub async fn delete(State(server): State<AppState>, Path(id): Path<String>) -> Response {
    blocking(server, StatusCode::OK, move |s| {
        s.ingest.delete(&id).map(|()| json!({"deleted": id}))
    })
    .await
}
