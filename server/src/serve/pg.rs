//! The PostgreSQL wire protocol face, on the `pgwire` crate: simple and extended query protocols, text and
//! binary result formats, session statements clients send on connect (`SET`, `SHOW`, `BEGIN`/`COMMIT`), and
//! session functions (`version()`, `current_setting(...)`; `basalt_query::session`) folded to constants for the
//! connection's user before the engine plans the query. Catalog queries (`information_schema`, `pg_catalog`) are answered by the engine.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use async_trait::async_trait;
use basalt_query::session::{setting, SERVER_VERSION};
use basalt_query::{Face, QueryContext, QueryError, Scalar};
use futures::{stream, Sink};
use pgwire::api::auth::md5pass::{hash_md5_password, Md5PasswordAuthStartupHandler};
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, AuthSource,
    DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionGuard, ConnectionHandle, ConnectionManager,
    PgWireConnectionState, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use sqlparser::ast::{self};

use super::{ServeError, Server};
use crate::output::format_f64;

fn pg_error(e: &ServeError) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".into(), e.sqlstate().into(), e.message());
    if let ServeError::Query(QueryError::UnknownColumn { hint, .. }) = e {
        if !hint.is_empty() {
            info.hint = Some(hint.trim().to_string());
        }
    }
    PgWireError::UserError(Box::new(info))
}

fn user_error(code: &str, msg: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        msg.into(),
    )))
}

/// A parsed statement as the extended protocol stores it.
#[derive(Debug, Clone)]
pub struct PgStatement {
    pub stmt: ast::Statement,
    /// The connection's user, so that Describe plans with that user's grants.
    pub user: String,
}

/// Parses statements and describes their results without running them.
pub struct PgParser {
    server: Arc<Server>,
}

/// What a statement is, for the session layer.
enum Kind {
    Begin,
    Commit,
    Rollback,
    Set,
    /// `SET basalt.cache = on | off`: this connection's queries use the result cache or not.
    SetCache(bool),
    Show(String),
    Other(&'static str),
    Query,
    /// DROP TABLE, DELETE: run by the server, answered with a command tag.
    Write(&'static str),
}

/// The per-connection setting that turns the result cache off, kept in the connection's metadata.
const CACHE_SETTING: &str = "basalt.cache";

/// The value of `SET basalt.cache = ...` (`SET basalt.cache TO off`, quoted or not); DEFAULT is on.
fn cache_setting(text: &str) -> Result<bool, PgWireError> {
    let value = set_value(text).trim_matches('\'');
    match value {
        "on" | "true" | "1" | "yes" | "default" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(user_error(
            "22023",
            format!("parameter \"{CACHE_SETTING}\" requires a Boolean value, not {value:?}"),
        )),
    }
}

/// The value of a SET statement's text (`set x = v`, `set x to v`): its last word.
fn set_value(text: &str) -> &str {
    text.rsplit([' ', '=']).next().unwrap_or("").trim()
}

/// Whether this connection turned the result cache off.
fn cache_off(session: &HashMap<String, String>) -> bool {
    session.get(CACHE_SETTING).is_some_and(|v| v == "off")
}

fn kind(stmt: &ast::Statement) -> Result<Kind, PgWireError> {
    if let Some(tag) = super::access::classify(stmt) {
        return Ok(Kind::Write(tag));
    }
    Ok(match stmt {
        ast::Statement::StartTransaction { .. } => Kind::Begin,
        ast::Statement::Commit { .. } => Kind::Commit,
        ast::Statement::Rollback { .. } => Kind::Rollback,
        ast::Statement::Set(set) => {
            let text = set.to_string().to_ascii_lowercase();
            if text.contains(CACHE_SETTING) {
                return cache_setting(&text).map(Kind::SetCache);
            }
            if text.contains("time zone") || text.contains("timezone") {
                let ok = [
                    "'utc'",
                    "utc",
                    "'etc/utc'",
                    "'gmt'",
                    "'z'",
                    "0",
                    "'+00:00'",
                    "local",
                    "default",
                ];
                let value = set_value(&text);
                if !ok.contains(&value) {
                    return Err(user_error(
                        "22023",
                        format!("time zone {value} is not supported: basalt computes time in UTC"),
                    ));
                }
            }
            Kind::Set
        }
        ast::Statement::ShowVariable { variable } => {
            let words: Vec<String> = variable
                .iter()
                .map(|i| i.value.to_ascii_lowercase())
                .collect();
            // The parser drops the dot of a custom setting's name (`basalt.cache` comes as two words).
            if words == ["basalt", "cache"] {
                Kind::Show(CACHE_SETTING.into())
            } else {
                Kind::Show(words.join(" "))
            }
        }
        ast::Statement::Discard { .. } => Kind::Other("DISCARD ALL"),
        ast::Statement::Deallocate { .. } => Kind::Other("DEALLOCATE"),
        ast::Statement::Drop { .. } => Kind::Write("DROP TABLE"),
        ast::Statement::Delete(_) => Kind::Write("DELETE"),
        ast::Statement::Query(_) | ast::Statement::Explain { .. } => Kind::Query,
        _ => Kind::Query,
    })
}

/// The PostgreSQL type of a result column.
fn pg_type(t: &DataType) -> Type {
    match t {
        DataType::Int64 | DataType::Int32 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float64 | DataType::Float32 => Type::FLOAT8,
        DataType::Boolean => Type::BOOL,
        DataType::Timestamp(_, _) => Type::TIMESTAMPTZ,
        _ => Type::TEXT,
    }
}

fn fields(batch: &RecordBatch, format: Option<&Format>) -> Vec<FieldInfo> {
    batch
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            FieldInfo::new(
                f.name().clone(),
                None,
                None,
                pg_type(f.data_type()),
                format.map_or(FieldFormat::Text, |fm| fm.format_for(i)),
            )
        })
        .collect()
}

