//! The HTTP face (axum): basalt's own API under `/v1` and `/metrics`; the Druid-compatible SQL API and Druid's
//! status endpoints are in `druid`. This file holds the router and the request and response helpers both use.

use std::convert::Infallible;
use std::sync::Arc;

use arrow_schema::DataType;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use basalt_query::{Face, QueryContext, Scalar};
use basalt_segment::granularity::format_iso;
use basalt_segment::Catalog;
use serde_json::{json, Value};

use super::access::Principal;
use super::formats::{array_lines, csv_chunks, object_lines};
use super::{druid, ingest, users, ServeError, Server};

pub(super) type AppState = Arc<Server>;
/// The request's user, put there by [`super::auth::authenticate`].
pub(super) type Who = Extension<Arc<Principal>>;

/// Rows encoded per chunk of a streamed response.
pub(super) const CHUNK_ROWS: usize = 4096;
/// An answer of at most this many chunks is sent whole rather than streamed.
pub(super) const WHOLE_CHUNKS: usize = 3;

pub fn router(server: AppState) -> Router {
    Router::new()
        .route("/", get(console))
        .route("/console", get(console))
        .route("/v1/sql", post(v1_sql))
        .route("/v1/tables", get(v1_tables))
        .route("/v1/tables/{table}", get(v1_table).delete(v1_drop_table))
        .route(
            "/v1/tables/{table}/rules",
            get(v1_get_rules).put(v1_put_rules),
        )
        .route("/v1/tables/{table}/load", post(v1_load))
        .route(
            "/v1/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/v1/ready", get(v1_ready))
        .route("/v1/ingest", post(ingest::submit).get(ingest::list))
        .route("/v1/ingest/{id}", get(ingest::show).delete(ingest::delete))
        .route("/v1/ingest/{id}/pause", post(ingest::pause))
        .route("/v1/ingest/{id}/resume", post(ingest::resume))
        .route("/v1/queries", get(list_queries))
        .route("/v1/queries/{id}", delete(cancel_query))
        .route("/druid/v2/sql", post(druid::druid_sql))
        .route("/druid/v2/sql/", post(druid::druid_sql))
        .route("/druid/v2/sql/{id}", delete(cancel_query))
        .route("/druid/v2/datasources", get(druid::druid_datasources))
        .route("/status", get(druid::status))
        .route("/status/health", get(|| async { axum::Json(json!(true)) }))
        .route("/metrics", get(metrics))
        .route("/v1/users", get(users::list).post(users::create))
        .route(
            "/v1/users/{user}",
            get(users::show).delete(users::drop).patch(users::update),
        )
        .route("/v1/users/{user}/tokens", post(users::new_token))
        .route("/v1/users/{user}/tokens/{id}", delete(users::revoke_token))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            super::auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(
            super::conns::close_after_unread_body,
        ))
        .with_state(server)
}

/// The web console: one self-contained page compiled into the binary (no CDN), talking to this API.
async fn console() -> Response {
    let mut r = Response::new(Body::from(include_str!("console.html")));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

pub(super) async fn not_found(req: Request) -> Response {
    v1_error(&ServeError::NotFound(format!(
        "no endpoint {} {}",
        req.method(),
        req.uri().path()
    )))
}

/// basalt's error body: a stable code, the message, and the SQL position when there is one.
pub(super) fn v1_error(e: &ServeError) -> Response {
    let mut body = json!({"error": {"code": e.code(), "message": e.message()}});
    if let Some(p) = e.position() {
        body["error"]["line"] = p.line.into();
        body["error"]["column"] = p.column.into();
    }
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ServeError> {
    // A declared Content-Length past the limit is refused before a byte of the body is read.
    if axum::body::HttpBody::size_hint(&body).lower() > limit as u64 {
        return Err(ServeError::BodyTooLarge(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("length limit") {
            ServeError::BodyTooLarge(limit)
        } else {
            ServeError::BadRequest(format!("reading the request body: {text}"))
        }
    })
}

/// A request field that must be a string when present.
pub(super) fn opt_str<'a>(req: &'a Value, key: &str) -> Result<Option<&'a str>, ServeError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ServeError::BadRequest(format!(
            "\"{key}\" must be a string, not {}",
            json_kind(other)
        ))),
    }
}

