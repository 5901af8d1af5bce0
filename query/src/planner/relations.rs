//! Table names to tables: user tables (unquoted names case-insensitively), the system schemas, derived tables
//! and the one-row relation of a query without FROM.

use basalt_segment::TableSchema;
use sqlparser::ast::{self, Spanned};

use super::*;
use crate::error::{Pos, QueryError, Result};

/// Schemas whose tables are virtual catalog tables, named `schema.table` in a [`TableProvider`].
pub const SYSTEM_SCHEMAS: [&str; 3] = ["information_schema", "pg_catalog", "sys"];

/// Schemas that hold the user's tables.
pub const USER_SCHEMAS: [&str; 3] = ["druid", "public", "basalt"];

/// The provider key of a subquery in FROM: the engine runs it first and registers its rows under this name.
pub fn derived_key(subquery: &ast::Query) -> String {
    let p = pos_of(subquery);
    format!("\u{0}subquery@{}:{}", p.line, p.column)
}

/// The provider key of the one-row, no-column table that `SELECT` without `FROM` reads.
pub const DUAL_KEY: &str = "\u{0}dual";

/// Finds `name`: exactly when quoted; unquoted, the table of exactly that name, else the one table whose name
/// differs only in case. Table names are unique regardless of case (the catalog refuses a case variant), so
/// the second step finds at most one; a data directory from before that rule may hold two, and an unquoted
/// name matching both is an error, never a silent pick.
pub(crate) fn lookup(
    tables: &dyn TableProvider,
    name: &str,
    quoted: bool,
    pos: Pos,
) -> Result<Option<TableSchema>> {
    if let Some(t) = tables.table(name) {
        return Ok(Some(t));
    }
    if quoted {
        return Ok(None);
    }
    let matches: Vec<String> = tables
        .table_names()
        .into_iter()
        .filter(|t| t.eq_ignore_ascii_case(name))
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [one] => Ok(tables.table(one)),
        several => Err(QueryError::invalid(
            format!(
                "table name {name} is ambiguous: tables {} differ only in case; quote the name to pick one",
                several
                    .iter()
                    .map(|t| format!("\"{t}\""))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            pos,
        )),
    }
}

/// The table a FROM item names, and its alias.
pub fn resolve_relation(
    relation: &ast::TableFactor,
    tables: &dyn TableProvider,
) -> Result<(TableSchema, Option<String>)> {
    match relation {
        ast::TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => {
            let ident = name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .ok_or_else(|| QueryError::invalid("empty table name", pos_of(name)))?;
            let quoted = ident.quote_style.is_some();
            let unknown = || QueryError::UnknownTable {
                name: name.to_string(),
                pos: pos_of(name),
            };
            let pos = pos_of(name);
            let found = if name.0.len() > 1 {
                let schema = name.0[name.0.len() - 2]
                    .as_ident()
                    .map(|i| i.value.to_ascii_lowercase())
                    .unwrap_or_default();
                if SYSTEM_SCHEMAS.contains(&schema.as_str()) {
                    lookup(tables, &format!("{schema}.{}", ident.value), quoted, pos)?
                } else if USER_SCHEMAS.contains(&schema.as_str()) {
                    lookup(tables, &ident.value, quoted, pos)?
                } else {
                    return Err(unknown());
                }
            } else {
                match lookup(tables, &ident.value, quoted, pos)? {
                    Some(t) => Some(t),
                    None => lookup(tables, &format!("pg_catalog.{}", ident.value), quoted, pos)?,
                }
            };
            let table = match found {
                Some(t) => t,
                None if tables.denied(&ident.value) => {
                    return Err(QueryError::PermissionDenied {
                        name: ident.value.clone(),
                        pos,
                    })
                }
                None => return Err(unknown()),
            };
            Ok((table, alias.as_ref().map(|a| a.name.value.clone())))
        }
        ast::TableFactor::Derived {
            subquery, alias, ..
        } => {
            let table = tables.table(&derived_key(subquery)).ok_or_else(|| {
                QueryError::unsupported("a subquery in this position", pos_of(relation))
            })?;
            Ok((table, alias.as_ref().map(|a| a.name.value.clone())))
        }
        other => Err(QueryError::unsupported(
            format!("FROM {other}"),
            pos_of(other),
        )),
    }
}

pub(crate) fn pos_of(s: &impl Spanned) -> Pos {
    s.span().into()
}

/// Whether `ident` names `name`: exactly when quoted, case-insensitively otherwise.
pub(crate) fn ident_matches(ident: &ast::Ident, name: &str) -> bool {
    if ident.quote_style.is_some() {
        ident.value == name
    } else {
        ident.value.eq_ignore_ascii_case(name)
    }
}