/// `2024-01-01 06:01:00+00`, with milliseconds when they are not zero, as PostgreSQL prints `timestamptz`.
fn pg_timestamp(ms: i64) -> String {
    let dt = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    if ms.rem_euclid(1000) == 0 {
        dt.format("%Y-%m-%d %H:%M:%S+00").to_string()
    } else {
        dt.format("%Y-%m-%d %H:%M:%S%.3f+00").to_string()
    }
}

fn encode_rows(
    batch: &RecordBatch,
    schema: Arc<Vec<FieldInfo>>,
) -> PgWireResult<Vec<PgWireResult<pgwire::messages::data::DataRow>>> {
    let mut enc = DataRowEncoder::new(schema.clone());
    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        for (c, col) in batch.columns().iter().enumerate() {
            let binary = schema[c].format() == FieldFormat::Binary;
            encode_cell(&mut enc, col.as_ref(), r, binary)?;
        }
        rows.push(Ok(enc.take_row()));
    }
    Ok(rows)
}

fn encode_cell(
    enc: &mut DataRowEncoder,
    a: &dyn Array,
    r: usize,
    binary: bool,
) -> PgWireResult<()> {
    if a.data_type() == &DataType::Null || a.is_null(r) {
        return enc.encode_field(&None::<i64>);
    }
    match a.data_type() {
        DataType::Int64 => {
            let v = a.as_primitive::<Int64Type>().value(r);
            if binary {
                enc.encode_field(&v)
            } else {
                enc.encode_field(&v.to_string())
            }
        }
        DataType::Float64 => {
            let v = a.as_primitive::<Float64Type>().value(r);
            if binary {
                enc.encode_field(&v)
            } else {
                enc.encode_field(&format_f64(v))
            }
        }
        DataType::Boolean => {
            let v = a.as_boolean().value(r);
            if binary {
                enc.encode_field(&v)
            } else {
                enc.encode_field(&if v { "t" } else { "f" }.to_string())
            }
        }
        DataType::Timestamp(_, _) => {
            let ms = a.as_primitive::<TimestampMillisecondType>().value(r);
            if binary {
                let dt = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
                enc.encode_field(&dt)
            } else {
                enc.encode_field(&pg_timestamp(ms))
            }
        }
        _ => enc.encode_field(&crate::output::cell(a, r).unwrap_or_default()),
    }
}

