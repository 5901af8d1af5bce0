//! Statements that change data, answered by the server rather than the query engine: `DROP TABLE [IF EXISTS] t`
//! and `DELETE FROM t [WHERE <time bounds>]`, where the bounds are comparisons of the time column (or `__time`)
//! with timestamps (`<`, `<=`, `>`, `>=`, `BETWEEN`) that fall on the table's time-chunk boundaries. Each is one
//! catalog commit (`crate::lifecycle`): queries see all of it at once. A table a Kafka ingestion writes into is
//! refused (stop the ingestion first), so that no rows held in memory outlive the delete.

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use basalt_query::{QueryError, QueryResult};
use basalt_segment::Catalog;
use sqlparser::ast::{self, BinaryOperator, Expr, Statement};

use super::{ServeError, Server};
use crate::lifecycle::{self, Removed};

/// A data-changing statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Drop {
        tables: Vec<String>,
        if_exists: bool,
    },
    Delete {
        table: String,
        from: i64,
        to: i64,
    },
}

fn unsupported(what: impl Into<String>) -> ServeError {
    ServeError::Query(QueryError::unsupported(what, basalt_query::Pos::default()))
}

fn invalid(what: impl Into<String>) -> ServeError {
    ServeError::Query(QueryError::invalid(what, basalt_query::Pos::default()))
}

/// The write `stmt` asks for, or `None` when it is not one (a query). `time_column` gives a table's time column.
pub fn classify(
    stmt: &Statement,
    time_column: impl Fn(&str) -> Option<String>,
) -> Option<Result<Write, ServeError>> {
    match stmt {
        Statement::Drop {
            object_type,
            if_exists,
            names,
            ..
        } => Some(match object_type {
            ast::ObjectType::Table => Ok(Write::Drop {
                tables: names.iter().map(object_name).collect(),
                if_exists: *if_exists,
            }),
            other => Err(unsupported(format!("DROP {other}"))),
        }),
        Statement::Delete(d) => Some(delete(d, time_column)),
        Statement::Insert(_) | Statement::Update { .. } | Statement::Truncate { .. } => Some(Err(
            unsupported(
                "INSERT, UPDATE and TRUNCATE (rows come in through `basalt load`, POST /v1/tables/{t}/load or \
                 Kafka; DELETE removes whole time chunks)",
            ),
        )),
        _ => None,
    }
}

fn object_name(n: &ast::ObjectName) -> String {
    n.0.last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .unwrap_or_else(|| n.to_string())
}

fn delete(
    d: &ast::Delete,
    time_column: impl Fn(&str) -> Option<String>,
) -> Result<Write, ServeError> {
    let from = match &d.from {
        ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
    };
    let table = match from.as_slice() {
        [ast::TableWithJoins {
            relation: ast::TableFactor::Table { name, .. },
            joins,
        }] if joins.is_empty() => object_name(name),
        _ => return Err(unsupported("DELETE from anything but one table")),
    };
    if d.using.is_some() || d.returning.is_some() || d.limit.is_some() || !d.order_by.is_empty() {
        return Err(unsupported(
            "DELETE with USING, RETURNING, ORDER BY or LIMIT",
        ));
    }
    let time = time_column(&table).ok_or_else(|| {
        ServeError::Query(QueryError::UnknownTable {
            name: table.clone(),
            pos: basalt_query::Pos::default(),
        })
    })?;
    let (mut lo, mut hi) = (i64::MIN, i64::MAX);
    if let Some(w) = &d.selection {
        let mut parts = Vec::new();
        conjuncts(w, &mut parts);
        for p in parts {
            let (l, h) = bound(p, &time)?;
            lo = lo.max(l);
            hi = hi.min(h);
        }
    }
    Ok(Write::Delete {
        table,
        from: lo,
        to: hi,
    })
}

fn conjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(x) => conjuncts(x, out),
        other => out.push(other),
    }
}

fn is_time(e: &Expr, time: &str) -> bool {
    let name = match e {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(p) => match p.last() {
            Some(i) => &i.value,
            None => return false,
        },
        Expr::Nested(x) => return is_time(x, time),
        _ => return false,
    };
    name.eq_ignore_ascii_case(time) || name.eq_ignore_ascii_case("__time")
}

fn timestamp(e: &Expr) -> Result<i64, ServeError> {
    let text = match e {
        Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            other => return Err(invalid(format!("{other} is not a timestamp"))),
        },
        Expr::TypedString(t) => match &t.value.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            other => return Err(invalid(format!("{other} is not a timestamp"))),
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => return timestamp(expr),
        other => {
            return Err(unsupported(format!(
                "a DELETE bound that is not a timestamp literal ({other})"
            )))
        }
    };
    basalt_segment::granularity::parse_iso8601(&text)
        .ok_or_else(|| invalid(format!("{text:?} is not an ISO 8601 timestamp")))
}

