//! `basalt serve`: one process answering SQL over HTTP (basalt's API and a Druid-compatible one) and over the
//! PostgreSQL wire protocol. Every query goes through [`Server::query`], which enforces the concurrency limit,
//! the timeout and the result-size limit, checks what the user may read or change ([`access`], [`auth`]),
//! registers the query for cancellation and records metrics.

pub mod access;
pub mod auth;
pub mod config;
pub mod conns;
pub mod dml;
pub mod druid;
pub mod formats;
pub mod http;
pub mod ingest;
pub mod load;
pub mod metrics;
pub mod pg;
pub mod queries;
pub mod tls;
pub mod users;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use basalt_query::{ExecOptions, QueryContext, QueryError, QueryResult};
use basalt_segment::{Catalog, FileCatalog};
use sqlparser::ast::{self, Statement};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use config::Config;

/// Why a request failed, as the serving layer classifies it (mapped to HTTP statuses and SQLSTATEs).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(
        "too many queries: {running} running and {queued} waiting{} (max_concurrent_queries, max_queued_queries, queue_timeout_ms); retry later",
        match waited_ms { Some(ms) => format!(", and this one found no free slot in {ms} ms"), None => String::new() }
    )]
    Overloaded {
        running: usize,
        queued: usize,
        waited_ms: Option<u64>,
    },
    #[error(
        "the result has more than {0} rows (max_result_rows); add a LIMIT or aggregate further"
    )]
    ResultTooLarge(usize),
    #[error("request body is larger than the limit of {0} bytes")]
    BodyTooLarge(usize),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what the server holds (a table name taken in another case, a full limit).
    #[error("{0}")]
    Conflict(String),
    #[error("load failed: {0}")]
    Load(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// No valid credentials (HTTP 401, SQLSTATE 28P01).
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid credentials, not allowed to do this (HTTP 403, SQLSTATE 42501).
    #[error("{0}")]
    Forbidden(String),
}

impl ServeError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::Query(q) => match q {
                QueryError::Syntax { .. } => "sql_syntax",
                QueryError::Unsupported { .. } => "sql_unsupported",
                QueryError::UnknownTable { .. } => "unknown_table",
                QueryError::PermissionDenied { .. } => "forbidden",
                QueryError::UnknownColumn { .. } => "unknown_column",
                QueryError::UnknownSetting { .. } => "unknown_setting",
                QueryError::Invalid { .. } => "sql_invalid",
                QueryError::TooComplex { .. } => "too_complex",
                QueryError::Storage(_) => "storage",
                QueryError::Execution(_) => "execution",
                QueryError::DivisionByZero => "division_by_zero",
                QueryError::OutOfRange(_) => "out_of_range",
                QueryError::Internal(_) => "internal",
                QueryError::Cancelled => "cancelled",
                QueryError::Timeout(_) => "timeout",
                QueryError::MemoryLimit { .. } | QueryError::TooManyGroups { .. } => {
                    "resource_limit"
                }
            },
            ServeError::Overloaded { .. } => "overloaded",
            ServeError::ResultTooLarge(_) => "result_too_large",
            ServeError::BodyTooLarge(_) => "body_too_large",
            ServeError::BadRequest(_) => "bad_request",
            ServeError::NotFound(_) => "not_found",
            ServeError::Conflict(_) => "conflict",
            ServeError::Load(_) => "load_failed",
            ServeError::Internal(_) => "internal",
            ServeError::Unauthenticated(_) => "unauthenticated",
            ServeError::Forbidden(_) => "forbidden",
        }
    }

    /// The HTTP status of basalt's own API.
    pub fn http_status(&self) -> u16 {
        match self {
            ServeError::Query(QueryError::UnknownTable { .. }) | ServeError::NotFound(_) => 404,
            ServeError::Query(QueryError::Timeout(_)) => 504,
            ServeError::Query(QueryError::Cancelled) | ServeError::Conflict(_) => 409,
            ServeError::Query(QueryError::Storage(_) | QueryError::Internal(_))
            | ServeError::Internal(_) => 500,
            ServeError::Query(QueryError::MemoryLimit { .. })
            | ServeError::Query(QueryError::TooManyGroups { .. })
            | ServeError::ResultTooLarge(_)
            | ServeError::BodyTooLarge(_) => 413,
            ServeError::Overloaded { .. } => 429,
            ServeError::Unauthenticated(_) => 401,
            ServeError::Forbidden(_) | ServeError::Query(QueryError::PermissionDenied { .. }) => {
                403
            }
            _ => 400,
        }
    }

    /// The SQLSTATE of the PostgreSQL face.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ServeError::Query(q) => match q {
                QueryError::Syntax { .. } => "42601",
                QueryError::Unsupported { .. } => "0A000",
                QueryError::UnknownTable { .. } => "42P01",
                QueryError::PermissionDenied { .. } => "42501",
                QueryError::UnknownColumn { .. } => "42703",
                QueryError::UnknownSetting { .. } => "42704",
                QueryError::Invalid { .. } => "42804",
                QueryError::TooComplex { .. } => "54001",
                QueryError::Storage(_) => "XX001",
                QueryError::DivisionByZero => "22012",
                QueryError::OutOfRange(_) => "22003",
                QueryError::Execution(_) => "22000",
                QueryError::Internal(_) => "XX000",
                QueryError::Cancelled | QueryError::Timeout(_) => "57014",
                QueryError::MemoryLimit { .. } | QueryError::TooManyGroups { .. } => "53200",
            },
            ServeError::Overloaded { .. } => "53300",
            ServeError::ResultTooLarge(_) => "54000",
            ServeError::BodyTooLarge(_) => "54000",
            ServeError::BadRequest(_) => "08P01",
            ServeError::NotFound(_) => "42P01",
            ServeError::Conflict(_) => "42P07",
            ServeError::Load(_) => "22000",
            ServeError::Internal(_) => "XX000",
            ServeError::Unauthenticated(_) => "28P01",
            ServeError::Forbidden(_) => "42501",
        }
    }

    /// The message a client sees: the error's text with every absolute server path cut to its file name (a
    /// client needs the table and file, not where the server keeps them).
    pub fn message(&self) -> String {
        redact_paths(&self.to_string())
    }

    /// The position in the SQL text, when the error has one.
    pub fn position(&self) -> Option<basalt_query::Pos> {
        match self {
            ServeError::Query(q) => q.position(),
            _ => None,
        }
    }
}

