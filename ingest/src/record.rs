//! One input row, whatever its format: fields looked up by name, values in a small typed form.

/// A field's value as the input holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    /// The row has no such field.
    Missing,
    Null,
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A nested JSON value, as JSON text.
    Json(String),
    /// A value of a type the loader does not store (named).
    Unsupported(String),
}

impl FieldValue<'_> {
    /// The value as text (`None` for NULL and missing).
    pub fn to_text(&self) -> Option<String> {
        match self {
            FieldValue::Missing | FieldValue::Null => None,
            FieldValue::Str(s) => Some(s.to_string()),
            FieldValue::Int(i) => Some(i.to_string()),
            FieldValue::Float(f) => Some(f.to_string()),
            FieldValue::Bool(b) => Some(b.to_string()),
            FieldValue::Json(s) | FieldValue::Unsupported(s) => Some(s.clone()),
        }
    }
}

/// A row of input.
pub trait Record {
    fn get(&self, name: &str) -> FieldValue<'_>;
    /// The names of the row's fields, in input order (used to discover columns).
    fn field_names(&self) -> Vec<String>;
}

/// Why a row was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Not parsable in the input format (bad JSON, a CSV line with the wrong number of fields).
    Malformed,
    /// JSON that is not an object.
    NotAnObject,
    MissingTimestamp,
    UnparsableTimestamp,
    /// A value that cannot be the column's type.
    WrongType,
    Oversized,
    TooLate,
    TooEarly,
}

impl RejectReason {
    pub fn name(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::MissingTimestamp => "missing_timestamp",
            RejectReason::UnparsableTimestamp => "unparsable_timestamp",
            RejectReason::WrongType => "wrong_type",
            RejectReason::Oversized => "oversized",
            RejectReason::TooLate => "too_late",
            RejectReason::TooEarly => "too_early",
        }
    }
}

/// A rejected row: why, and a message naming the field and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub message: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}