/// `[from, to)` that one comparison of the time column allows.
fn bound(e: &Expr, time: &str) -> Result<(i64, i64), ServeError> {
    let only = || {
        unsupported(format!(
            "DELETE with the condition {e}: only bounds on the time column ({time} or __time) compared with \
             timestamps, joined by AND"
        ))
    };
    match e {
        Expr::BinaryOp { left, op, right } => {
            let (op, value) = if is_time(left, time) {
                (op.clone(), timestamp(right)?)
            } else if is_time(right, time) {
                let flipped = match op {
                    BinaryOperator::Lt => BinaryOperator::Gt,
                    BinaryOperator::LtEq => BinaryOperator::GtEq,
                    BinaryOperator::Gt => BinaryOperator::Lt,
                    BinaryOperator::GtEq => BinaryOperator::LtEq,
                    _ => return Err(only()),
                };
                (flipped, timestamp(left)?)
            } else {
                return Err(only());
            };
            Ok(match op {
                BinaryOperator::Lt => (i64::MIN, value),
                BinaryOperator::LtEq => (i64::MIN, value.saturating_add(1)),
                BinaryOperator::Gt => (value.saturating_add(1), i64::MAX),
                BinaryOperator::GtEq => (value, i64::MAX),
                _ => return Err(only()),
            })
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } if is_time(expr, time) => Ok((timestamp(low)?, timestamp(high)?.saturating_add(1))),
        _ => Err(only()),
    }
}

/// Carries out `w`; the result is one row: rows and segments removed.
pub async fn execute(server: &Server, w: Write) -> Result<QueryResult, ServeError> {
    let busy: Vec<String> = server
        .ingest
        .list()
        .into_iter()
        .filter(|s| s.state != "stopped")
        .map(|s| s.table)
        .collect();
    let targets: Vec<String> = match &w {
        Write::Drop { tables, .. } => tables.clone(),
        Write::Delete { table, .. } => vec![table.clone()],
    };
    if let Some(t) = targets
        .iter()
        .find(|t| busy.iter().any(|b| b.eq_ignore_ascii_case(t)))
    {
        return Err(ServeError::Conflict(format!(
            "table {t:?} has a running Kafka ingestion; stop it first (DELETE /v1/ingest/{{id}})"
        )));
    }
    let catalog = server.catalog.clone();
    let removed = tokio::task::spawn_blocking(move || -> crate::error::Result<Removed> {
        match w {
            Write::Drop { tables, if_exists } => {
                let mut total = Removed::default();
                for t in tables {
                    if if_exists && lifecycle::resolve(&catalog.snapshot(), &t).is_err() {
                        continue;
                    }
                    let r = lifecycle::drop_table(&catalog, &t)?;
                    total.rows += r.rows;
                    total.segments += r.segments;
                }
                Ok(total)
            }
            Write::Delete { table, from, to } => {
                lifecycle::delete_range(&catalog, &table, from, to)
            }
        }
    })
    .await
    .map_err(|e| ServeError::Internal(format!("write task failed: {e}")))?
    .map_err(|e| match e {
        crate::error::Error::Segment(basalt_segment::Error::UnknownTable(name)) => {
            ServeError::Query(QueryError::UnknownTable {
                name,
                pos: basalt_query::Pos::default(),
            })
        }
        crate::error::Error::Usage(m) => ServeError::BadRequest(m),
        other => ServeError::Internal(other.to_string()),
    })?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("rows_removed", DataType::Int64, false),
        Field::new("segments_removed", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![removed.rows as i64])),
        Arc::new(Int64Array::from(vec![removed.segments as i64])),
    ];
    let batch =
        RecordBatch::try_new(schema, columns).map_err(|e| ServeError::Internal(e.to_string()))?;
    Ok(QueryResult {
        batch,
        stats: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(sql: &str) -> Result<Write, ServeError> {
        let stmt = basalt_query::parse(sql).unwrap();
        classify(&stmt, |t| (t == "events").then(|| "ts".to_string())).unwrap()
    }

    #[test]
    fn time_bounds_of_a_delete() {
        let day = 86_400_000i64;
        let jan2 = basalt_segment::granularity::parse_iso8601("2024-01-02").unwrap();
        assert_eq!(
            write("DELETE FROM events WHERE __time < '2024-01-02'").unwrap(),
            Write::Delete {
                table: "events".into(),
                from: i64::MIN,
                to: jan2
            }
        );
        assert_eq!(
            write("DELETE FROM events WHERE ts >= TIMESTAMP '2024-01-02' AND '2024-01-03' > ts")
                .unwrap(),
            Write::Delete {
                table: "events".into(),
                from: jan2,
                to: jan2 + day
            }
        );
        assert_eq!(
            write("DELETE FROM events").unwrap(),
            Write::Delete {
                table: "events".into(),
                from: i64::MIN,
                to: i64::MAX
            }
        );
        assert_eq!(
            write("DROP TABLE IF EXISTS a, b").unwrap(),
            Write::Drop {
                tables: vec!["a".into(), "b".into()],
                if_exists: true
            }
        );
        for (sql, want) in [
            (
                "DELETE FROM events WHERE country = 'US'",
                "only bounds on the time column",
            ),
            (
                "DELETE FROM events WHERE ts < 'soon'",
                "not an ISO 8601 timestamp",
            ),
            ("DELETE FROM nope WHERE ts < '2024-01-01'", "does not exist"),
            ("DROP VIEW v", "DROP VIEW"),
            (
                "INSERT INTO events VALUES (1)",
                "INSERT, UPDATE and TRUNCATE",
            ),
        ] {
            let e = write(sql).unwrap_err().to_string();
            assert!(e.contains(want), "{sql}: {e}");
        }
    }
}