/// Cuts absolute paths (`/a/b/c.seg`, also quoted or inside parentheses) to their last component (`c.seg`).
/// A lone `/` (division) or a relative path stays as it is.
pub(crate) fn redact_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('/') {
        let at_word_start = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '(' | '[' | '=' | ':'));
        let word_end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ']' | ',' | ';'))
            .map_or(rest.len(), |e| i + e);
        let word = &rest[i..word_end];
        out.push_str(&rest[..i]);
        match word.rfind('/') {
            Some(last) if at_word_start && last > 0 => {
                let name = word[last + 1..].trim_end_matches(':');
                if name.is_empty() {
                    out.push_str("(path)");
                }
                out.push_str(&word[last + 1..]);
            }
            _ => out.push_str(word),
        }
        rest = &rest[word_end..];
    }
    out.push_str(rest);
    out
}

/// The running server's shared state.
pub struct Server {
    pub config: Config,
    pub catalog: Arc<FileCatalog>,
    /// Real-time rows of the Kafka ingestions, read by every query together with the catalog.
    pub live: Arc<basalt_segment::LiveIndex>,
    pub ingest: basalt_ingest::kafka::Supervisors,
    pub metrics: metrics::Metrics,
    slots: Semaphore,
    waiting: AtomicUsize,
    /// Running queries and the log of finished ones (`sys.queries`, `sys.query_log`, `/v1/queries`).
    pub queries: Arc<queries::Registry>,
    /// The users and grants as last read from the catalog, and password checks already made.
    pub auth: auth::AuthState,
    next_id: AtomicU64,
    /// Serializes HTTP batch loads (the catalog has one writer).
    pub load_lock: tokio::sync::Mutex<()>,
    pub started: Instant,
    /// Per-segment partials shared by this server's queries; `None` when `result_cache_bytes` is 0.
    pub result_cache: Option<Arc<basalt_query::ResultCache>>,
}

/// Cancels a query when dropped before it finished (a client that went away), and unregisters it.
struct QueryGuard<'a> {
    server: &'a Server,
    id: String,
    cancel: Arc<AtomicBool>,
    done: bool,
}

impl Drop for QueryGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cancel.store(true, Ordering::Relaxed);
            self.server.queries.finish(&self.id, None);
        }
    }
}