/// Decodes bound parameters by their declared types (text or binary).
fn decode_params(portal: &Portal<PgStatement>) -> PgWireResult<Vec<Scalar>> {
    let mut out = Vec::with_capacity(portal.parameters.len());
    for (i, raw) in portal.parameters.iter().enumerate() {
        let Some(bytes) = raw else {
            out.push(Scalar::Null);
            continue;
        };
        let ty = portal
            .statement
            .parameter_types
            .get(i)
            .cloned()
            .flatten()
            .unwrap_or(Type::UNKNOWN);
        let bad = |why: &str| user_error("22P02", format!("parameter ${}: {why}", i + 1));
        let v = if portal.parameter_format.is_binary(i) {
            let fixed = |n: usize| -> PgWireResult<&[u8]> {
                (bytes.len() == n)
                    .then_some(&bytes[..])
                    .ok_or_else(|| bad("wrong binary length"))
            };
            match ty {
                Type::INT2 => Scalar::Int(i16::from_be_bytes(
                    fixed(2)?.try_into().map_err(|_| bad("int2"))?,
                ) as i64),
                Type::INT4 => Scalar::Int(i32::from_be_bytes(
                    fixed(4)?.try_into().map_err(|_| bad("int4"))?,
                ) as i64),
                Type::INT8 => Scalar::Int(i64::from_be_bytes(
                    fixed(8)?.try_into().map_err(|_| bad("int8"))?,
                )),
                Type::FLOAT4 => Scalar::Float(f32::from_be_bytes(
                    fixed(4)?.try_into().map_err(|_| bad("float4"))?,
                ) as f64),
                Type::FLOAT8 => Scalar::Float(f64::from_be_bytes(
                    fixed(8)?.try_into().map_err(|_| bad("float8"))?,
                )),
                Type::BOOL => Scalar::Bool(fixed(1)?[0] != 0),
                Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                    // Microseconds since 2000-01-01.
                    let us =
                        i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| bad("timestamp"))?);
                    Scalar::Timestamp(us.div_euclid(1000) + 946_684_800_000)
                }
                Type::NUMERIC => {
                    return Err(bad(
                        "binary numeric parameters are not supported; send text",
                    ))
                }
                _ => Scalar::Str(String::from_utf8(bytes.to_vec()).map_err(|_| bad("not UTF-8"))?),
            }
        } else {
            let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
            match ty {
                Type::INT2 | Type::INT4 | Type::INT8 => {
                    Scalar::Int(text.trim().parse().map_err(|_| bad("not an integer"))?)
                }
                Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => {
                    Scalar::Float(text.trim().parse().map_err(|_| bad("not a number"))?)
                }
                Type::BOOL => Scalar::Bool(matches!(
                    text.trim().to_ascii_lowercase().as_str(),
                    "t" | "true" | "yes" | "on" | "1"
                )),
                _ => Scalar::Str(text.to_string()),
            }
        };
        out.push(v);
    }
    Ok(out)
}

impl PgParser {
    /// The result columns of a statement, found by planning it over no rows.
    fn describe(
        &self,
        stmt: &PgStatement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let s = &stmt.stmt;
        match kind(s)? {
            Kind::Show(name) => {
                return Ok(vec![FieldInfo::new(
                    name.to_ascii_lowercase(),
                    None,
                    None,
                    Type::TEXT,
                    FieldFormat::Text,
                )])
            }
            Kind::Query => {}
            _ => return Ok(Vec::new()),
        }
        let n = basalt_query::count_params(s).map_err(|e| pg_error(&e.into()))?;
        let nulls = vec![Scalar::Null; n];
        let who = self
            .server
            .principal_of(&stmt.user)
            .map_err(|e| pg_error(&e))?;
        let ctx = QueryContext {
            face: Face::Postgres,
            params: nulls,
            user: Some(who.name.clone()),
            readable: who.readable(),
            ..Default::default()
        };
        let opts = basalt_query::ExecOptions {
            describe_only: true,
            threads: 1,
            ..Default::default()
        };
        let r = basalt_query::run_statement(self.server.catalog.as_ref(), s, &opts, &ctx)
            .map_err(|e| pg_error(&e.into()))?;
        Ok(fields(&r.batch, format))
    }
}

