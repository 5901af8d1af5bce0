//! Every function name basalt answers, in one list: what kind it is (aggregate, scalar, session, or folded
//! before planning on constants), and a one-line description. The binder, the session folder and the constant
//! folder all look names up here, so a name is added once; `SELECT` of a name that is not here is a clear
//! "unsupported function" error with the nearest known names. (Binding a scalar call's arguments and types is
//! in `functions.rs`, an aggregate's in `aggregates.rs`.)

/// What a function is, and so which stage answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Over the rows of a group (`planner::aggregates`, states in `crate::aggregate`).
    Aggregate,
    /// Row by row (`planner::functions`, kernels in `crate::expr::functions`).
    Scalar,
    /// A constant for the session (`crate::session`).
    Session,
    /// Folded on the syntax tree before planning (`crate::sql::consts`): constant arrays and relations.
    Constant,
    /// Rewritten on the syntax tree over the catalog's contents before planning (`crate::catalog::pg_functions`):
    /// PostgreSQL's catalog functions.
    Catalog,
    /// Only with `OVER (...)`, over the rows of a window (`crate::nested::window`). The aggregates `count`, `sum`,
    /// `avg`, `min` and `max` also run over a window.
    Window,
}

/// One function name.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    pub name: &'static str,
    pub kind: Kind,
    pub about: &'static str,
}

const fn f(name: &'static str, kind: Kind, about: &'static str) -> Function {
    Function { name, kind, about }
}

use Kind::{Aggregate, Catalog, Constant, Scalar, Session, Window};

