//! The Druid-compatible SQL API: `POST /druid/v2/sql` (query, context, parameters, every `resultFormat`, header
//! and type rows), Druid's error shapes and status codes, `/druid/v2/datasources` and `/status`.

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use basalt_query::{Face, QueryContext, Scalar};
use basalt_segment::schema::TIME_ALIAS;
use serde_json::{json, Map, Value};

use super::formats::*;
use super::http::*;
use super::ServeError;

/// Druid's error body and status.
pub(super) fn druid_error(e: &ServeError) -> Response {
    use basalt_query::QueryError as Q;
    let (status, error, class) = match e {
        ServeError::Query(Q::Syntax { .. }) => (
            400,
            "SQL parse failed",
            "org.apache.calcite.sql.parser.SqlParseException",
        ),
        ServeError::Query(
            Q::Unsupported { .. }
            | Q::UnknownTable { .. }
            | Q::UnknownColumn { .. }
            | Q::UnknownSetting { .. }
            | Q::Invalid { .. },
        ) => (
            400,
            "Plan validation failed",
            "org.apache.calcite.tools.ValidationException",
        ),
        ServeError::Query(Q::Timeout(_)) => (
            504,
            "Query timeout",
            "org.apache.druid.query.QueryTimeoutException",
        ),
        ServeError::Query(Q::Cancelled) => (
            500,
            "Query cancelled",
            "org.apache.druid.query.QueryInterruptedException",
        ),
        ServeError::Overloaded { .. } => (
            429,
            "Query capacity exceeded",
            "org.apache.druid.query.QueryCapacityExceededException",
        ),
        ServeError::ResultTooLarge(_)
        | ServeError::Query(Q::MemoryLimit { .. })
        | ServeError::Query(Q::TooManyGroups { .. })
        | ServeError::Query(Q::TooComplex { .. }) => (
            400,
            "Resource limit exceeded",
            "org.apache.druid.query.ResourceLimitExceededException",
        ),
        ServeError::BadRequest(_) | ServeError::BodyTooLarge(_) => (
            400,
            "Bad Request",
            "org.apache.druid.query.BadQueryException",
        ),
        ServeError::Query(Q::Execution(_) | Q::DivisionByZero | Q::OutOfRange(_)) => (
            400,
            "Unknown exception",
            "org.apache.druid.query.QueryException",
        ),
        ServeError::Unauthenticated(_) => (
            401,
            "Unauthorized",
            "org.apache.druid.server.security.AuthenticationException",
        ),
        ServeError::Forbidden(_) | ServeError::Query(Q::PermissionDenied { .. }) => (
            403,
            "Forbidden",
            "org.apache.druid.server.security.ForbiddenException",
        ),
        _ => (500, "Unknown exception", "java.lang.RuntimeException"),
    };
    let host = std::env::var("HOSTNAME").ok();
    let body =
        json!({"error": error, "errorMessage": e.message(), "errorClass": class, "host": host});
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

struct DruidRequest {
    query: String,
    format: String,
    header: bool,
    types_header: bool,
    sql_types_header: bool,
    query_id: Option<String>,
    params: Vec<Scalar>,
    skip_cache: bool,
}

fn parse_druid_request(headers: &HeaderMap, bytes: &[u8]) -> Result<DruidRequest, ServeError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ServeError::BadRequest(format!("the body is not UTF-8: {e}")))?;
    let is_plain = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if is_plain {
        return Ok(DruidRequest {
            query: text.to_string(),
            format: "object".into(),
            header: false,
            types_header: false,
            sql_types_header: false,
            query_id: None,
            params: Vec::new(),
            skip_cache: false,
        });
    }
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ServeError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ServeError::BadRequest(format!(
            "the body must be a JSON object, not {}",
            json_kind(&v)
        )));
    }
    let query = opt_str(&v, "query")?
        .ok_or_else(|| ServeError::BadRequest("missing \"query\"".into()))?
        .to_string();
    let format = opt_str(&v, "resultFormat")?.unwrap_or("object").to_string();
    if !["object", "array", "objectLines", "arrayLines", "csv"].contains(&format.as_str()) {
        return Err(ServeError::BadRequest(format!(
            "unknown resultFormat {format:?} (object, array, objectLines, arrayLines or csv)"
        )));
    }
    let context = match v.get("context") {
        None | Some(Value::Null) => Value::Null,
        Some(c @ Value::Object(_)) => c.clone(),
        Some(other) => {
            return Err(ServeError::BadRequest(format!(
                "\"context\" must be an object, not {}",
                json_kind(other)
            )))
        }
    };
    if let Some(tz) = opt_str(&context, "sqlTimeZone")? {
        if !["UTC", "Etc/UTC", "Z", "GMT", "+00:00"].contains(&tz) {
            return Err(ServeError::BadRequest(format!(
                "sqlTimeZone {tz:?} is not supported: basalt computes time in UTC"
            )));
        }
    }
    let params = match v.get("parameters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ps)) => ps
            .iter()
            .enumerate()
            .map(|(i, p)| typed_param(i, p))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ServeError::BadRequest(format!(
                "\"parameters\" must be an array, not {}",
                json_kind(other)
            )))
        }
    };
    let query_id = opt_str(&context, "sqlQueryId")?.map(str::to_string);
    if let Some(id) = &query_id {
        if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
            return Err(ServeError::BadRequest(
                "sqlQueryId must be printable text of 1 to 256 bytes".into(),
            ));
        }
    }
    Ok(DruidRequest {
        query,
        format,
        header: opt_bool(&v, "header")?,
        types_header: opt_bool(&v, "typesHeader")?,
        sql_types_header: opt_bool(&v, "sqlTypesHeader")?,
        query_id,
        params,
        skip_cache: context_skips_cache(Some(&context))?,
    })
}

