//! `POST /v1/tables/{table}/load`: a CSV, NDJSON, JSON or Parquet body loaded by the same loader, with the same
//! rules, as `basalt load`. The body is spooled to the catalog's scratch directory, then loaded and committed
//! in one catalog step; loads run one at a time.

use std::collections::HashMap;
use std::io::Write;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use basalt_ingest::{IngestSpec, LoadOptions, Loader};
use basalt_segment::{Catalog, Granularity};
use futures::StreamExt;
use serde_json::Value;

use super::{ServeError, Server};

fn bad(e: impl std::fmt::Display) -> ServeError {
    ServeError::BadRequest(e.to_string())
}

/// The input format: `?format=`, else the Content-Type.
fn format_of(q: &HashMap<String, String>, headers: &HeaderMap) -> Result<String, ServeError> {
    if let Some(f) = q.get("format") {
        return Ok(f.to_ascii_lowercase());
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(match ct.split(';').next().unwrap_or("").trim() {
        "text/csv" => "csv",
        "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" => "ndjson",
        "application/json" => "json",
        "application/vnd.apache.parquet" | "application/x-parquet" => "parquet",
        other => {
            return Err(bad(format!(
                "say the input format with ?format=csv|ndjson|json|parquet (Content-Type {other:?} does not tell)"
            )))
        }
    }
    .to_string())
}

pub async fn http_load(
    server: &Server,
    table: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, ServeError> {
    let format = format_of(q, headers)?;
    let manifest = server.catalog.snapshot();
    let existing = manifest.tables.get(table).cloned();
    basalt_segment::catalog::check_table_name(&manifest, table)
        .map_err(|e| ServeError::Conflict(e.to_string()))?;
    let time_column = match (q.get("time_column"), &existing) {
        (Some(c), _) => c.clone(),
        (None, Some(t)) => t.time_column.clone(),
        (None, None) => {
            return Err(bad(format!(
                "table {table:?} is new: name its time column with ?time_column="
            )))
        }
    };
    let mut spec = IngestSpec::new(table, &time_column);
    spec.format = format.parse().map_err(bad)?;
    if let Some(f) = q.get("time_format") {
        spec.timestamp.format = f.parse().map_err(bad)?;
    }
    if let Some(g) = q.get("segment_granularity") {
        spec.segment_granularity = g.parse::<Granularity>().map_err(bad)?;
    }
    if let Some(m) = q.get("max_errors") {
        spec.max_errors = m
            .parse()
            .map_err(|_| bad(format!("max_errors {m:?} is not a number")))?;
    }
    let replace = q.get("replace").is_some_and(|v| v == "true" || v == "1");
    spec.validate().map_err(bad)?;

    let _one_load = server.load_lock.lock().await;
    let scratch = server.catalog.scratch_dir();
    std::fs::create_dir_all(&scratch).map_err(|e| ServeError::Internal(e.to_string()))?;
    let ext = if format == "json" { "json" } else { &format };
    // A random name, created exclusively with owner-only permissions: no client can predict or plant it.
    let mut upload = tempfile::Builder::new()
        .prefix("upload-")
        .suffix(&format!(".{ext}"))
        .tempfile_in(&scratch)
        .map_err(|e| ServeError::Internal(format!("creating the upload file: {e}")))?;
    let path = upload.path().to_path_buf();
    let limit = server.config.max_upload_bytes;
    let spooled = async {
        let file = upload.as_file_mut();
        let mut size = 0usize;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| bad(format!("reading the upload: {e}")))?;
            size += chunk.len();
            if size > limit {
                return Err(ServeError::BodyTooLarge(limit));
            }
            file.write_all(&chunk)
                .map_err(|e| ServeError::Internal(e.to_string()))?;
        }
        file.sync_all()
            .map_err(|e| ServeError::Internal(e.to_string()))?;
        Ok(size)
    }
    .await;
    let size = spooled?;
    let catalog = server.catalog.clone();
    let file = path.clone();
    let result = tokio::task::spawn_blocking(move || {
        let options = LoadOptions {
            replace,
            ..Default::default()
        };
        let loader = Loader::new(
            catalog.as_ref() as &dyn Catalog,
            &catalog.scratch_dir(),
            spec,
            options,
        )?;
        loader.load(std::slice::from_ref(&file))
    })
    .await;
    drop(upload);
    let summary = result
        .map_err(|e| ServeError::Internal(format!("load task failed: {e}")))?
        .map_err(|e| {
            if let basalt_ingest::Error::Segment(
                taken @ basalt_segment::Error::TableNameTaken { .. },
            ) = &e
            {
                return ServeError::Conflict(taken.to_string());
            }
            ServeError::Load(e.to_string().replace(
                &path.display().to_string(),
                &format!("the uploaded {format} file"),
            ))
        })?;
    let mut v = serde_json::to_value(&summary).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("bytes_received".into(), size.into());
        o.insert("elapsed_s".into(), summary.elapsed.as_secs_f64().into());
    }
    Ok(v)
}