impl Server {
    pub fn new(config: Config, catalog: FileCatalog) -> Self {
        let catalog = Arc::new(catalog);
        let live = Arc::new(basalt_segment::LiveIndex::new());
        let policy = basalt_ingest::kafka::Policy {
            tls_dirs: config.kafka_tls_dirs.clone(),
            max_ingestions: config.max_ingestions,
        };
        let result_cache = (config.result_cache_bytes > 0)
            .then(|| Arc::new(basalt_query::ResultCache::new(config.result_cache_bytes)));
        let queries = Arc::new(queries::Registry::new(config.query_log_entries));
        Server {
            slots: Semaphore::new(config.max_concurrent_queries),
            config,
            ingest: basalt_ingest::kafka::Supervisors::with_policy(
                catalog.clone(),
                live.clone(),
                policy,
            ),
            live,
            catalog,
            metrics: metrics::Metrics::new(),
            waiting: AtomicUsize::new(0),
            queries,
            auth: auth::AuthState::default(),
            next_id: AtomicU64::new(1),
            load_lock: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            result_cache,
        }
    }

    /// A fresh query id: 128 random bits from the operating system, so that no client can guess another's id
    /// and cancel its query (`DELETE /v1/queries/{id}`).
    pub fn new_query_id(&self) -> String {
        let mut bytes = [0u8; 16];
        if getrandom::fill(&mut bytes).is_err() {
            // No OS randomness (never seen on Linux): still unique, though guessable; say so in the log.
            tracing::warn!("no OS randomness for a query id; using a counter");
            let n = self.next_id.fetch_add(1, Ordering::Relaxed);
            bytes[..8].copy_from_slice(&n.to_le_bytes());
        }
        let mut id = String::with_capacity(32);
        for b in bytes {
            id.push_str(&format!("{b:02x}"));
        }
        id
    }

    /// Committed segments (of `table`, or all) whose file does not open, with the reason. Open segments are
    /// cached by the catalog, so this costs a file open only for the damaged ones. With deep storage only the
    /// local copies are checked: a status page must not download the whole table (a damaged object shows when a
    /// query downloads it: the download checks its crc32c).
    pub fn damaged_segments(
        &self,
        table: Option<&str>,
    ) -> Vec<(basalt_segment::SegmentEntry, String)> {
        let m = self.catalog.snapshot();
        m.segments
            .iter()
            .filter(|s| table.is_none_or(|t| s.table == t))
            .filter(|s| {
                self.catalog.deep_storage().is_none()
                    || self.catalog.segment_path(&s.table, &s.id).exists()
            })
            .filter_map(|s| match self.catalog.open_segment(s) {
                Ok(_) => None,
                Err(e) => Some((s.clone(), e.to_string())),
            })
            .collect()
    }

    /// Cancels a running query of `who` (an admin: anyone's); whether it was found. Another user's query is not
    /// found, as if it did not exist.
    pub fn cancel(&self, id: &str, who: &access::Principal) -> bool {
        self.queries.cancel(id, who)
    }

    /// Runs one query of `who` with the server's limits. `api` labels the metrics (`v1`, `druid`, `pg`).
    pub async fn query(
        &self,
        sql: &str,
        ctx: QueryContext,
        api: &'static str,
        id: String,
        who: &access::Principal,
    ) -> Result<QueryResult, ServeError> {
        match basalt_query::parse(sql) {
            Ok(stmt) => self.query_statement(stmt, ctx, api, id, who).await,
            Err(e) => {
                let r = Err(e.into());
                self.metrics
                    .record_query(api, &r, std::time::Duration::ZERO);
                r
            }
        }
    }

    /// Like [`Server::query`], for a statement already parsed.
    pub async fn query_statement(
        &self,
        stmt: Statement,
        ctx: QueryContext,
        api: &'static str,
        id: String,
        who: &access::Principal,
    ) -> Result<QueryResult, ServeError> {
        let start = Instant::now();
        // The log keeps statement texts; one that may hold a password keeps only its kind.
        let text = match access::classify(&stmt) {
            Some(tag) => format!("{tag} (text not kept: it may hold a password)"),
            None => stmt.to_string(),
        };
        let registered = match self.queries.register(&id, &who.name, api, text) {
            Ok(r) => r,
            Err(e) => {
                let r = Err(e);
                self.metrics.record_query(api, &r, start.elapsed());
                return r;
            }
        };
        let mut guard = QueryGuard {
            server: self,
            id: id.clone(),
            cancel: registered.cancel.clone(),
            done: false,
        };
        let r = self.query_inner(stmt, ctx, registered, who).await;
        guard.done = true;
        self.queries.finish(&id, Some(&r));
        self.metrics.record_query(api, &r, start.elapsed());
        r
    }