/// A request field that must be a boolean when present.
pub(super) fn opt_bool(req: &Value, key: &str) -> Result<bool, ServeError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ServeError::BadRequest(format!(
            "\"{key}\" must be true or false, not {}",
            json_kind(other)
        ))),
    }
}

/// Whether a query context turns the result cache off: `useCache` or `populateCache` false (Druid's names), or
/// `cache` false (basalt's). A context that is not an object, or a flag that is not a boolean, is refused.
pub(super) fn context_skips_cache(context: Option<&Value>) -> Result<bool, ServeError> {
    let context = match context {
        None | Some(Value::Null) => return Ok(false),
        Some(c @ Value::Object(_)) => c,
        Some(other) => {
            return Err(ServeError::BadRequest(format!(
                "\"context\" must be an object, not {}",
                json_kind(other)
            )))
        }
    };
    let mut skip = false;
    for key in ["useCache", "populateCache", "cache"] {
        let on = match context.get(key) {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            // Druid's own console sends context flags as strings too.
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(other) => {
                return Err(ServeError::BadRequest(format!(
                    "context \"{key}\" must be true or false, not {}",
                    json_kind(other)
                )))
            }
        };
        skip |= !on;
    }
    Ok(skip)
}

pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A parameter given as `{"type": ..., "value": ...}` (Druid's form, also accepted by /v1/sql).
pub(super) fn typed_param(i: usize, p: &Value) -> Result<Scalar, ServeError> {
    let bad = |why: String| ServeError::BadRequest(format!("parameter {}: {why}", i + 1));
    let Value::Object(o) = p else {
        return Err(bad(format!(
            "expected an object {{\"type\": ..., \"value\": ...}}, not {}",
            json_kind(p)
        )));
    };
    if let Some(k) = o.keys().find(|k| *k != "type" && *k != "value") {
        return Err(bad(format!(
            "unknown field {k:?} (only \"type\" and \"value\")"
        )));
    }
    let value = o
        .get("value")
        .ok_or_else(|| bad("has no \"value\"".into()))?;
    let ty = match o.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(other) => {
            return Err(bad(format!(
                "\"type\" must be a string, not {}",
                json_kind(other)
            )))
        }
    };
    json_param(value, ty)
}

/// A JSON parameter as a SQL value (numbers keep their kind; strings stay strings).
pub(super) fn json_param(v: &Value, ty: Option<&str>) -> Result<Scalar, ServeError> {
    let ty = ty.map(|t| t.to_ascii_uppercase());
    Ok(match (v, ty.as_deref()) {
        (Value::Null, _) => Scalar::Null,
        (Value::Bool(b), _) => Scalar::Bool(*b),
        (Value::Number(n), Some("DOUBLE" | "FLOAT" | "REAL" | "DECIMAL")) => {
            Scalar::Float(n.as_f64().unwrap_or(f64::NAN))
        }
        (Value::Number(n), _) => match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        (Value::String(s), Some("BIGINT" | "INTEGER" | "SMALLINT" | "TINYINT")) => {
            Scalar::Int(s.trim().parse().map_err(|_| {
                ServeError::BadRequest(format!("parameter {s:?} is not an integer"))
            })?)
        }
        (Value::String(s), Some("DOUBLE" | "FLOAT" | "REAL" | "DECIMAL")) => Scalar::Float(
            s.trim()
                .parse()
                .map_err(|_| ServeError::BadRequest(format!("parameter {s:?} is not a number")))?,
        ),
        (Value::String(s), _) => Scalar::Str(s.clone()),
        (other, _) => {
            return Err(ServeError::BadRequest(format!(
                "parameter {other} is not a string, number, boolean or null"
            )))
        }
    })
}

// ---------------------------------------------------------------------------------------------------------
// basalt's own API

pub(super) async fn v1_sql(
    State(server): State<AppState>,
    Extension(who): Who,
    body: Body,
) -> Response {
    match v1_sql_inner(&server, &who, body).await {
        Ok(r) => r,
        Err(e) => v1_error(&e),
    }
}

