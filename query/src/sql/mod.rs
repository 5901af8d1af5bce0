//! The front end on the syntax tree, before binding: parse (PostgreSQL dialect, JDBC `?` placeholders
//! numbered), bound the statement's shape ([`limits`]), replace parameters by literals ([`params`]), and fold
//! constant arrays and constant relations ([`consts`]).

pub(crate) mod consts;
pub(crate) mod dcl;
pub(crate) mod limits;
pub(crate) mod params;

use sqlparser::ast::{self, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::{Pos, QueryError, Result};
use crate::expr::Scalar;

/// Parses one SQL statement; errors carry the line and column.
pub fn parse(sql: &str) -> Result<Statement> {
    let mut stmts = parse_all(sql)?;
    match stmts.len() {
        1 => Ok(stmts.remove(0)),
        0 => Err(QueryError::Syntax {
            message: "empty query".into(),
            pos: Pos::default(),
        }),
        _ => Err(QueryError::unsupported(
            "several statements in one query",
            Pos::default(),
        )),
    }
}

/// Parses a string of zero or more `;`-separated statements.
pub fn parse_all(sql: &str) -> Result<Vec<Statement>> {
    if sql.len() > limits::MAX_SQL_BYTES {
        return Err(QueryError::TooComplex {
            message: format!(
                "the SQL text is {} bytes long; at most {} are accepted",
                sql.len(),
                limits::MAX_SQL_BYTES
            ),
            pos: Pos::default(),
        });
    }
    let numbered = number_question_marks(sql);
    let sql = numbered.as_deref().unwrap_or(sql);
    let killed = sql
        .trim_start()
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("kill"))
        .then(|| dcl::kill(sql))
        .flatten();
    let sql = killed.as_deref().unwrap_or(sql);
    let syntax = |e: sqlparser::parser::ParserError| match e {
        sqlparser::parser::ParserError::RecursionLimitExceeded => QueryError::TooComplex {
            message: format!(
                "it nests more than {} levels of parentheses, subqueries or prefix operators",
                limits::PARSER_RECURSION_LIMIT
            ),
            pos: Pos::default(),
        },
        e => {
            let msg = e.to_string();
            let pos = parse_position(&msg);
            QueryError::Syntax {
                message: msg.trim_start_matches("sql parser error: ").to_string(),
                pos,
            }
        }
    };
    let parse = |sql: &str| {
        Parser::new(&PostgreSqlDialect {})
            .with_recursion_limit(limits::PARSER_RECURSION_LIMIT)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statements())
    };
    let mut stmts = match parse(sql) {
        Ok(s) => s,
        // PostgreSQL's CREATE USER and role-membership GRANT, which the parser knows in another spelling.
        Err(e) => match dcl::postgres_forms(sql).map(|text| parse(&text)) {
            Some(Ok(s)) => s,
            _ => return Err(syntax(e)),
        },
    };
    for stmt in &mut stmts {
        limits::shape(stmt)?;
        params::count(stmt)?;
    }
    Ok(stmts)
}

/// JDBC/Druid `?` parameters, which the PostgreSQL dialect reads as an operator, renumbered as `$1`, `$2`, ...
/// (`None` when the text has none). Only `?` tokens change; strings, identifiers and comments are kept.
fn number_question_marks(sql: &str) -> Option<String> {
    use sqlparser::tokenizer::{Token, Tokenizer};
    if !sql.contains('?') {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    if !tokens.contains(&Token::Question) {
        return None;
    }
    let mut n = 0;
    let mut out = String::with_capacity(sql.len() + 8);
    for t in tokens {
        if t == Token::Question {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push_str(&t.to_string());
        }
    }
    Some(out)
}

fn parse_position(msg: &str) -> Pos {
    // sqlparser reports "... at Line: L, Column: C".
    let grab = |key: &str| -> u64 {
        msg.find(key)
            .map(|i| {
                msg[i + key.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect::<String>()
            })
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    Pos {
        line: grab("Line: "),
        column: grab("Column: "),
    }
}

/// A SQL literal for a value.
pub fn literal(s: &Scalar) -> ast::Expr {
    match s {
        Scalar::Null => ast::Expr::value(ast::Value::Null),
        Scalar::Bool(b) => ast::Expr::value(ast::Value::Boolean(*b)),
        Scalar::Int(i) => ast::Expr::value(ast::Value::Number(i.to_string(), false)),
        Scalar::Float(f) if f.is_finite() => {
            ast::Expr::value(ast::Value::Number(format!("{f:?}"), false))
        }
        Scalar::Float(f) => ast::Expr::Cast {
            kind: ast::CastKind::DoubleColon,
            expr: Box::new(ast::Expr::value(ast::Value::SingleQuotedString(
                if f.is_nan() {
                    "NaN".into()
                } else if *f > 0.0 {
                    "Infinity".into()
                } else {
                    "-Infinity".into()
                },
            ))),
            data_type: ast::DataType::DoublePrecision,
            format: None,
        },
        Scalar::Str(v) => ast::Expr::value(ast::Value::SingleQuotedString(v.clone())),
        Scalar::Timestamp(ms) => ast::Expr::Function(ast::Function {
            name: ast::ObjectName::from(vec![ast::Ident::new("MILLIS_TO_TIMESTAMP")]),
            uses_odbc_syntax: false,
            parameters: ast::FunctionArguments::None,
            args: ast::FunctionArguments::List(ast::FunctionArgumentList {
                duplicate_treatment: None,
                args: vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(
                    ast::Expr::value(ast::Value::Number(ms.to_string(), false)),
                ))],
                clauses: Vec::new(),
            }),
            filter: None,
            null_treatment: None,
            over: None,
            within_group: Vec::new(),
        }),
    }
}
