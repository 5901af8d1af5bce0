//! Running queries and a bounded log of finished ones: what `sys.queries` and `sys.query_log` answer in SQL,
//! `GET /v1/queries` over HTTP, and what `KILL QUERY 'id'` (or `DELETE /v1/queries/{id}`) cancels. A user sees and
//! cancels only its own queries; an admin sees and cancels all.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use basalt_query::{HostTables, QueryResult};
use serde::Serialize;

use super::access::Principal;
use super::ServeError;

/// A query being executed.
struct Running {
    cancel: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
    user: String,
    api: &'static str,
    sql: String,
    started_ms: i64,
    started: Instant,
}

/// A finished query, as the log keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct Finished {
    pub query_id: String,
    pub user: String,
    pub api: &'static str,
    pub sql: String,
    pub started: String,
    pub duration_ms: f64,
    /// Rows of the result (`None` when it failed).
    pub rows: Option<u64>,
    pub rows_scanned: u64,
    pub bytes_scanned: u64,
    pub error: Option<String>,
}

/// A running query as listed.
#[derive(Debug, Clone, Serialize)]
pub struct RunningView {
    pub query_id: String,
    pub user: String,
    pub api: &'static str,
    pub sql: String,
    pub started: String,
    pub elapsed_ms: f64,
    pub rows_scanned: u64,
}

/// The server's running queries and its query log.
pub struct Registry {
    running: Mutex<HashMap<String, Running>>,
    log: Mutex<VecDeque<Finished>>,
    capacity: usize,
}

/// What a query needs from its registration: its cancel flag and its progress counter.
pub struct Registered {
    pub cancel: Arc<AtomicBool>,
    pub progress: Arc<AtomicU64>,
}

fn iso(ms: i64) -> String {
    basalt_segment::granularity::format_iso(ms)
}