/// The functions, by name (lower case; `pg_catalog.` prefixes are dropped before lookup).
pub const FUNCTIONS: &[Function] = &[
    // Aggregates.
    f(
        "count",
        Aggregate,
        "rows, non-NULL values, or distinct values (exact)",
    ),
    f("sum", Aggregate, "sum; BIGINT past its range is an error"),
    f("min", Aggregate, "smallest value"),
    f("max", Aggregate, "largest value"),
    f("avg", Aggregate, "mean as DOUBLE"),
    f(
        "percentile_cont",
        Aggregate,
        "exact interpolated percentile (WITHIN GROUP)",
    ),
    f(
        "percentile_disc",
        Aggregate,
        "exact percentile, a value of the group (WITHIN GROUP)",
    ),
    f(
        "approx_count_distinct",
        Aggregate,
        "HyperLogLog distinct count",
    ),
    f("approx_distinct", Aggregate, "HyperLogLog distinct count"),
    f("approx_quantile", Aggregate, "t-digest quantile"),
    f(
        "approx_percentile_cont",
        Aggregate,
        "t-digest quantile (WITHIN GROUP)",
    ),
    f("approx_percentile", Aggregate, "t-digest quantile"),
    // Scalars.
    f("now", Scalar, "the query's start time"),
    f("current_timestamp", Scalar, "the query's start time"),
    f("localtimestamp", Scalar, "the query's start time (UTC)"),
    f("lower", Scalar, "lower case"),
    f("upper", Scalar, "upper case"),
    f("length", Scalar, "characters in a string"),
    f("char_length", Scalar, "characters in a string"),
    f("character_length", Scalar, "characters in a string"),
    f("abs", Scalar, "absolute value"),
    f("round", Scalar, "nearest integer"),
    f("floor", Scalar, "round down"),
    f("ceil", Scalar, "round up"),
    f("ceiling", Scalar, "round up"),
    f("btrim", Scalar, "trim both ends"),
    f("ltrim", Scalar, "trim the start"),
    f("rtrim", Scalar, "trim the end"),
    f(
        "quote_ident",
        Scalar,
        "quote an identifier as PostgreSQL would",
    ),
    f(
        "pg_size_pretty",
        Scalar,
        "bytes as PostgreSQL prints a size",
    ),
    f("substr", Scalar, "part of a string"),
    f("substring", Scalar, "part of a string"),
    f("coalesce", Scalar, "first non-NULL argument"),
    f("nullif", Scalar, "NULL when both arguments are equal"),
    f("concat", Scalar, "strings joined, NULLs skipped"),
    f("date_trunc", Scalar, "time truncated to a unit"),
    f(
        "time_floor",
        Scalar,
        "time floored to an ISO 8601 period (Druid)",
    ),
    f(
        "date_bin",
        Scalar,
        "time binned by an interval from an origin",
    ),
    f("time_bucket", Scalar, "time binned by an interval"),
    f(
        "time_format",
        Scalar,
        "time formatted by a Joda pattern (Druid)",
    ),
    f("time_parse", Scalar, "string parsed as a time (Druid)"),
    f(
        "millis_to_timestamp",
        Scalar,
        "epoch milliseconds to a timestamp",
    ),
    f(
        "timestamp_to_millis",
        Scalar,
        "a timestamp to epoch milliseconds",
    ),
    f("to_timestamp", Scalar, "epoch seconds to a timestamp"),
    // Session.
    f(
        "version",
        Session,
        "the PostgreSQL-compatible version string",
    ),
    f("current_schema", Session, "public"),
    f("current_database", Session, "the database name"),
    f("current_catalog", Session, "the database name"),
    f("current_user", Session, "the session's user"),
    f("session_user", Session, "the session's user"),
    f("user", Session, "the session's user"),
    f("pg_backend_pid", Session, "the server's process id"),
    f(
        "current_setting",
        Session,
        "a setting's value, as SHOW answers it",
    ),
    f(
        "pg_table_is_visible",
        Session,
        "true: every table is on the search path",
    ),
    f(
        "pg_get_userbyid",
        Session,
        "the table owner: the session's user",
    ),
    // Folded on constants before planning.
    f(
        "string_to_array",
        Constant,
        "a constant string split into an array",
    ),
    f(
        "parse_ident",
        Constant,
        "a qualified name split into its parts",
    ),
    f("array_length", Constant, "length of a constant array"),
    f("array_lower", Constant, "lower bound of a constant array"),
    f("array_upper", Constant, "upper bound of a constant array"),
    f("cardinality", Constant, "elements of a constant array"),
    f(
        "generate_series",
        Constant,
        "a relation of consecutive integers (in FROM)",
    ),
    f(
        "array_agg",
        Aggregate,
        "values as a PostgreSQL array's text, [ORDER BY ...]",
    ),
    f(
        "string_agg",
        Aggregate,
        "values joined by a separator, [ORDER BY ...]",
    ),
    f(
        "array_to_string",
        Constant,
        "a constant array's elements joined",
    ),
    f(
        "unnest",
        Constant,
        "a constant array as a relation (in FROM)",
    ),
    // PostgreSQL catalog functions, over the catalog's contents.
    f("format_type", Catalog, "a type OID's SQL name"),
    f("pg_table_size", Catalog, "a table's bytes on disk"),
    f("pg_relation_size", Catalog, "a table's bytes on disk"),
    f("pg_total_relation_size", Catalog, "a table's bytes on disk"),
    f("pg_indexes_size", Catalog, "0: no indexes"),
    f("pg_database_size", Catalog, "all tables' bytes on disk"),
    f("pg_get_expr", Catalog, "NULL: no defaults or constraints"),
    f("pg_get_indexdef", Catalog, "NULL: no indexes"),
    f("pg_get_constraintdef", Catalog, "NULL: no constraints"),
    f("pg_get_viewdef", Catalog, "NULL: no views"),
    f("pg_get_triggerdef", Catalog, "NULL: no triggers"),
    f("pg_get_partkeydef", Catalog, "NULL: no partitioned tables"),
    f("pg_get_serial_sequence", Catalog, "NULL: no sequences"),
    f(
        "pg_get_statisticsobjdef_columns",
        Catalog,
        "NULL: no extended statistics",
    ),
    f("col_description", Catalog, "NULL: no comments"),
    f(
        "pg_get_function_result",
        Catalog,
        "NULL: no functions listed",
    ),
    f(
        "pg_get_function_arguments",
        Catalog,
        "NULL: no functions listed",
    ),
    f(
        "pg_get_function_identity_arguments",
        Catalog,
        "NULL: no functions listed",
    ),
    f("obj_description", Catalog, "NULL: no comments"),
    f("shobj_description", Catalog, "NULL: no comments"),
    f(
        "pg_tablespace_location",
        Catalog,
        "NULL: the default tablespace",
    ),
    f("pg_encoding_to_char", Catalog, "UTF8"),
    f(
        "has_table_privilege",
        Catalog,
        "true (no per-table grants yet)",
    ),
    f(
        "has_database_privilege",
        Catalog,
        "true (no per-table grants yet)",
    ),
    f(
        "has_schema_privilege",
        Catalog,
        "true (no per-table grants yet)",
    ),
    f(
        "has_column_privilege",
        Catalog,
        "true (no per-table grants yet)",
    ),
    f(
        "has_any_column_privilege",
        Catalog,
        "true (no per-table grants yet)",
    ),
    f(
        "has_sequence_privilege",
        Catalog,
        "true (no per-table grants yet)",
    ),
    f("pg_has_role", Catalog, "true: one role"),
    f(
        "bool_and",
        Catalog,
        "true when every value is (as MIN over 0/1)",
    ),
    f(
        "every",
        Catalog,
        "true when every value is (as MIN over 0/1)",
    ),
    f(
        "bool_or",
        Catalog,
        "true when any value is (as MAX over 0/1)",
    ),
    f(
        "json_build_object",
        Scalar,
        "keys and values as a JSON object (text)",
    ),
    f(
        "pg_collation_is_visible",
        Catalog,
        "true: one schema search path",
    ),
    f(
        "pg_type_is_visible",
        Catalog,
        "true: one schema search path",
    ),
    f(
        "pg_function_is_visible",
        Catalog,
        "true: one schema search path",
    ),
    f(
        "pg_relation_is_publishable",
        Catalog,
        "false: no publications",
    ),
    f(
        "pg_is_other_temp_schema",
        Catalog,
        "false: no temporary schemas",
    ),
    // Window functions (with OVER).
    f("row_number", Window, "position in the partition, from 1"),
    f("rank", Window, "rank with gaps after ties"),
    f("dense_rank", Window, "rank without gaps"),
    f(
        "percent_rank",
        Window,
        "(rank - 1) / (rows in the partition - 1)",
    ),
    f(
        "cume_dist",
        Window,
        "rows up to the current row's last peer / rows in the partition",
    ),
    f("lag", Window, "a value offset rows before (default 1)"),
    f("lead", Window, "a value offset rows after (default 1)"),
    f("first_value", Window, "the frame's first value"),
    f("last_value", Window, "the frame's last value"),
];