pub(super) async fn v1_sql_inner(
    server: &Arc<Server>,
    who: &Principal,
    body: Body,
) -> Result<Response, ServeError> {
    let bytes = read_body(body, server.config.max_request_bytes).await?;
    let req: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ServeError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    if !req.is_object() {
        return Err(ServeError::BadRequest(format!(
            "the body must be a JSON object, not {}",
            json_kind(&req)
        )));
    }
    let sql = opt_str(&req, "query")?
        .ok_or_else(|| ServeError::BadRequest("the body needs a \"query\" string".into()))?
        .to_string();
    let format = opt_str(&req, "format")?.unwrap_or("json").to_string();
    if !["json", "ndjson", "csv", "arrow"].contains(&format.as_str()) {
        return Err(ServeError::BadRequest(format!(
            "unknown format {format:?} (json, ndjson, csv or arrow)"
        )));
    }
    let params = match req.get("parameters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ps)) => ps
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                Value::Object(_) => typed_param(i, p),
                v => json_param(v, None),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ServeError::BadRequest(
                "\"parameters\" must be an array".into(),
            ))
        }
    };
    let id = server.new_query_id();
    let ctx = QueryContext {
        face: Face::Postgres,
        params,
        skip_cache: context_skips_cache(req.get("context"))?,
        user: Some(who.name.clone()),
        ..Default::default()
    };
    let result = server.query(&sql, ctx, "v1", id.clone(), who).await?;
    let batch = result.batch;
    let mut resp = match format.as_str() {
        "json" => {
            let columns: Vec<Value> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| json!({"name": f.name(), "type": type_name(f.data_type())}))
                .collect();
            let head = json!({"query_id": id, "columns": columns});
            let head = head.to_string();
            // Stream: the header object, then the rows array chunk by chunk, then the row count.
            let prefix = format!("{},\"rows\":[", &head[..head.len() - 1]);
            let n = batch.num_rows();
            let rows = chunked(array_lines(batch), ",");
            let suffix = format!(
                "],\"row_count\":{n},\"stats\":{{\"segments_scanned\":{},\"segments_pruned\":{},\"rows_scanned\":{},\"bytes_scanned\":{}}}}}",
                result.stats.segments_scanned, result.stats.segments_pruned, result.stats.rows_scanned,
                result.stats.bytes_scanned
            );
            stream_response(
                std::iter::once(prefix)
                    .chain(rows)
                    .chain(std::iter::once(suffix)),
                "application/json",
            )
        }
        "ndjson" => stream_response(
            chunked(
                object_lines(batch).map(|mut s| {
                    s.push('\n');
                    s
                }),
                "",
            ),
            "application/x-ndjson",
        ),
        "csv" => stream_response(csv_chunks(batch, &[], false), "text/csv"),
        _ => {
            let mut buf = Vec::new();
            {
                let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut buf, &batch.schema())
                    .map_err(|e| ServeError::Internal(e.to_string()))?;
                w.write(&batch)
                    .and_then(|_| w.finish())
                    .map_err(|e| ServeError::Internal(e.to_string()))?;
            }
            let mut r = Response::new(Body::from(buf));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.apache.arrow.stream"),
            );
            r
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-basalt-query-id", v);
    }
    Ok(resp)
}

/// Joins items into strings of up to [`CHUNK_ROWS`] items each (one write per chunk, not per row), with `sep`
/// between consecutive items, across chunk boundaries too.
pub(super) fn chunked(
    items: impl Iterator<Item = String> + Send,
    sep: &'static str,
) -> impl Iterator<Item = String> + Send {
    let mut items = items.peekable();
    let mut first = true;
    std::iter::from_fn(move || {
        items.peek()?;
        let mut out = String::new();
        for item in items.by_ref().take(CHUNK_ROWS) {
            if !first {
                out.push_str(sep);
            }
            first = false;
            out.push_str(&item);
        }
        Some(out)
    })
}

pub(super) fn stream_response(
    chunks: impl Iterator<Item = String> + Send + 'static,
    content_type: &'static str,
) -> Response {
    // A small answer (a header, one chunk of rows, a trailer) goes out whole, with a Content-Length: one write
    // instead of a chunked stream's several. Dashboards ask mostly such questions.
    let mut chunks = chunks.into_iter();
    let head: Vec<String> = chunks.by_ref().take(WHOLE_CHUNKS).collect();
    let body = match chunks.next() {
        None => Body::from(head.concat()),
        Some(more) => {
            let all = head.into_iter().chain(std::iter::once(more)).chain(chunks);
            Body::from_stream(futures::stream::iter(
                all.map(|c| Ok::<_, Infallible>(Bytes::from(c))),
            ))
        }
    };
    let mut r = Response::new(body);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// basalt's name for a result column type.
pub(super) fn type_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int64 => "long",
        DataType::Float64 => "double",
        DataType::Utf8 => "string",
        DataType::Boolean => "boolean",
        DataType::Timestamp(_, _) => "timestamp",
        DataType::Null => "null",
        _ => "string",
    }
}