    async fn query_inner(
        &self,
        stmt: Statement,
        ctx: QueryContext,
        registered: queries::Registered,
        who: &access::Principal,
    ) -> Result<QueryResult, ServeError> {
        let cancel = registered.cancel;
        // KILL QUERY 'id' (read as SELECT kill_query('id')): the user's own queries, or any for an admin.
        if let Some(target) = kill_query_id(&stmt) {
            return if self.cancel(&target, who) {
                one_text_row("killed", &target)
            } else {
                Err(ServeError::NotFound(format!(
                    "no running query with id {target:?}"
                )))
            };
        }
        // DROP TABLE and DELETE change the catalog; the engine only reads.
        let time_column = |t: &str| {
            let m = self.catalog.snapshot();
            let name = crate::lifecycle::resolve(&m, t).ok()?;
            m.tables.get(&name).map(|s| s.time_column.clone())
        };
        if let Some(tag) = access::classify(&stmt) {
            return self.change_access_sql(stmt, tag, who).await;
        }
        if let Some(write) = dml::classify(&stmt, time_column) {
            let write = write?;
            match &write {
                dml::Write::Drop { .. } => who.require_admin("DROP TABLE")?,
                dml::Write::Delete { table, .. } => who.require_write(table)?,
            }
            return dml::execute(self, write).await;
        }
        // Sleeping is not work: it takes no query slot, so sleeping clients cannot starve the others.
        if let Some(seconds) = pg_sleep_seconds(&stmt) {
            return self.sleep(seconds, &cancel).await;
        }
        let _permit = self.slot().await?;
        let opts = ExecOptions {
            threads: if self.config.query_threads == 0 {
                ExecOptions::default().threads
            } else {
                self.config.query_threads
            },
            timeout_ms: self.config.query_timeout_ms,
            max_memory_bytes: self.config.query_max_memory_bytes,
            max_join_rows: self.config.max_join_rows,
            cancel,
            // run_statement leaves it out when the context says so (`QueryContext::skip_cache`).
            cache: self.result_cache.clone(),
            progress: Some(registered.progress),
            ..Default::default()
        };
        let catalog = self.catalog.clone();
        let max_rows = self.config.max_result_rows;
        self.metrics.running.inc();
        let mut ctx = ctx;
        ctx.live = Some(self.live.clone());
        ctx.readable = who.readable();
        let access = match self.config.auth {
            true => self.access().ok(),
            false => None,
        };
        ctx.host = Some(Arc::new(queries::QueryTables {
            registry: self.queries.clone(),
            who: who.clone(),
            access,
        }));
        let result = tokio::task::spawn_blocking(move || {
            basalt_query::run_statement(catalog.as_ref(), &stmt, &opts, &ctx)
        })
        .await;
        self.metrics.running.dec();
        let result =
            result.map_err(|e| ServeError::Internal(format!("query task failed: {e}")))??;
        if result.batch.num_rows() > max_rows {
            return Err(ServeError::ResultTooLarge(max_rows));
        }
        Ok(result)
    }
}

impl Server {
    /// CREATE ROLE/USER, ALTER, DROP ROLE/USER, GRANT, REVOKE: one compare-and-swap commit of the users and
    /// grants. The result is one row naming what was done (PostgreSQL's command tag).
    async fn change_access_sql(
        &self,
        stmt: Statement,
        tag: &'static str,
        who: &access::Principal,
    ) -> Result<QueryResult, ServeError> {
        let who = who.clone();
        let md5 = self.config.pg_auth == "md5";
        let manifest = self.catalog.snapshot();
        self.change_access(move |a| {
            let tables = |name: &str| crate::lifecycle::resolve(&manifest, name).ok();
            a.apply(&stmt, &who, md5, &tables)
        })
        .await?;
        one_text_row("result", tag)
    }

    /// Waits for a query slot: at most `max_queued_queries` wait, each at most `queue_timeout_ms`; past either
    /// bound the query is refused as overloaded (HTTP 429, SQLSTATE 53300) instead of left hanging.
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ServeError> {
        let overloaded = |queued: usize, waited_ms: Option<u64>| ServeError::Overloaded {
            running: self.config.max_concurrent_queries - self.slots.available_permits(),
            queued,
            waited_ms,
        };
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        if queued >= self.config.max_queued_queries {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(overloaded(queued, None));
        }
        let wait = std::time::Duration::from_millis(self.config.queue_timeout_ms);
        let r = tokio::time::timeout(wait, self.slots.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        match r {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(e)) => Err(ServeError::Internal(e.to_string())),
            Err(_) => Err(overloaded(queued, Some(self.config.queue_timeout_ms))),
        }
    }