/// The function named `name` (any case, `pg_catalog.` prefix allowed).
pub fn lookup(name: &str) -> Option<&'static Function> {
    let name = name.to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Whether `name` also runs over a window frame (`SUM(x) OVER (...)`).
pub fn runs_over_a_window(name: &str) -> bool {
    lookup(name).is_some_and(|f| {
        f.kind == Kind::Window || matches!(f.name, "count" | "sum" | "avg" | "min" | "max")
    })
}

/// Whether `name` is an aggregate function.
pub fn is_aggregate(name: &str) -> bool {
    lookup(name).is_some_and(|f| f.kind == Kind::Aggregate)
}

/// Up to three known names closest to `name` (edit distance at most 2), for an error's hint.
pub fn nearest(name: &str) -> Vec<&'static str> {
    let mut scored: Vec<(usize, &'static str)> = FUNCTIONS
        .iter()
        .map(|f| (distance(name, f.name), f.name))
        .filter(|(d, _)| *d <= 2)
        .collect();
    scored.sort();
    // Only the closest: "lowr" suggests lower, not floor and now as well.
    let best = scored.first().map_or(0, |(d, _)| *d);
    scored
        .into_iter()
        .take_while(|(d, _)| *d == best)
        .take(3)
        .map(|(_, n)| n)
        .collect()
}

/// Levenshtein distance of two short names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lower_case() {
        let mut seen = std::collections::HashSet::new();
        for f in FUNCTIONS {
            assert_eq!(f.name, f.name.to_ascii_lowercase());
            assert!(seen.insert(f.name), "{} twice", f.name);
        }
    }

    #[test]
    fn nearest_names_for_a_typo() {
        assert_eq!(nearest("lowr"), vec!["lower"]);
        assert_eq!(nearest("date_trnc"), vec!["date_trunc"]);
        assert!(nearest("frobnicate").is_empty());
        assert!(lookup("PG_CATALOG.Version").is_some());
    }

    /// The binder has a case for every scalar and aggregate name listed (a call with one argument binds, or fails
    /// on its arguments, never as an unknown function), and refuses a name that is not listed, with a hint.
    #[test]
    fn every_listed_name_reaches_the_binder_and_no_other() {
        use crate::planner::{plan_query, TableProvider};
        use basalt_segment::{SegmentSource, TableSchema};
        use std::sync::Arc;
        struct NoTables;
        impl TableProvider for NoTables {
            /// Only the one-row relation of a SELECT without FROM.
            fn table(&self, name: &str) -> Option<TableSchema> {
                (name == crate::planner::DUAL_KEY).then(|| TableSchema {
                    name: name.into(),
                    time_column: String::new(),
                    columns: Vec::new(),
                    segment_granularity: basalt_segment::Granularity::None,
                    rollup: None,
                })
            }
            fn table_names(&self) -> Vec<String> {
                Vec::new()
            }
            fn sources(&self, _: &str) -> crate::Result<Vec<Arc<dyn SegmentSource>>> {
                Ok(Vec::new())
            }
        }
        let tables = NoTables;
        let plan = |sql: &str| {
            let stmt = crate::sql::parse(sql).unwrap();
            let sqlparser::ast::Statement::Query(q) = stmt else {
                panic!("{sql}")
            };
            plan_query(&q, &tables, 0).map(|_| ())
        };
        for f in FUNCTIONS
            .iter()
            .filter(|f| matches!(f.kind, Kind::Scalar | Kind::Aggregate))
        {
            if let Err(e) = plan(&format!("SELECT {}(1)", f.name)) {
                let e = e.to_string();
                assert!(!e.contains("unsupported: function"), "{}: {e}", f.name);
            }
        }
        let e = plan("SELECT lowr('A')").unwrap_err().to_string();
        assert!(e.contains("function lowr (did you mean lower?)"), "{e}");
    }
}
