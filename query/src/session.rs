//! PostgreSQL session functions, answered the same on every face (HTTP, Druid SQL, PostgreSQL wire):
//! `version()`, `current_setting(name [, missing_ok])`, `current_schema()`, `current_database()`,
//! `current_user`, `pg_backend_pid()`, ... are folded to constants before planning, and [`setting`] answers
//! `SHOW` and `current_setting` alike. An unaliased session-function column is named after the function, as
//! PostgreSQL names it.

use std::ops::ControlFlow;

use sqlparser::ast::{self, VisitMut, VisitorMut};

use crate::error::{QueryError, Result};
use crate::expr::Scalar;
use crate::sql::literal;

/// The PostgreSQL version clients see (`SELECT version()` must start with `PostgreSQL`).
pub const SERVER_VERSION: &str = "16.6";
const SERVER_VERSION_NUM: &str = "160006";

/// The database name the PostgreSQL face reports.
pub const DATABASE: &str = "basalt";

/// The user a query runs as when its face has no login (HTTP without auth).
pub const DEFAULT_USER: &str = "basalt";

/// What `version()` answers.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (basalt {}) on x86_64-pc-linux-gnu, a real-time columnar OLAP store",
        env!("CARGO_PKG_VERSION")
    )
}

/// The settings basalt reports, by PostgreSQL's names, with their values and a description (`SHOW`,
/// `current_setting` and `pg_catalog.pg_settings` answer from this list). `session_authorization` and
/// `current_user` answer the session's user.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "server_version",
        SERVER_VERSION,
        "the PostgreSQL version basalt speaks",
    ),
    (
        "server_version_num",
        SERVER_VERSION_NUM,
        "the PostgreSQL version as a number",
    ),
    ("server_encoding", "UTF8", "the database's encoding"),
    ("client_encoding", "UTF8", "the client's encoding"),
    ("timezone", "UTC", "time zone of timestamps"),
    ("log_timezone", "UTC", "time zone of the logs"),
    ("datestyle", "ISO, MDY", "display format of dates"),
    ("intervalstyle", "postgres", "display format of intervals"),
    ("integer_datetimes", "on", "timestamps are 64-bit integers"),
    (
        "standard_conforming_strings",
        "on",
        "backslashes are literal in '...'",
    ),
    (
        "search_path",
        "\"$user\", public",
        "schemas searched for unqualified names",
    ),
    (
        "transaction_isolation",
        "read committed",
        "isolation of the transaction",
    ),
    (
        "default_transaction_isolation",
        "read committed",
        "isolation of new transactions",
    ),
    (
        "transaction_read_only",
        "on",
        "the transaction is read-only (basalt takes no writes over SQL)",
    ),
    (
        "default_transaction_read_only",
        "on",
        "new transactions are read-only",
    ),
    ("max_identifier_length", "63", "longest identifier"),
    ("lc_collate", "C.UTF-8", "collation order"),
    ("lc_ctype", "C.UTF-8", "character classification"),
    ("application_name", "", "the client's name"),
    ("extra_float_digits", "1", "digits of floating-point output"),
    (
        "statement_timeout",
        "0",
        "statement time limit (basalt's own is query_timeout_ms)",
    ),
    ("is_superuser", "off", "the user is a superuser"),
];

/// A setting `SHOW` and `current_setting` answer (`None`: no such setting).
pub fn setting(name: &str, user: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "session_authorization" | "current_user" => Some(user.to_string()),
        "time zone" => setting("timezone", user),
        _ => SETTINGS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| v.to_string()),
    }
}

/// Replaces the session functions of `stmt` by their values for `user`.
pub fn fold(stmt: &mut ast::Statement, user: &str) -> Result<()> {
    alias_session_columns(stmt);
    match stmt.visit(&mut SessionFolder { user }) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn function_name(f: &ast::Function) -> String {
    let name = f.name.to_string().to_ascii_lowercase();
    name.strip_prefix("pg_catalog.")
        .unwrap_or(&name)
        .to_string()
}

/// Names an unaliased session-function column after the function, as PostgreSQL does, before folding it.
fn alias_session_columns(stmt: &mut ast::Statement) {
    let ast::Statement::Query(q) = stmt else {
        return;
    };
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        return;
    };
    for item in &mut select.projection {
        if let ast::SelectItem::UnnamedExpr(ast::Expr::Function(f)) = item {
            let name = function_name(f);
            if crate::planner::registry::lookup(&name)
                .is_some_and(|f| f.kind == crate::planner::registry::Kind::Session)
            {
                let expr = ast::Expr::Function(f.clone());
                *item = ast::SelectItem::ExprWithAlias {
                    expr,
                    alias: ast::Ident::with_quote('"', name),
                };
            }
        }
    }
}

fn first_arg_is_null(f: &ast::Function) -> bool {
    let ast::FunctionArguments::List(l) = &f.args else {
        return false;
    };
    matches!(
        l.args.first(),
        Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Value(v))))
            if v.value == ast::Value::Null
    )
}

/// Folds session functions to constants.
struct SessionFolder<'a> {
    user: &'a str,
}

impl VisitorMut for SessionFolder<'_> {
    type Break = QueryError;

    fn post_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<QueryError> {
        let ast::Expr::Function(f) = e else {
            return ControlFlow::Continue(());
        };
        let name = function_name(f);
        let args: Vec<String> = match &f.args {
            ast::FunctionArguments::List(l) => l
                .args
                .iter()
                .map(|a| a.to_string().trim_matches('\'').to_string())
                .collect(),
            _ => Vec::new(),
        };
        let value = match name.as_str() {
            "version" => Scalar::Str(version_string()),
            "current_schema" => Scalar::Str("public".into()),
            "current_database" | "current_catalog" => Scalar::Str(DATABASE.into()),
            "current_user" | "session_user" | "user" => Scalar::Str(self.user.to_string()),
            "pg_backend_pid" => Scalar::Int(std::process::id() as i64),
            // Every table is in `public` (or pg_catalog), both on the search path; one owner.
            "pg_table_is_visible" => Scalar::Bool(true),
            "pg_get_userbyid" => Scalar::Str(self.user.to_string()),
            // Strict, as in PostgreSQL: a NULL name (a Describe binds parameters as NULL) answers NULL.
            "current_setting" if first_arg_is_null(f) => Scalar::Null,
            "current_setting" => match args.first().and_then(|a| setting(a, self.user)) {
                Some(v) => Scalar::Str(v),
                None if args.get(1).is_some_and(|m| m == "true") => Scalar::Null,
                None => {
                    return ControlFlow::Break(QueryError::UnknownSetting {
                        name: args.first().cloned().unwrap_or_default(),
                    })
                }
            },
            _ => return ControlFlow::Continue(()),
        };
        *e = literal(&value);
        ControlFlow::Continue(())
    }
}