    /// PostgreSQL's `pg_sleep`: holds no query slot for `seconds`, ended early by a cancel (HTTP DELETE, a
    /// PostgreSQL CancelRequest, a client that went away) or the query timeout. Clients and tests use it to keep
    /// a connection busy.
    async fn sleep(&self, seconds: f64, cancel: &AtomicBool) -> Result<QueryResult, ServeError> {
        let started = Instant::now();
        let wait = std::time::Duration::from_secs_f64(seconds.clamp(0.0, 86_400.0));
        let limit = self.config.query_timeout_ms;
        while started.elapsed() < wait {
            if cancel.load(Ordering::Relaxed) {
                return Err(QueryError::Cancelled.into());
            }
            if limit > 0 && started.elapsed() >= std::time::Duration::from_millis(limit) {
                return Err(QueryError::Timeout(limit).into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        one_text_row("pg_sleep", "")
    }
}

/// A one-row, one-column text result.
fn one_text_row(name: &str, value: &str) -> Result<QueryResult, ServeError> {
    let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        name,
        arrow_schema::DataType::Utf8,
        true,
    )]));
    let column: arrow_array::ArrayRef = Arc::new(arrow_array::StringArray::from(vec![value]));
    let batch = arrow_array::RecordBatch::try_new(schema, vec![column])
        .map_err(|e| ServeError::Internal(e.to_string()))?;
    Ok(QueryResult {
        batch,
        stats: Default::default(),
    })
}

/// Applies the tables' rules every `janitor_interval_ms` (retention drops, hot-tier evictions).
/// With a shared catalog: takes in other nodes' commits every `catalog_refresh_ms`, so that this node's queries
/// see their segments (and their users and grants).
fn spawn_catalog_refresh(server: Arc<Server>) {
    let every = server.config.catalog_refresh_ms;
    let Some(url) = server.catalog.shared_catalog() else {
        return;
    };
    if every == 0 {
        return;
    }
    tracing::info!(catalog = %url, every_ms = every, "shared catalog: following other nodes' commits");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let catalog = server.catalog.clone();
            match tokio::task::spawn_blocking(move || catalog.refresh()).await {
                Ok(Ok(true)) => {
                    tracing::debug!(
                        version = server.catalog.snapshot().version,
                        "catalog refreshed"
                    )
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "refreshing the shared catalog failed"),
                Err(e) => tracing::warn!(error = %e, "catalog refresh task failed"),
            }
        }
    });
}

fn spawn_janitor(server: Arc<Server>) {
    let every = server.config.janitor_interval_ms;
    if every == 0 {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let catalog = server.catalog.clone();
            let now = chrono::Utc::now().timestamp_millis();
            match tokio::task::spawn_blocking(move || crate::lifecycle::apply_rules(&catalog, now))
                .await
            {
                Ok(Ok(pass)) if pass.expired + pass.cooled > 0 => {
                    tracing::info!(
                        expired = pass.expired,
                        cooled = pass.cooled,
                        "janitor applied table rules"
                    )
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "janitor: applying table rules failed"),
                Err(e) => tracing::warn!(error = %e, "janitor task failed"),
            }
        }
    });
}

