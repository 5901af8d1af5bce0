//! Errors of the query engine. SQL errors carry the position (line, column) of the construct they name.

use std::fmt;

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// A 1-based position in the SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            Ok(())
        } else {
            write!(f, " at line {}, column {}", self.line, self.column)
        }
    }
}

impl From<sqlparser::tokenizer::Span> for Pos {
    fn from(s: sqlparser::tokenizer::Span) -> Self {
        Pos {
            line: s.start.line,
            column: s.start.column,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The text is not SQL that parses.
    #[error("SQL syntax error: {message}")]
    Syntax { message: String, pos: Pos },
    /// Valid SQL that basalt cannot run (yet).
    #[error("unsupported: {construct}{pos}")]
    Unsupported { construct: String, pos: Pos },
    #[error("table {name:?} does not exist{pos}")]
    UnknownTable { name: String, pos: Pos },
    /// The table exists, but the user running the query may not read it (PostgreSQL's wording).
    #[error("permission denied for table {name}{pos}")]
    PermissionDenied { name: String, pos: Pos },
    #[error("column {name:?} does not exist{pos}{hint}")]
    UnknownColumn {
        name: String,
        pos: Pos,
        hint: String,
    },
    /// The query is invalid: a type mismatch, a misplaced aggregate, a bad argument.
    #[error("{message}{pos}")]
    Invalid { message: String, pos: Pos },
    /// Reading data failed (a damaged segment, I/O).
    #[error(transparent)]
    Storage(#[from] basalt_segment::Error),
    /// An error raised while computing over the data (an unparsable value, a sketch that cannot merge).
    #[error("{0}")]
    Execution(String),
    /// Division (or modulo) by zero: SQLSTATE 22012.
    #[error("division by zero")]
    DivisionByZero,
    /// `current_setting` of a setting basalt does not have.
    #[error("unrecognized configuration parameter {name:?}")]
    UnknownSetting { name: String },
    /// A value past its type's range (`SUM` of a bigint past 2^63, `abs(-2^63)`): SQLSTATE 22003.
    #[error("{0}")]
    OutOfRange(String),
    /// A bug in basalt, not in the query: HTTP 500, SQLSTATE XX000.
    #[error("internal error: {0}")]
    Internal(String),
    /// The statement nests deeper than the engine's limits (see [`crate::limits`]).
    #[error("statement too complex: {message}{pos}")]
    TooComplex { message: String, pos: Pos },
    #[error("query cancelled")]
    Cancelled,
    #[error("query exceeded its time limit of {0} ms")]
    Timeout(u64),
    /// The query needed more memory than its limit (`query_max_memory_bytes`).
    #[error(
        "query exceeded its memory limit of {limit} bytes while building {what} ({needed} bytes needed); \
         raise query_max_memory_bytes, add filters, or group by fewer values"
    )]
    MemoryLimit {
        limit: usize,
        needed: usize,
        what: String,
    },
    /// The query produced more groups or buffered rows than `max_groups`.
    #[error(
        "query exceeded its limit of {limit} {what} (max_groups); add filters or aggregate further"
    )]
    TooManyGroups { limit: usize, what: String },
}

impl QueryError {
    pub fn unsupported(construct: impl Into<String>, pos: impl Into<Pos>) -> Self {
        QueryError::Unsupported {
            construct: construct.into(),
            pos: pos.into(),
        }
    }

    pub fn invalid(message: impl Into<String>, pos: impl Into<Pos>) -> Self {
        QueryError::Invalid {
            message: message.into(),
            pos: pos.into(),
        }
    }

    /// A bug in basalt (an invariant that did not hold), with what it was.
    pub fn internal(what: impl Into<String>) -> Self {
        QueryError::Internal(what.into())
    }

    /// The position in the SQL text the error refers to, when it has one.
    pub fn position(&self) -> Option<Pos> {
        match self {
            QueryError::Syntax { pos, .. }
            | QueryError::Unsupported { pos, .. }
            | QueryError::UnknownTable { pos, .. }
            | QueryError::PermissionDenied { pos, .. }
            | QueryError::UnknownColumn { pos, .. }
            | QueryError::Invalid { pos, .. }
            | QueryError::TooComplex { pos, .. } => Some(*pos).filter(|p| p.line > 0),
            _ => None,
        }
    }
}

impl From<arrow_schema::ArrowError> for QueryError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        match e {
            arrow_schema::ArrowError::DivideByZero => QueryError::DivisionByZero,
            arrow_schema::ArrowError::ArithmeticOverflow(m) => QueryError::OutOfRange(m),
            other => QueryError::Execution(other.to_string()),
        }
    }
}