pub(super) fn table_json(server: &Server, name: &str, detail: bool) -> Option<Value> {
    let view = server.live.view(server.catalog.as_ref());
    let m = view.manifest.clone();
    let schema = m.tables.get(name)?;
    let segs: Vec<_> = m.segments_of(name).collect();
    let rows: u64 = segs.iter().map(|s| s.num_rows).sum();
    let bytes: u64 = segs.iter().map(|s| s.bytes).sum();
    let start = segs.iter().map(|s| s.interval.start).min();
    let end = segs.iter().map(|s| s.interval.end).max();
    let mut v = json!({
        "name": name,
        "rows": rows,
        "realtime_rows": view.realtime_rows(name),
        "segments": segs.len(),
        "bytes": bytes,
        "time_column": schema.time_column,
        "time_range": {"start": start.map(format_iso), "end": end.map(format_iso)},
    });
    let damaged = server.damaged_segments(Some(name));
    v["damaged_segments"] = damaged
        .iter()
        .map(|(s, why)| {
            json!({"id": s.id, "start": format_iso(s.interval.start), "end": format_iso(s.interval.end),
                   "error": super::redact_paths(why)})
        })
        .collect();
    if detail {
        // Where each segment is: on local disk only (no deep storage), in deep storage with a local copy, or in
        // deep storage only (downloaded when a query needs it).
        let deep = server.catalog.deep_storage();
        v["deep_storage"] = json!(deep.map(|d| d.url.clone()));
        v["rules"] = rules_json(m.rules.get(name));
        v["segment_list"] = segs
            .iter()
            .map(|s| {
                let local = server.catalog.segment_path(&s.table, &s.id).exists();
                let tier = match (deep.is_some(), local) {
                    (false, _) => "local",
                    (true, true) => "deep+local",
                    (true, false) => "deep",
                };
                json!({"id": s.id, "start": format_iso(s.interval.start), "end": format_iso(s.interval.end),
                       "rows": s.num_rows, "bytes": s.bytes, "tier": tier})
            })
            .collect();
        v["columns"] = serde_json::to_value(&schema.columns).unwrap_or_default();
        v["segment_granularity"] =
            json!(format!("{:?}", schema.segment_granularity).to_lowercase());
        v["rollup"] = json!(schema.rollup.is_some());
    }
    Some(v)
}

pub(super) async fn v1_tables(State(server): State<AppState>, Extension(who): Who) -> Response {
    let names = server.readable_tables(&who);
    let tables: Vec<Value> = names
        .iter()
        .filter_map(|n| table_json(&server, n, false))
        .collect();
    axum::Json(json!({ "tables": tables })).into_response()
}

pub(super) async fn v1_table(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(table): Path<String>,
) -> Response {
    if let Err(e) = who.require_read(&table) {
        return v1_error(&e);
    }
    match table_json(&server, &table, true) {
        Some(v) => axum::Json(v).into_response(),
        None => v1_error(&ServeError::NotFound(format!(
            "table {table:?} does not exist"
        ))),
    }
}

/// `DELETE /v1/tables/{t}`: drops the table, as `DROP TABLE` does.
pub(super) async fn v1_drop_table(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(table): Path<String>,
) -> Response {
    if let Err(e) = who.require_admin("dropping a table") {
        return v1_error(&e);
    }
    let write = super::dml::Write::Drop {
        tables: vec![table],
        if_exists: false,
    };
    match super::dml::execute(&server, write).await {
        Ok(r) => axum::Json(
            json!({"dropped": true, "rows_removed": r.batch.column(0).as_any()
            .downcast_ref::<arrow_array::Int64Array>().map_or(0, |a| a.value(0))}),
        )
        .into_response(),
        Err(e) => v1_error(&e),
    }
}

/// A table's rules as JSON: `{"retention": "90 days", "hot": "7 days"}` (null when unset).
fn rules_json(rules: Option<&basalt_segment::catalog::TableRules>) -> Value {
    let show = |v: Option<i64>| v.map(crate::lifecycle::show_duration);
    json!({
        "retention": show(rules.and_then(|r| r.retention_ms)),
        "hot": show(rules.and_then(|r| r.hot_ms)),
    })
}