/// Starts the server and runs until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<()> {
    basalt_segment::cache::set_capacity(config.block_cache_bytes);
    let rules = crate::lifecycle::parse_table_rules(&config.table_rules)?;
    let catalog =
        FileCatalog::open_with_storage(&config.data_dir, "basalt serve", &config.storage())?;
    crate::lifecycle::apply_configured_rules(&catalog, rules)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("basalt-serve")
        // Requests are parsed and planned on these threads (and PostgreSQL's Describe plans on the async ones):
        // the stack that basalt_query::limits bounds every statement to.
        .thread_stack_size(basalt_query::limits::STACK_BYTES)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let server = Arc::new(Server::new(config, catalog));
        tracing::info!(settings = %server.config.describe(), "basalt serve starting");
        server
            .bootstrap_access()
            .await
            .map_err(|e| Error::Usage(e.message()))?;
        spawn_janitor(server.clone());
        spawn_catalog_refresh(server.clone());
        match server.ingest.resume_from_catalog() {
            Ok(ids) if !ids.is_empty() => tracing::info!(?ids, "kafka ingestions resumed"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot resume the kafka ingestions"),
        }
        let http_listener = tokio::net::TcpListener::bind(&server.config.http)
            .await
            .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", server.config.http)))?;
        let http_listener = conns::LimitedListener::new(http_listener, server.clone());
        let pg_listener = if server.config.pg.is_empty() {
            None
        } else {
            Some(
                tokio::net::TcpListener::bind(&server.config.pg)
                    .await
                    .map_err(|e| {
                        Error::Usage(format!("cannot listen on {}: {e}", server.config.pg))
                    })?,
            )
        };
        let tls = tls::acceptor(&server.config.tls_cert, &server.config.tls_key)?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let pg_task = pg_listener
            .map(|l| tokio::spawn(pg::serve(server.clone(), l, stop_rx.clone(), tls.clone())));
        // One line on stdout that scripts and tests wait for.
        println!(
            "basalt serving {}://{} pg {}",
            if tls.is_some() { "https" } else { "http" },
            axum::serve::Listener::local_addr(&http_listener)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            if server.config.pg.is_empty() {
                "off".to_string()
            } else {
                server.config.pg.clone()
            }
        );
        let app = http::router(server.clone());
        let mut http_stop = stop_rx.clone();
        let http_task = match tls {
            Some(acceptor) => tokio::spawn(async move {
                tls::serve_https(http_listener, app, acceptor, http_stop).await;
                Ok(())
            }),
            None => tokio::spawn(async move {
                axum::serve(http_listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = http_stop.wait_for(|s| *s).await;
                    })
                    .await
            }),
        };
        shutdown_signal().await;
        tracing::info!("shutdown requested: finishing in-flight requests");
        let _ = stop_tx.send(true);
        let grace = std::time::Duration::from_secs(10);
        if tokio::time::timeout(grace, http_task).await.is_err() {
            tracing::warn!("HTTP requests still running after {grace:?}; stopping anyway");
        }
        if let Some(t) = pg_task {
            let _ = tokio::time::timeout(grace, t).await;
        }
        // Hand off the Kafka ingestions' in-memory rows, so a restart re-reads nothing.
        let s = server.clone();
        let _ = tokio::task::spawn_blocking(move || s.ingest.shutdown()).await;
        tracing::info!("basalt serve stopped");
        Ok::<(), Error>(())
    })
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// `SELECT kill_query('id')`, which `KILL QUERY 'id'` parses to: the id.
pub(crate) fn kill_query_id(stmt: &ast::Statement) -> Option<String> {
    match single_call(stmt, "kill_query")? {
        ast::Value::SingleQuotedString(s) => Some(s.clone()),
        _ => None,
    }
}

/// `SELECT pg_sleep(seconds)`: the statement exactly, as clients and tests use it to hold a connection busy.
pub(crate) fn pg_sleep_seconds(stmt: &ast::Statement) -> Option<f64> {
    match single_call(stmt, "pg_sleep")? {
        ast::Value::Number(n, _) => n.parse::<f64>().ok().filter(|s| s.is_finite()),
        _ => None,
    }
}

/// The one literal argument of `SELECT name(literal)` (also `pg_catalog.name`), the whole statement.
fn single_call<'a>(stmt: &'a ast::Statement, name: &str) -> Option<&'a ast::Value> {
    let ast::Statement::Query(q) = stmt else {
        return None;
    };
    let ast::SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    if !select.from.is_empty() || select.selection.is_some() || select.projection.len() != 1 {
        return None;
    }
    let (ast::SelectItem::UnnamedExpr(ast::Expr::Function(f))
    | ast::SelectItem::ExprWithAlias {
        expr: ast::Expr::Function(f),
        ..
    }) = &select.projection[0]
    else {
        return None;
    };
    let called = f.name.to_string().to_ascii_lowercase();
    if called != name && called != format!("pg_catalog.{name}") {
        return None;
    }
    let ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Value(v)))] => {
            Some(&v.value)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::redact_paths;

    #[test]
    fn absolute_paths_are_cut_to_their_file_name() {
        assert_eq!(
            redact_paths("open /srv/basalt/data/segments/births_1.seg: bad trailer magic"),
            "open births_1.seg: bad trailer magic"
        );
        assert_eq!(
            redact_paths("load failed: \"/tmp/x/.scratch/upload-1.csv\" line 3 (/a/b)"),
            "load failed: \"upload-1.csv\" line 3 (b)"
        );
        assert_eq!(
            redact_paths("SELECT 1 / 0 and a/b stay"),
            "SELECT 1 / 0 and a/b stay"
        );
        assert_eq!(redact_paths("dir /data/: gone"), "dir (path): gone");
    }
}