impl Registry {
    pub fn new(capacity: usize) -> Registry {
        Registry {
            running: Mutex::new(HashMap::new()),
            log: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    /// Registers query `id` of `user`. A client-chosen id (Druid's sqlQueryId) that is running already is refused,
    /// so that it cannot take over the other query's cancel handle.
    pub fn register(
        &self,
        id: &str,
        user: &str,
        api: &'static str,
        sql: String,
    ) -> Result<Registered, ServeError> {
        let mut m = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if m.contains_key(id) {
            return Err(ServeError::Conflict(format!(
                "a query with id {id:?} is already running"
            )));
        }
        let r = Registered {
            cancel: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(AtomicU64::new(0)),
        };
        m.insert(
            id.to_string(),
            Running {
                cancel: r.cancel.clone(),
                progress: r.progress.clone(),
                user: user.to_string(),
                api,
                sql,
                started_ms: chrono::Utc::now().timestamp_millis(),
                started: Instant::now(),
            },
        );
        Ok(r)
    }

    /// Moves query `id` from the running ones to the log, with its outcome (`None`: the client went away).
    pub fn finish(&self, id: &str, outcome: Option<&Result<QueryResult, ServeError>>) {
        let Some(q) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        let (rows, rows_scanned, bytes_scanned, error) = match outcome {
            Some(Ok(r)) => (
                Some(r.batch.num_rows() as u64),
                r.stats.rows_scanned,
                r.stats.bytes_scanned,
                None,
            ),
            Some(Err(e)) => (
                None,
                q.progress.load(Ordering::Relaxed),
                0,
                Some(e.message()),
            ),
            None => (
                None,
                q.progress.load(Ordering::Relaxed),
                0,
                Some("cancelled: the client went away".to_string()),
            ),
        };
        let entry = Finished {
            query_id: id.to_string(),
            user: q.user,
            api: q.api,
            sql: q.sql,
            started: iso(q.started_ms),
            duration_ms: q.started.elapsed().as_secs_f64() * 1e3,
            rows,
            rows_scanned,
            bytes_scanned,
            error,
        };
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= self.capacity {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// Cancels query `id` if `who` may (its own, or any for an admin); whether it did. Another user's query is
    /// not found, as if it did not exist.
    pub fn cancel(&self, id: &str, who: &Principal) -> bool {
        let m = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(id) {
            Some(q) if who.superuser || q.user.eq_ignore_ascii_case(&who.name) => {
                q.cancel.store(true, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// The running queries and the log entries `who` may see, oldest first.
    pub fn visible(&self, who: &Principal) -> (Vec<RunningView>, Vec<Finished>) {
        let mine = |user: &str| who.superuser || user.eq_ignore_ascii_case(&who.name);
        let mut running: Vec<RunningView> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, q)| mine(&q.user))
            .map(|(id, q)| RunningView {
                query_id: id.clone(),
                user: q.user.clone(),
                api: q.api,
                sql: q.sql.clone(),
                started: iso(q.started_ms),
                elapsed_ms: q.started.elapsed().as_secs_f64() * 1e3,
                rows_scanned: q.progress.load(Ordering::Relaxed),
            })
            .collect();
        running.sort_by(|a, b| a.started.cmp(&b.started).then(a.query_id.cmp(&b.query_id)));
        let log = self
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|q| mine(&q.user))
            .cloned()
            .collect();
        (running, log)
    }
}

/// `sys.queries` and `sys.query_log` as one user sees them.
#[derive(Debug)]
pub struct QueryTables {
    pub registry: Arc<Registry>,
    pub who: Principal,
    /// The users and roles, with auth on (for `pg_roles`).
    pub access: Option<Arc<super::access::Access>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

fn text(name: &str, values: Vec<Option<String>>) -> (Field, ArrayRef) {
    (
        Field::new(name, DataType::Utf8, true),
        Arc::new(StringArray::from(values)),
    )
}

fn long(name: &str, values: Vec<Option<i64>>) -> (Field, ArrayRef) {
    (
        Field::new(name, DataType::Int64, true),
        Arc::new(Int64Array::from(values)),
    )
}

fn double(name: &str, values: Vec<f64>) -> (Field, ArrayRef) {
    (
        Field::new(name, DataType::Float64, true),
        Arc::new(Float64Array::from(values)),
    )
}

fn batch(columns: Vec<(Field, ArrayRef)>) -> Option<RecordBatch> {
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).ok()
}

impl HostTables for QueryTables {
    fn names(&self) -> &'static [&'static str] {
        &["queries", "query_log"]
    }

    fn roles(&self) -> Vec<basalt_query::HostRole> {
        self.access
            .as_ref()
            .map(|a| a.host_roles())
            .unwrap_or_default()
    }

    fn batch(&self, name: &str) -> Option<RecordBatch> {
        let (running, log) = self.registry.visible(&self.who);
        match name {
            "queries" => batch(vec![
                text(
                    "query_id",
                    running.iter().map(|q| Some(q.query_id.clone())).collect(),
                ),
                text(
                    "user",
                    running.iter().map(|q| Some(q.user.clone())).collect(),
                ),
                text(
                    "api",
                    running.iter().map(|q| Some(q.api.to_string())).collect(),
                ),
                text("sql", running.iter().map(|q| Some(q.sql.clone())).collect()),
                text(
                    "started",
                    running.iter().map(|q| Some(q.started.clone())).collect(),
                ),
                double("elapsed_ms", running.iter().map(|q| q.elapsed_ms).collect()),
                long(
                    "rows_scanned",
                    running
                        .iter()
                        .map(|q| Some(q.rows_scanned as i64))
                        .collect(),
                ),
            ]),
            "query_log" => batch(vec![
                text(
                    "query_id",
                    log.iter().map(|q| Some(q.query_id.clone())).collect(),
                ),
                text("user", log.iter().map(|q| Some(q.user.clone())).collect()),
                text("api", log.iter().map(|q| Some(q.api.to_string())).collect()),
                text("sql", log.iter().map(|q| Some(q.sql.clone())).collect()),
                text(
                    "started",
                    log.iter().map(|q| Some(q.started.clone())).collect(),
                ),
                double("duration_ms", log.iter().map(|q| q.duration_ms).collect()),
                long(
                    "rows",
                    log.iter().map(|q| q.rows.map(|r| r as i64)).collect(),
                ),
                long(
                    "rows_scanned",
                    log.iter().map(|q| Some(q.rows_scanned as i64)).collect(),
                ),
                long(
                    "bytes_scanned",
                    log.iter().map(|q| Some(q.bytes_scanned as i64)).collect(),
                ),
                text("error", log.iter().map(|q| q.error.clone()).collect()),
            ]),
            _ => None,
        }
    }
}