pub(super) async fn v1_get_rules(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(table): Path<String>,
) -> Response {
    if let Err(e) = who.require_read(&table) {
        return v1_error(&e);
    }
    let m = server.catalog.snapshot();
    match crate::lifecycle::resolve(&m, &table) {
        Ok(t) => axum::Json(rules_json(m.rules.get(&t))).into_response(),
        Err(_) => v1_error(&ServeError::NotFound(format!(
            "table {table:?} does not exist"
        ))),
    }
}

/// `PUT /v1/tables/{t}/rules` with `{"retention": "90 days", "hot": "P7D"}`: replaces the table's rules (a key
/// left out or null clears that rule). The janitor applies them every `janitor_interval_ms`.
pub(super) async fn v1_put_rules(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(table): Path<String>,
    body: Body,
) -> Response {
    let result = async {
        who.require_admin("changing a table's rules")?;
        let bytes = read_body(body, server.config.max_request_bytes).await?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ServeError::BadRequest(format!("rules: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| ServeError::BadRequest("rules: expected a JSON object".into()))?;
        let mut rules = basalt_segment::catalog::TableRules::default();
        for (k, v) in obj {
            let ms = match v {
                Value::Null => None,
                Value::String(s) => Some(
                    crate::lifecycle::parse_duration(s)
                        .map_err(|e| ServeError::BadRequest(format!("rules.{k}: {e}")))?,
                ),
                other => {
                    return Err(ServeError::BadRequest(format!(
                        "rules.{k}: expected a duration string such as \"90 days\", got {other}"
                    )))
                }
            };
            match k.as_str() {
                "retention" => rules.retention_ms = ms,
                "hot" => rules.hot_ms = ms,
                other => {
                    return Err(ServeError::BadRequest(format!(
                        "rules: unknown key {other:?} (known: retention, hot)"
                    )))
                }
            }
        }
        let catalog = server.catalog.clone();
        tokio::task::spawn_blocking(move || {
            crate::lifecycle::set_rules(&catalog, &table, rules)?;
            let m = catalog.snapshot();
            let t = crate::lifecycle::resolve(&m, &table)?;
            Ok::<_, crate::error::Error>(rules_json(m.rules.get(&t)))
        })
        .await
        .map_err(|e| ServeError::Internal(e.to_string()))?
        .map_err(|e| match e {
            crate::error::Error::Segment(basalt_segment::Error::UnknownTable(t)) => {
                ServeError::NotFound(format!("table {t:?} does not exist"))
            }
            other => ServeError::Internal(other.to_string()),
        })
    }
    .await;
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => v1_error(&e),
    }
}

pub(super) async fn v1_ready(State(server): State<AppState>) -> Response {
    let m = server.catalog.snapshot();
    axum::Json(json!({"ready": true, "manifest_version": m.version, "tables": m.tables.len()}))
        .into_response()
}

/// `GET /v1/queries`: the caller's running queries (an admin: everyone's) and the finished ones still in the log.
pub(super) async fn list_queries(State(server): State<AppState>, Extension(who): Who) -> Response {
    let (running, finished) = server.queries.visible(&who);
    axum::Json(json!({ "running": running, "finished": finished })).into_response()
}

pub(super) async fn cancel_query(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(id): Path<String>,
) -> Response {
    if server.cancel(&id, &who) {
        StatusCode::ACCEPTED.into_response()
    } else {
        v1_error(&ServeError::NotFound(format!(
            "no running query with id {id:?}"
        )))
    }
}

pub(super) async fn metrics(State(server): State<AppState>) -> Response {
    server.metrics.update_ingest(&server.ingest.list());
    let damaged = server.damaged_segments(None);
    server.metrics.update_damaged(&damaged);
    server.metrics.update_storage(&server.catalog);
    server
        .metrics
        .update_result_cache(server.result_cache.as_deref());
    let mut r = Response::new(Body::from(server.metrics.encode()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

pub(super) async fn v1_load(
    State(server): State<AppState>,
    Extension(who): Who,
    Path(table): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(e) = who.require_write(&table) {
        return v1_error(&e);
    }
    match super::load::http_load(&server, &table, &q, &headers, body).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => v1_error(&e),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Druid-compatible SQL API
