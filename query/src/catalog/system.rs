//! Virtual catalog tables: `INFORMATION_SCHEMA` as Druid lays it out (for pydruid and Superset's Druid engine)
//! and `information_schema` plus a few `pg_catalog` tables as PostgreSQL lays them out (for psql, Grafana and
//! drivers). Their rows are built from the catalog when a query reads them and answered by the engine itself,
//! so any filter, projection, ordering or aggregate over them works.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use basalt_segment::schema::TIME_ALIAS;
use basalt_segment::{ColumnType, SegmentSource, TableSchema};

use crate::catalog::host::HostTables;
use crate::catalog::mem_table::MemTable;
use crate::catalog::pg_catalog;
use crate::error::Result;
use crate::planner::TableProvider;
pub use crate::session::DATABASE;

/// Which protocol's conventions the catalog tables follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Face {
    /// Druid: schema `druid`, upper-case column names, the time column listed as `__time`.
    Druid,
    /// PostgreSQL: schema `public`, lower-case names, the time column under its own name.
    #[default]
    Postgres,
}

pub(crate) const CATALOG_NS_OID: i64 = 11;
/// The OID of the first user table (in name order); PostgreSQL's first user OID.
pub(crate) const FIRST_TABLE_OID: i64 = 16_384;

/// The catalog tables of a face, layered over the user's tables.
pub struct SystemTables<'a> {
    base: &'a dyn TableProvider,
    face: Face,
    /// The session's user: the owner of everything, the one role.
    user: String,
    /// Virtual tables built so far: planning asks for the schema and execution for the rows, once each.
    built: RefCell<HashMap<String, MemTable>>,
    /// The host's `sys` tables, when it has any.
    host: Option<&'a dyn HostTables>,
}