#[async_trait]
impl QueryParser for PgParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut stmts = basalt_query::parse_all(sql).map_err(|e| pg_error(&e.into()))?;
        match stmts.len() {
            0 => Ok(None),
            1 => Ok(Some(PgStatement {
                stmt: stmts.remove(0),
                user: connection_user(&self.server, client.metadata()),
            })),
            _ => Err(user_error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            )),
        }
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        let n = basalt_query::count_params(&stmt.stmt).map_err(|e| pg_error(&e.into()))?;
        Ok(vec![Type::TEXT; n])
    }

    fn get_result_schema(
        &self,
        stmt: &PgStatement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.describe(stmt, column_format)
    }
}

/// The user a connection logged in as (with auth off, every connection is `pg_user`).
fn connection_user(server: &Server, metadata: &HashMap<String, String>) -> String {
    if !server.config.auth {
        return server.config.pg_user.clone();
    }
    metadata
        .get(pgwire::api::METADATA_USER)
        .cloned()
        .unwrap_or_default()
}

/// Answers queries on a connection.
pub struct PgHandler {
    server: Arc<Server>,
    parser: Arc<PgParser>,
    /// This connection's statements, for the idle timeout.
    activity: Arc<super::conns::Activity>,
}

impl PgHandler {
    async fn run(
        &self,
        stmt: ast::Statement,
        params: Vec<Scalar>,
        format: Option<&Format>,
        cancel: Option<Arc<ConnectionHandle>>,
        session: &mut HashMap<String, String>,
    ) -> PgWireResult<Response> {
        let _running = self.activity.begin();
        // Looked up for every statement: a dropped user or a revoked grant takes effect on open connections too.
        let who = self
            .server
            .principal_of(&connection_user(&self.server, session))
            .map_err(|e| pg_error(&e))?;
        let user = who.name.clone();
        let write_tag = match kind(&stmt)? {
            Kind::Begin => return Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            Kind::Commit => return Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
            Kind::Rollback => return Ok(Response::TransactionEnd(Tag::new("ROLLBACK"))),
            Kind::Set => return Ok(Response::Execution(Tag::new("SET"))),
            Kind::SetCache(on) => {
                session.insert(CACHE_SETTING.into(), if on { "on" } else { "off" }.into());
                return Ok(Response::Execution(Tag::new("SET")));
            }
            Kind::Other(tag) => return Ok(Response::Execution(Tag::new(tag))),
            Kind::Show(name) => {
                let key = if name.eq_ignore_ascii_case("transaction isolation level") {
                    "transaction_isolation"
                } else {
                    name.as_str()
                };
                let cache = key.eq_ignore_ascii_case(CACHE_SETTING);
                let value = if cache {
                    Some(if cache_off(session) { "off" } else { "on" }.to_string())
                } else {
                    setting(key, &user)
                };
                let value = value.ok_or_else(|| {
                    user_error(
                        "42704",
                        format!("unrecognized configuration parameter \"{name}\""),
                    )
                })?;
                let schema = Arc::new(vec![FieldInfo::new(
                    name.to_ascii_lowercase(),
                    None,
                    None,
                    Type::TEXT,
                    FieldFormat::Text,
                )]);
                let mut enc = DataRowEncoder::new(schema.clone());
                enc.encode_field(&value)?;
                let row = enc.take_row();
                return Ok(Response::Query(QueryResponse::new(
                    schema,
                    stream::iter(vec![Ok(row)]),
                )));
            }
            Kind::Query => None,
            Kind::Write(tag) => Some(tag),
        };
        // Session functions fold inside the engine, after the parameters are bound
        // (`current_setting($1)`).
        let ctx = QueryContext {
            face: Face::Postgres,
            params,
            user: Some(user.clone()),
            skip_cache: cache_off(session),
            ..Default::default()
        };
        let id = self.server.new_query_id();
        let query = self.server.query_statement(stmt, ctx, "pg", id, &who);
        // A CancelRequest for this connection drops the query future, which cancels the running query.
        let result = match cancel {
            Some(handle) => {
                let mut cancelled = handle.start_query().await;
                tokio::select! {
                    r = query => r,
                    Ok(()) = &mut cancelled => Err(ServeError::Query(QueryError::Cancelled)),
                }
            }
            None => query.await,
        }
        .map_err(|e| pg_error(&e))?;
        if let Some(tag) = write_tag {
            let rows = result
                .batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .map_or(0, |a| a.value(0).max(0) as usize);
            return Ok(Response::Execution(if tag == "DELETE" {
                Tag::new(tag).with_rows(rows)
            } else {
                Tag::new(tag)
            }));
        }
        let schema = Arc::new(fields(&result.batch, format));
        let rows = encode_rows(&result.batch, schema.clone())?;
        Ok(Response::Query(QueryResponse::new(
            schema,
            stream::iter(rows),
        )))
    }
}

