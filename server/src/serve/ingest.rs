//! `/v1/ingest`: create, inspect, pause, resume and delete Kafka ingestions. Each needs write access to the
//! ingestion's table (with auth on); a listing shows only those.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use basalt_ingest::IngestSpec;
use serde_json::json;

use super::http::v1_error;
use super::{ServeError, Server};
use std::sync::Arc;

type AppState = Arc<Server>;
type Who = Extension<Arc<super::access::Principal>>;

/// An error unless `who` may write to the table of ingestion `id` (an unknown id passes: the call says so).
fn check(server: &Server, who: &super::access::Principal, id: &str) -> Result<(), ServeError> {
    match server.ingest.status(id) {
        Ok(s) => who.require_write(&s.table),
        Err(_) => Ok(()),
    }
}

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
pub async fn submit(State(server): State<AppState>, Extension(who): Who, body: Bytes) -> Response {
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
    // A spec replacing an existing ingestion needs write access to that one's table too.
    let id = spec.id.clone().unwrap_or_else(|| spec.table.clone());
    if let Err(e) = who
        .require_write(&spec.table)
        .and_then(|()| check(&server, &who, &id))
    {
        return v1_error(&e);
    }
    blocking(server, StatusCode::OK, move |s| s.ingest.submit(spec)).await
}

pub async fn list(State(server): State<AppState>, Extension(who): Who) -> Response {
    let all: Vec<_> = server
        .ingest
        .list()
        .into_iter()
        .filter(|s| who.may_write(&s.table))
        .collect();
    axum::Json(json!({ "ingestions": all })).into_response()
}

pub async fn show(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = check(&server, &who, &id) {
        return v1_error(&e);
    }
    match server.ingest.status(&id) {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) => v1_error(&ingest_error(e)),
    }
}

pub async fn pause(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = check(&server, &who, &id) {
        return v1_error(&e);
    }
    blocking(server, StatusCode::OK, move |s| s.ingest.pause(&id)).await
}

pub async fn resume(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = check(&server, &who, &id) {
        return v1_error(&e);
    }
    blocking(server, StatusCode::OK, move |s| s.ingest.resume(&id)).await
}

pub async fn delete(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(id): Path<String>,
) -> Response {
    if let Err(e) = check(&server, &who, &id) {
        return v1_error(&e);
    }
    blocking(server, StatusCode::OK, move |s| {
        s.ingest.delete(&id).map(|()| json!({"deleted": id}))
    })
    .await
}