pub(crate) type Col = (&'static str, Column);

pub(crate) enum Column {
    Str(Vec<Option<String>>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
}

impl Column {
    fn array(self) -> (DataType, ArrayRef) {
        match self {
            Column::Str(v) => (DataType::Utf8, Arc::new(StringArray::from(v))),
            Column::Int(v) => (DataType::Int64, Arc::new(Int64Array::from(v))),
            Column::Float(v) => (DataType::Float64, Arc::new(Float64Array::from(v))),
            Column::Bool(v) => (DataType::Boolean, Arc::new(BooleanArray::from(v))),
        }
    }
}

/// `IS_NULLABLE`: only the time column is never NULL.
fn nullable(ty: ColumnType) -> &'static str {
    if ty == ColumnType::Timestamp {
        "NO"
    } else {
        "YES"
    }
}

pub(crate) fn s(v: impl Into<String>) -> Option<String> {
    Some(v.into())
}

/// PostgreSQL's type name, `udt_name` and OID for a column type.
pub fn pg_type(ty: ColumnType) -> (&'static str, &'static str, i64) {
    match ty {
        ColumnType::String => ("text", "text", 25),
        ColumnType::Long => ("bigint", "int8", 20),
        ColumnType::Double => ("double precision", "float8", 701),
        ColumnType::Timestamp => ("timestamp with time zone", "timestamptz", 1184),
        ColumnType::Boolean => ("boolean", "bool", 16),
    }
}

/// Druid's SQL type name and JDBC type code for a column type.
pub fn druid_type(ty: ColumnType) -> (&'static str, i64) {
    match ty {
        ColumnType::String => ("VARCHAR", 12),
        ColumnType::Long => ("BIGINT", -5),
        ColumnType::Double => ("DOUBLE", 8),
        ColumnType::Timestamp => ("TIMESTAMP", 93),
        ColumnType::Boolean => ("BOOLEAN", 16),
    }
}

const DRUID_TABLES: [&str; 3] = ["schemata", "tables", "columns"];
const PG_INFO_TABLES: [&str; 3] = ["schemata", "tables", "columns"];

impl<'a> SystemTables<'a> {
    pub fn new(base: &'a dyn TableProvider, face: Face) -> Self {
        SystemTables {
            base,
            face,
            user: crate::session::DEFAULT_USER.to_string(),
            built: RefCell::new(HashMap::new()),
            host: None,
        }
    }

    /// With the host's tables under schema `sys`.
    pub fn with_host(mut self, host: Option<&'a dyn HostTables>) -> Self {
        self.host = host;
        self
    }

    /// The same tables as seen by `user` (PostgreSQL's owner and role names).
    pub fn with_user(mut self, user: &str) -> Self {
        self.user = user.to_string();
        self
    }

    /// The user's tables under these.
    pub(crate) fn base(&self) -> &dyn TableProvider {
        self.base
    }

    /// The host's users and roles; without any, the session's user as the one superuser.
    pub(crate) fn roles(&self) -> Vec<crate::catalog::host::HostRole> {
        let roles = self.host.map(|h| h.roles()).unwrap_or_default();
        if !roles.is_empty() {
            return roles;
        }
        vec![crate::catalog::host::HostRole {
            name: self.user.clone(),
            superuser: true,
            login: true,
            member_of: Vec::new(),
        }]
    }

    fn is_system(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        if let Some(t) = name.strip_prefix("sys.") {
            return self.host.is_some_and(|h| h.names().contains(&t));
        }
        match self.face {
            Face::Druid => name
                .strip_prefix("information_schema.")
                .is_some_and(|t| DRUID_TABLES.contains(&t)),
            Face::Postgres => {
                if let Some(t) = name.strip_prefix("information_schema.") {
                    PG_INFO_TABLES.contains(&t)
                } else if let Some(t) = name.strip_prefix("pg_catalog.") {
                    pg_catalog::TABLES.contains(&t)
                } else {
                    false
                }
            }
        }
    }

    /// The user's tables, sorted by name, with their schemas.
    fn user_tables(&self) -> Vec<TableSchema> {
        let mut names = self.base.table_names();
        names.sort();
        names.iter().filter_map(|n| self.base.table(n)).collect()
    }

    /// The columns of a user table as this face lists them: the time column first.
    fn listed_columns(&self, t: &TableSchema) -> Vec<(String, ColumnType)> {
        t.columns
            .iter()
            .map(|c| {
                let name = if c.name == t.time_column && self.face == Face::Druid {
                    TIME_ALIAS.to_string()
                } else {
                    c.name.clone()
                };
                (name, c.ty)
            })
            .collect()
    }

    /// (table, column as listed, type, 1-based position) of every column of every user table.
    pub(crate) fn column_rows(
        &self,
        tables: &[TableSchema],
    ) -> Vec<(String, String, ColumnType, i64)> {
        let mut rows = Vec::new();
        for t in tables {
            for (i, (col, ty)) in self.listed_columns(t).into_iter().enumerate() {
                rows.push((t.name.clone(), col, ty, i as i64 + 1));
            }
        }
        rows
    }

    fn rows(&self, name: &str) -> Vec<Col> {
        let tables = self.user_tables();
        match (self.face, name) {
            (Face::Druid, "information_schema.schemata") => {
                let schemas = ["druid", "INFORMATION_SCHEMA"];
                let n = schemas.len();
                vec![
                    ("CATALOG_NAME", Column::Str(vec![s("druid"); n])),
                    (
                        "SCHEMA_NAME",
                        Column::Str(schemas.iter().map(|x| s(*x)).collect()),
                    ),
                    ("SCHEMA_OWNER", Column::Str(vec![None; n])),
                    ("DEFAULT_CHARACTER_SET_CATALOG", Column::Str(vec![None; n])),
                    ("DEFAULT_CHARACTER_SET_SCHEMA", Column::Str(vec![None; n])),
                    ("DEFAULT_CHARACTER_SET_NAME", Column::Str(vec![None; n])),
                    ("SQL_PATH", Column::Str(vec![None; n])),
                ]
            }
            (Face::Druid, "information_schema.tables") => {
                let mut rows: Vec<(String, String, String)> = tables
                    .iter()
                    .map(|t| ("druid".into(), t.name.clone(), "TABLE".into()))
                    .collect();
                for t in DRUID_TABLES {
                    rows.push((
                        "INFORMATION_SCHEMA".into(),
                        t.to_ascii_uppercase(),
                        "SYSTEM_TABLE".into(),
                    ));
                }
                let n = rows.len();
                vec![
                    ("TABLE_CATALOG", Column::Str(vec![s("druid"); n])),
                    (
                        "TABLE_SCHEMA",
                        Column::Str(rows.iter().map(|r| s(&r.0)).collect()),
                    ),
                    (
                        "TABLE_NAME",
                        Column::Str(rows.iter().map(|r| s(&r.1)).collect()),
                    ),
                    (
                        "TABLE_TYPE",
                        Column::Str(rows.iter().map(|r| s(&r.2)).collect()),
                    ),
                    ("IS_JOINABLE", Column::Str(vec![s("NO"); n])),
                    ("IS_BROADCAST", Column::Str(vec![s("NO"); n])),
                ]
            }
            (Face::Druid, "information_schema.columns") => {
                let rows = self.column_rows(&tables);
                let n = rows.len();
                let ty = |f: fn(&(String, String, ColumnType, i64)) -> Option<i64>| {
                    Column::Int(rows.iter().map(f).collect())
                };
                vec![
                    ("TABLE_CATALOG", Column::Str(vec![s("druid"); n])),
                    ("TABLE_SCHEMA", Column::Str(vec![s("druid"); n])),
                    (
                        "TABLE_NAME",
                        Column::Str(rows.iter().map(|r| s(&r.0)).collect()),
                    ),
                    (
                        "COLUMN_NAME",
                        Column::Str(rows.iter().map(|r| s(&r.1)).collect()),
                    ),
                    ("ORDINAL_POSITION", ty(|r| Some(r.3))),
                    ("COLUMN_DEFAULT", Column::Str(vec![None; n])),
                    (
                        "IS_NULLABLE",
                        Column::Str(rows.iter().map(|r| s(nullable(r.2))).collect()),
                    ),
                    (
                        "DATA_TYPE",
                        Column::Str(rows.iter().map(|r| s(druid_type(r.2).0)).collect()),
                    ),
                    ("CHARACTER_MAXIMUM_LENGTH", Column::Int(vec![None; n])),
                    ("CHARACTER_OCTET_LENGTH", Column::Int(vec![None; n])),
                    (
                        "NUMERIC_PRECISION",
                        ty(|r| match r.2 {
                            ColumnType::Long => Some(19),
                            ColumnType::Double => Some(15),
                            _ => None,
                        }),
                    ),
                    (
                        "NUMERIC_PRECISION_RADIX",
                        ty(|r| r.2.is_numeric().then_some(10)),
                    ),
                    (
                        "NUMERIC_SCALE",
                        ty(|r| (r.2 == ColumnType::Long).then_some(0)),
                    ),
                    (
                        "DATETIME_PRECISION",
                        ty(|r| (r.2 == ColumnType::Timestamp).then_some(3)),
                    ),
                    (
                        "CHARACTER_SET_NAME",
                        Column::Str(
                            rows.iter()
                                .map(|r| (r.2 == ColumnType::String).then(|| "UTF-16LE".into()))
                                .collect(),
                        ),
                    ),
                    ("COLLATION_NAME", Column::Str(vec![None; n])),
                    ("JDBC_TYPE", ty(|r| Some(druid_type(r.2).1))),
                ]
            }
            (Face::Postgres, "information_schema.schemata") => {
                let schemas = ["public", "information_schema", "pg_catalog"];
                let n = schemas.len();
                vec![
                    ("catalog_name", Column::Str(vec![s(DATABASE); n])),
                    (
                        "schema_name",
                        Column::Str(schemas.iter().map(|x| s(*x)).collect()),
                    ),
                    ("schema_owner", Column::Str(vec![s(DATABASE); n])),
                    ("default_character_set_catalog", Column::Str(vec![None; n])),
                    ("default_character_set_schema", Column::Str(vec![None; n])),
                    ("default_character_set_name", Column::Str(vec![None; n])),
                    ("sql_path", Column::Str(vec![None; n])),
                ]
            }
            (Face::Postgres, "information_schema.tables") => {
                let mut rows: Vec<(String, String, String)> = tables
                    .iter()
                    .map(|t| ("public".into(), t.name.clone(), "BASE TABLE".into()))
                    .collect();
                for t in PG_INFO_TABLES {
                    rows.push(("information_schema".into(), t.into(), "VIEW".into()));
                }
                for t in pg_catalog::TABLES {
                    rows.push(("pg_catalog".into(), t.into(), "VIEW".into()));
                }
                let n = rows.len();
                vec![
                    ("table_catalog", Column::Str(vec![s(DATABASE); n])),
                    (
                        "table_schema",
                        Column::Str(rows.iter().map(|r| s(&r.0)).collect()),
                    ),
                    (
                        "table_name",
                        Column::Str(rows.iter().map(|r| s(&r.1)).collect()),
                    ),
                    (
                        "table_type",
                        Column::Str(rows.iter().map(|r| s(&r.2)).collect()),
                    ),
                    ("self_referencing_column_name", Column::Str(vec![None; n])),
                    ("reference_generation", Column::Str(vec![None; n])),
                    ("user_defined_type_catalog", Column::Str(vec![None; n])),
                    ("user_defined_type_schema", Column::Str(vec![None; n])),
                    ("user_defined_type_name", Column::Str(vec![None; n])),
                    ("is_insertable_into", Column::Str(vec![s("NO"); n])),
                    ("is_typed", Column::Str(vec![s("NO"); n])),
                    ("commit_action", Column::Str(vec![None; n])),
                ]
            }
            (Face::Postgres, "information_schema.columns") => {
                let rows = self.column_rows(&tables);
                let n = rows.len();
                vec![
                    ("table_catalog", Column::Str(vec![s(DATABASE); n])),
                    ("table_schema", Column::Str(vec![s("public"); n])),
                    (
                        "table_name",
                        Column::Str(rows.iter().map(|r| s(&r.0)).collect()),
                    ),
                    (
                        "column_name",
                        Column::Str(rows.iter().map(|r| s(&r.1)).collect()),
                    ),
                    (
                        "ordinal_position",
                        Column::Int(rows.iter().map(|r| Some(r.3)).collect()),
                    ),
                    ("column_default", Column::Str(vec![None; n])),
                    (
                        "is_nullable",
                        Column::Str(rows.iter().map(|r| s(nullable(r.2))).collect()),
                    ),
                    (
                        "data_type",
                        Column::Str(rows.iter().map(|r| s(pg_type(r.2).0)).collect()),
                    ),
                    ("character_maximum_length", Column::Int(vec![None; n])),
                    (
                        "character_octet_length",
                        Column::Int(
                            rows.iter()
                                .map(|r| (r.2 == ColumnType::String).then_some(1_073_741_824))
                                .collect(),
                        ),
                    ),
                    (
                        "numeric_precision",
                        Column::Int(
                            rows.iter()
                                .map(|r| match r.2 {
                                    ColumnType::Long => Some(64),
                                    ColumnType::Double => Some(53),
                                    _ => None,
                                })
                                .collect(),
                        ),
                    ),
                    (
                        "numeric_precision_radix",
                        Column::Int(
                            rows.iter()
                                .map(|r| {
                                    matches!(r.2, ColumnType::Long | ColumnType::Double)
                                        .then_some(2)
                                })
                                .collect(),
                        ),
                    ),
                    (
                        "numeric_scale",
                        Column::Int(
                            rows.iter()
                                .map(|r| (r.2 == ColumnType::Long).then_some(0))
                                .collect(),
                        ),
                    ),
                    (
                        "datetime_precision",
                        Column::Int(
                            rows.iter()
                                .map(|r| (r.2 == ColumnType::Timestamp).then_some(3))
                                .collect(),
                        ),
                    ),
                    ("interval_type", Column::Str(vec![None; n])),
                    ("interval_precision", Column::Int(vec![None; n])),
                    ("character_set_catalog", Column::Str(vec![None; n])),
                    ("character_set_schema", Column::Str(vec![None; n])),
                    ("character_set_name", Column::Str(vec![None; n])),
                    ("collation_catalog", Column::Str(vec![None; n])),
                    ("collation_schema", Column::Str(vec![None; n])),
                    ("collation_name", Column::Str(vec![None; n])),
                    ("domain_catalog", Column::Str(vec![None; n])),
                    ("domain_schema", Column::Str(vec![None; n])),
                    ("domain_name", Column::Str(vec![None; n])),
                    ("udt_catalog", Column::Str(vec![s(DATABASE); n])),
                    ("udt_schema", Column::Str(vec![s("pg_catalog"); n])),
                    (
                        "udt_name",
                        Column::Str(rows.iter().map(|r| s(pg_type(r.2).1)).collect()),
                    ),
                    ("scope_catalog", Column::Str(vec![None; n])),
                    ("scope_schema", Column::Str(vec![None; n])),
                    ("scope_name", Column::Str(vec![None; n])),
                    ("maximum_cardinality", Column::Int(vec![None; n])),
                    (
                        "dtd_identifier",
                        Column::Str(rows.iter().map(|r| s(r.3.to_string())).collect()),
                    ),
                    ("is_self_referencing", Column::Str(vec![s("NO"); n])),
                    ("is_identity", Column::Str(vec![s("NO"); n])),
                    ("identity_generation", Column::Str(vec![None; n])),
                    ("identity_start", Column::Str(vec![None; n])),
                    ("identity_increment", Column::Str(vec![None; n])),
                    ("identity_maximum", Column::Str(vec![None; n])),
                    ("identity_minimum", Column::Str(vec![None; n])),
                    ("identity_cycle", Column::Str(vec![s("NO"); n])),
                    ("is_generated", Column::Str(vec![s("NEVER"); n])),
                    ("generation_expression", Column::Str(vec![None; n])),
                    ("is_updatable", Column::Str(vec![s("NO"); n])),
                ]
            }
            (Face::Postgres, n) if n.starts_with("pg_catalog.") => {
                pg_catalog::rows(self, &n["pg_catalog.".len()..], &tables)
            }
            _ => Vec::new(),
        }
    }

    /// `pg_settings`: basalt's settings as SHOW answers them.
    pub(crate) fn settings_rows(&self) -> Vec<Col> {
        let list = crate::session::SETTINGS;
        let n = list.len();
        let text = |f: fn(&(&'static str, &'static str, &'static str)) -> &'static str| {
            Column::Str(list.iter().map(|x| s(f(x))).collect())
        };
        vec![
            ("name", text(|x| x.0)),
            ("setting", text(|x| x.1)),
            ("unit", Column::Str(vec![None; n])),
            ("category", Column::Str(vec![s("basalt"); n])),
            ("short_desc", text(|x| x.2)),
            ("extra_desc", Column::Str(vec![None; n])),
            ("context", Column::Str(vec![s("internal"); n])),
            ("vartype", Column::Str(vec![s("string"); n])),
            ("source", Column::Str(vec![s("default"); n])),
            ("min_val", Column::Str(vec![None; n])),
            ("max_val", Column::Str(vec![None; n])),
            ("enumvals", Column::Str(vec![None; n])),
            ("boot_val", text(|x| x.1)),
            ("reset_val", text(|x| x.1)),
            ("sourcefile", Column::Str(vec![None; n])),
            ("sourceline", Column::Int(vec![None; n])),
            ("pending_restart", Column::Str(vec![s("false"); n])),
        ]
    }

    fn build(&self, name: &str) -> Result<MemTable> {
        if let Some(t) = self.built.borrow().get(name) {
            return Ok(t.clone());
        }
        let lower = name.to_ascii_lowercase();
        let hosted = lower
            .strip_prefix("sys.")
            .and_then(|t| self.host.and_then(|h| h.batch(t)));
        let batch = match hosted {
            Some(b) => b,
            None => {
                let mut fields = Vec::new();
                let mut arrays = Vec::new();
                for (n, c) in self.rows(&lower) {
                    let (ty, a) = c.array();
                    fields.push(Field::new(n, ty, true));
                    arrays.push(a);
                }
                RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?
            }
        };
        let table = MemTable::from_batch(name, &batch)?;
        self.built
            .borrow_mut()
            .insert(name.to_string(), table.clone());
        Ok(table)
    }
}

impl TableProvider for SystemTables<'_> {
    fn table(&self, name: &str) -> Option<TableSchema> {
        if self.is_system(name) {
            self.build(name).ok().map(|t| t.schema)
        } else {
            self.base.table(name)
        }
    }

    fn table_names(&self) -> Vec<String> {
        let mut names = self.base.table_names();
        if let Some(h) = self.host {
            names.extend(h.names().iter().map(|t| format!("sys.{t}")));
        }
        match self.face {
            Face::Druid => names.extend(
                DRUID_TABLES
                    .iter()
                    .map(|t| format!("information_schema.{t}")),
            ),
            Face::Postgres => {
                names.extend(
                    PG_INFO_TABLES
                        .iter()
                        .map(|t| format!("information_schema.{t}")),
                );
                names.extend(pg_catalog::TABLES.iter().map(|t| format!("pg_catalog.{t}")));
            }
        }
        names
    }

    fn table_bytes(&self, name: &str) -> Option<u64> {
        self.base.table_bytes(name)
    }

    fn denied(&self, name: &str) -> bool {
        !self.is_system(name) && self.base.denied(name)
    }

    fn sources(&self, name: &str) -> Result<Vec<Arc<dyn SegmentSource>>> {
        if self.is_system(name) {
            Ok(vec![self.build(name)?.source])
        } else {
            self.base.sources(name)
        }
    }

    fn sources_between(
        &self,
        name: &str,
        min: Option<i64>,
        max: Option<i64>,
    ) -> Result<Vec<Arc<dyn SegmentSource>>> {
        if self.is_system(name) {
            Ok(vec![self.build(name)?.source])
        } else {
            self.base.sources_between(name, min, max)
        }
    }
}