/// The connection's cancel handle, registered under its BackendKeyData for CancelRequests.
struct CancelSlot {
    handle: Arc<ConnectionHandle>,
    _guard: ConnectionGuard,
}

fn cancel_handle<C: ClientInfo>(client: &C) -> Option<Arc<ConnectionHandle>> {
    client
        .session_extensions()
        .get::<CancelSlot>()
        .map(|s| s.handle.clone())
}

#[async_trait]
impl SimpleQueryHandler for PgHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmts = match basalt_query::parse_all(query) {
            Ok(s) => s,
            Err(e) => return Err(pg_error(&e.into())),
        };
        if stmts.is_empty() {
            // A query of only comments (`-- ping`).
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut out = Vec::with_capacity(stmts.len());
        let cancel = cancel_handle(client);
        for stmt in stmts {
            match self
                .run(
                    stmt,
                    Vec::new(),
                    None,
                    cancel.clone(),
                    client.metadata_mut(),
                )
                .await
            {
                Ok(r) => out.push(r),
                Err(PgWireError::UserError(info)) => {
                    // PostgreSQL stops a multi-statement string at its first error.
                    out.push(Response::Error(info));
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgHandler {
    type Statement = PgStatement;
    type QueryParser = PgParser;

    fn query_parser(&self) -> Arc<PgParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let params = decode_params(portal)?;
        let cancel = cancel_handle(client);
        self.run(
            portal.statement.statement.stmt.clone(),
            params,
            Some(&portal.result_column_format),
            cancel,
            client.metadata_mut(),
        )
        .await
    }
}

/// Connection setup: no password on an open server, MD5 when `pg_password` is set. Either way the client gets
/// a process id and secret key (BackendKeyData) registered for CancelRequests.
pub struct Startup {
    auth: Auth,
    /// TLS is configured: a connection that did not ask for it is refused.
    tls_required: bool,
    keys: RandomPidSecretKeyGenerator,
    connections: Arc<ConnectionManager>,
}

pub enum Auth {
    Open(Arc<DefaultServerParameterProvider>),
    Password(Md5PasswordAuthStartupHandler<PasswordSource, DefaultServerParameterProvider>),
    /// Users of the catalog (auth on), by SCRAM-SHA-256.
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
    /// Users of the catalog (auth on), by MD5.
    UsersMd5(Md5PasswordAuthStartupHandler<super::auth::PgUsers, DefaultServerParameterProvider>),
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if self.tls_required
            && !client.is_secure()
            && matches!(message, PgWireFrontendMessage::Startup(_))
        {
            return Err(user_error(
                "28000",
                "this server accepts only TLS connections (it has tls_cert and tls_key): connect with sslmode=require or stricter",
            ));
        }
        // The key's size depends on the negotiated protocol version, so it is made after the negotiation.
        let assign_key = |client: &mut C| {
            let (pid, key) = self.keys.generate(client);
            client.set_pid_and_secret_key(pid, key);
        };
        match &self.auth {
            Auth::Password(h) => {
                if !matches!(message, PgWireFrontendMessage::Startup(_)) {
                    assign_key(client);
                }
                h.on_startup(client, message).await?
            }
            Auth::UsersMd5(h) => {
                if !matches!(message, PgWireFrontendMessage::Startup(_)) {
                    assign_key(client);
                }
                h.on_startup(client, message).await?
            }
            // The SASL driver assigns the key itself when authentication completes. A failed proof names the
            // SCRAM message's user, which libpq leaves empty (PostgreSQL ignores it): name the login's user.
            Auth::Scram(h) => h.on_startup(client, message).await.map_err(|e| match e {
                PgWireError::InvalidPassword(u) if u.is_empty() => PgWireError::InvalidPassword(
                    client
                        .metadata()
                        .get(pgwire::api::METADATA_USER)
                        .cloned()
                        .unwrap_or_default(),
                ),
                other => other,
            })?,
            Auth::Open(params) => {
                if let PgWireFrontendMessage::Startup(ref startup) = message {
                    protocol_negotiation(client, startup).await?;
                    save_startup_parameters_to_metadata(client, startup);
                    assign_key(client);
                    finish_authentication(client, params.as_ref()).await?;
                }
            }
        }
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery)
            && client.session_extensions().get::<CancelSlot>().is_none()
        {
            let (pid, key) = client.pid_and_secret_key();
            let (handle, guard) = self.connections.register(pid, key);
            client.session_extensions().insert(CancelSlot {
                handle,
                _guard: guard,
            });
        }
        Ok(())
    }
}

/// The configured user's password, for MD5 authentication.
#[derive(Debug)]
pub struct PasswordSource {
    user: String,
    password: String,
}

#[async_trait]
impl AuthSource for PasswordSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        if user != self.user {
            return Err(user_error(
                "28P01",
                format!("password authentication failed for user \"{user}\""),
            ));
        }
        let salt: [u8; 4] = rand_salt();
        let hash = hash_md5_password(user, &self.password, &salt);
        Ok(Password::new(Some(salt.to_vec()), hash.as_bytes().to_vec()))
    }
}