pub(super) async fn druid_sql(
    State(server): State<AppState>,
    axum::extract::Extension(who): Who,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let req = match read_body(body, server.config.max_request_bytes)
        .await
        .and_then(|b| parse_druid_request(&headers, &b))
    {
        Ok(r) => r,
        Err(e) => return druid_error(&e),
    };
    let id = req
        .query_id
        .clone()
        .unwrap_or_else(|| server.new_query_id());
    let ctx = QueryContext {
        face: Face::Druid,
        params: req.params.clone(),
        skip_cache: req.skip_cache,
        user: Some(who.name.clone()),
        ..Default::default()
    };
    let mut resp = match server
        .query(&req.query, ctx, "druid", id.clone(), &who)
        .await
    {
        Ok(result) => druid_body(result.batch, &req),
        Err(e) => druid_error(&e),
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-druid-sql-query-id", v);
    }
    resp
}

/// Druid's native and SQL type names of a result column.
fn druid_types(name: &str, t: &DataType) -> (&'static str, &'static str) {
    match t {
        DataType::Int64 => ("LONG", "BIGINT"),
        DataType::Float64 => ("DOUBLE", "DOUBLE"),
        DataType::Boolean => ("LONG", "BOOLEAN"),
        DataType::Timestamp(_, _) => ("LONG", "TIMESTAMP"),
        _ if name == TIME_ALIAS => ("LONG", "TIMESTAMP"),
        _ => ("STRING", "VARCHAR"),
    }
}

fn druid_body(batch: RecordBatch, req: &DruidRequest) -> Response {
    let schema = batch.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let types: Vec<(&str, &str)> = schema
        .fields()
        .iter()
        .map(|f| druid_types(f.name(), f.data_type()))
        .collect();
    let header_obj = || -> String {
        json_object(names.iter().zip(&types).map(|(n, (t, st))| {
            let v = if !req.types_header && !req.sql_types_header {
                Value::Null
            } else {
                let mut o = Map::new();
                if req.types_header {
                    o.insert("type".into(), json!(t));
                }
                if req.sql_types_header {
                    o.insert("sqlType".into(), json!(st));
                }
                Value::Object(o)
            };
            (n.clone(), v)
        }))
    };
    let header_arrays = || -> Vec<Vec<String>> {
        let mut rows = vec![names.clone()];
        if req.types_header {
            rows.push(types.iter().map(|t| t.0.to_string()).collect());
        }
        if req.sql_types_header {
            rows.push(types.iter().map(|t| t.1.to_string()).collect());
        }
        rows
    };
    match req.format.as_str() {
        "object" | "array" => {
            let first = if !req.header {
                None
            } else if req.format == "object" {
                Some(header_obj())
            } else {
                Some(
                    header_arrays()
                        .iter()
                        .map(|r| json!(r).to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                )
            };
            let rows: Box<dyn Iterator<Item = String> + Send> = if req.format == "object" {
                Box::new(object_lines(batch))
            } else {
                Box::new(array_lines(batch))
            };
            stream_response(
                std::iter::once("[".to_string())
                    .chain(chunked(first.into_iter().chain(rows), ","))
                    .chain(std::iter::once("]".to_string())),
                "application/json",
            )
        }
        "objectLines" | "arrayLines" => {
            let first: Vec<String> = if !req.header {
                Vec::new()
            } else if req.format == "objectLines" {
                vec![header_obj()]
            } else {
                header_arrays()
                    .iter()
                    .map(|r| json!(r).to_string())
                    .collect()
            };
            let rows: Box<dyn Iterator<Item = String> + Send> = if req.format == "objectLines" {
                Box::new(object_lines(batch))
            } else {
                Box::new(array_lines(batch))
            };
            stream_response(
                chunked(
                    first.into_iter().chain(rows).map(|mut l| {
                        l.push('\n');
                        l
                    }),
                    "",
                )
                .chain(std::iter::once("\n".to_string())),
                "text/plain",
            )
        }
        _ => {
            let heads = if req.header {
                header_arrays()
            } else {
                Vec::new()
            };
            stream_response(csv_chunks(batch, &heads, true), "text/csv")
        }
    }
}

pub(super) async fn druid_datasources(
    State(server): State<AppState>,
    axum::extract::Extension(who): Who,
) -> Response {
    let names = server.readable_tables(&who);
    axum::Json(names).into_response()
}

pub(super) async fn status(State(server): State<AppState>) -> Response {
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "modules": [],
        "memory": {},
        "server": "basalt",
        "uptime_s": server.started.elapsed().as_secs(),
    }))
    .into_response()
}