fn rand_salt() -> [u8; 4] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0x5eed);
    (nanos ^ std::process::id().rotate_left(16)).to_le_bytes()
}

fn parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = format!("{SERVER_VERSION} (basalt {})", env!("CARGO_PKG_VERSION"));
    p.time_zone = "UTC".into();
    p.date_style = "ISO, MDY".into();
    p.is_superuser = false;
    p.default_transaction_read_only = true;
    p
}

pub struct PgFactory {
    handler: Arc<PgHandler>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for PgFactory {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handler.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handler.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }
}

/// Accepts PostgreSQL connections until `stop` turns true.
pub async fn serve(
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let users = || {
        Arc::new(super::auth::PgUsers {
            server: server.clone(),
        })
    };
    let auth = if server.config.auth && server.config.pg_auth == "md5" {
        Auth::UsersMd5(Md5PasswordAuthStartupHandler::new(
            users(),
            Arc::new(parameters()),
        ))
    } else if server.config.auth {
        Auth::Scram(
            SASLAuthStartupHandler::new(Arc::new(parameters())).with_scram(ScramAuth::new(users())),
        )
    } else if server.config.pg_password.is_empty() {
        Auth::Open(Arc::new(parameters()))
    } else {
        Auth::Password(Md5PasswordAuthStartupHandler::new(
            Arc::new(PasswordSource {
                user: server.config.pg_user.clone(),
                password: server.config.pg_password.clone(),
            }),
            Arc::new(parameters()),
        ))
    };
    let connections = Arc::new(ConnectionManager::new());
    let startup = Startup {
        auth,
        tls_required: tls.is_some(),
        keys: RandomPidSecretKeyGenerator::default(),
        connections: connections.clone(),
    };
    let (startup, cancel) = (
        Arc::new(startup),
        Arc::new(DefaultCancelHandler::new(connections)),
    );
    let parser = Arc::new(PgParser {
        server: server.clone(),
    });
    let open = Arc::new(tokio::sync::Semaphore::new(
        server.config.pg_max_connections,
    ));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("pg accept failed: {e}");
                        continue;
                    }
                };
                let Ok(permit) = open.clone().try_acquire_owned() else {
                    tokio::spawn(super::conns::refuse_pg(socket));
                    continue;
                };
                // Each connection its own handler, which keeps the connection's idle clock.
                let activity = Arc::new(super::conns::Activity::new());
                let factory = Arc::new(PgFactory {
                    cancel: cancel.clone(),
                    handler: Arc::new(PgHandler {
                        server: server.clone(),
                        parser: parser.clone(),
                        activity: activity.clone(),
                    }),
                    startup: startup.clone(),
                });
                let tls = tls.clone();
                let guard = server.metrics.connection("pg");
                let idle = std::time::Duration::from_millis(server.config.pg_idle_timeout_ms);
                tokio::spawn(async move {
                    let (_guard, _permit) = (guard, permit);
                    let plain = tls.is_none();
                    super::conns::serve_pg(socket, peer, plain, activity, idle, |socket| {
                        pgwire::tokio::process_socket(socket, tls, factory)
                    })
                    .await;
                });
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}
