//! The `pg_catalog` tables, as PostgreSQL 15 lays them out, for the queries psql (`\d`, `\d+`, `\dt`, `\l`,
//! `\dn`), Grafana, DBeaver and SQLAlchemy's reflection send. Every user table is a plain heap table in
//! `public` owned by the session's user, with no indexes, constraints, defaults, policies, inheritance or
//! publications: the tables that hold those exist with PostgreSQL's columns and no rows, so the clients'
//! joins over them bind and answer nothing. Columns basalt has no value for are NULL; array-typed columns
//! (ACLs, options) are NULL text.

use std::collections::HashMap;

use basalt_segment::{ColumnType, TableSchema};

use crate::catalog::host::HostRole;

use super::system::{pg_type, s, Col, Column, SystemTables, CATALOG_NS_OID, FIRST_TABLE_OID};
pub use crate::session::DATABASE;

pub(crate) const PUBLIC_NS_OID: i64 = 2200;
pub(crate) const INFO_NS_OID: i64 = 13_000;
/// PostgreSQL's `heap` table access method.
const HEAP_AM_OID: i64 = 2;
/// The one role, the bootstrap superuser's OID.
const OWNER_OID: i64 = 10;
/// The oids of the host's roles after the first (which is `OWNER_OID`, the owner of every table, as PostgreSQL's
/// bootstrap superuser) and of their memberships.
const FIRST_ROLE_OID: i64 = 1_000_000;
const FIRST_MEMBERSHIP_OID: i64 = 2_000_000;
const DATABASE_OID: i64 = 16_383;
const DEFAULT_TABLESPACE_OID: i64 = 1663;
/// `'pg_namespace'::regclass`.
pub(crate) const NAMESPACE_CLASS_OID: i64 = 2615;
pub(crate) const PUBLIC_DESCRIPTION: &str = "standard public schema";
/// The database default collation, as text columns carry it.
const DEFAULT_COLLATION_OID: i64 = 100;

/// The tables this module answers (under `pg_catalog.`).
pub(crate) const TABLES: [&str; 28] = [
    "pg_namespace",
    "pg_class",
    "pg_attribute",
    "pg_type",
    "pg_database",
    "pg_extension",
    "pg_am",
    "pg_settings",
    "pg_tablespace",
    "pg_roles",
    "pg_user",
    "pg_collation",
    "pg_attrdef",
    "pg_policy",
    "pg_statistic_ext",
    "pg_publication",
    "pg_publication_namespace",
    "pg_publication_rel",
    "pg_inherits",
    "pg_index",
    "pg_constraint",
    "pg_description",
    "pg_sequence",
    "pg_enum",
    "pg_trigger",
    "pg_proc",
    "pg_opclass",
    "pg_auth_members",
];

/// One PostgreSQL type: OID, `typname`, the name `format_type` and `::regtype` give, `typlen`, `typcategory`,
/// `typcollation`.
pub(crate) struct PgType {
    pub oid: i64,
    pub name: &'static str,
    pub formatted: &'static str,
    len: i64,
    category: &'static str,
    collation: i64,
}

const fn t(
    oid: i64,
    name: &'static str,
    formatted: &'static str,
    len: i64,
    category: &'static str,
    collation: i64,
) -> PgType {
    PgType {
        oid,
        name,
        formatted,
        len,
        category,
        collation,
    }
}

/// The types basalt's columns and expressions have, and the ones catalogs' own columns use.
pub(crate) const TYPES: [PgType; 15] = [
    t(16, "bool", "boolean", 1, "B", 0),
    t(18, "char", "\"char\"", 1, "Z", 0),
    t(19, "name", "name", 64, "S", 950),
    t(20, "int8", "bigint", 8, "N", 0),
    t(21, "int2", "smallint", 2, "N", 0),
    t(23, "int4", "integer", 4, "N", 0),
    t(25, "text", "text", -1, "S", DEFAULT_COLLATION_OID),
    t(26, "oid", "oid", 4, "N", 0),
    t(700, "float4", "real", 4, "N", 0),
    t(701, "float8", "double precision", 8, "N", 0),
    t(
        1043,
        "varchar",
        "character varying",
        -1,
        "S",
        DEFAULT_COLLATION_OID,
    ),
    t(1082, "date", "date", 4, "D", 0),
    t(1114, "timestamp", "timestamp without time zone", 8, "D", 0),
    t(1184, "timestamptz", "timestamp with time zone", 8, "D", 0),
    t(1700, "numeric", "numeric", -1, "N", 0),
];

/// The namespaces: OID and name.
pub(crate) const NAMESPACES: [(i64, &str); 3] = [
    (PUBLIC_NS_OID, "public"),
    (CATALOG_NS_OID, "pg_catalog"),
    (INFO_NS_OID, "information_schema"),
];

fn ints(n: usize, v: i64) -> Column {
    Column::Int(vec![Some(v); n])
}

fn texts(n: usize, v: &str) -> Column {
    Column::Str(vec![s(v); n])
}

fn nulls(n: usize) -> Column {
    Column::Str(vec![None; n])
}

fn bools(n: usize, v: bool) -> Column {
    Column::Bool(vec![Some(v); n])
}

/// A table without rows: columns named with a type letter (`i` integer, `t` text, `b` boolean, `f` float).
fn empty(columns: &[(&'static str, char)]) -> Vec<Col> {
    columns
        .iter()
        .map(|(name, ty)| {
            let c = match ty {
                'i' => Column::Int(Vec::new()),
                'b' => Column::Bool(Vec::new()),
                'f' => Column::Float(Vec::new()),
                _ => Column::Str(Vec::new()),
            };
            (*name, c)
        })
        .collect()
}

/// Each role's oid: the first superuser (the session's user without host roles) owns the tables.
fn role_oids(roles: &[HostRole]) -> Vec<Option<i64>> {
    let owner = roles
        .iter()
        .position(|r| r.superuser && r.login)
        .unwrap_or(0);
    (0..roles.len())
        .map(|i| {
            Some(if i == owner {
                OWNER_OID
            } else {
                FIRST_ROLE_OID + i as i64
            })
        })
        .collect()
}

/// The rows of `pg_catalog.<name>` (`name` without the schema).
pub(crate) fn rows(sys: &SystemTables, name: &str, tables: &[TableSchema]) -> Vec<Col> {
    let n = tables.len();
    match name {
        "pg_namespace" => vec![
            (
                "oid",
                Column::Int(NAMESPACES.iter().map(|x| Some(x.0)).collect()),
            ),
            (
                "nspname",
                Column::Str(NAMESPACES.iter().map(|x| s(x.1)).collect()),
            ),
            ("nspowner", ints(NAMESPACES.len(), OWNER_OID)),
            ("nspacl", nulls(NAMESPACES.len())),
        ],
        "pg_class" => vec![
            (
                "oid",
                Column::Int((0..n).map(|i| Some(FIRST_TABLE_OID + i as i64)).collect()),
            ),
            (
                "relname",
                Column::Str(tables.iter().map(|t| s(&t.name)).collect()),
            ),
            ("relnamespace", ints(n, PUBLIC_NS_OID)),
            ("reltype", ints(n, 0)),
            ("reloftype", ints(n, 0)),
            ("relowner", ints(n, OWNER_OID)),
            ("relam", ints(n, HEAP_AM_OID)),
            ("relfilenode", ints(n, 0)),
            ("reltablespace", ints(n, 0)),
            ("relpages", ints(n, 0)),
            ("reltuples", Column::Float(vec![Some(-1.0); n])),
            ("relallvisible", ints(n, 0)),
            ("reltoastrelid", ints(n, 0)),
            ("relhasindex", bools(n, false)),
            ("relisshared", bools(n, false)),
            ("relpersistence", texts(n, "p")),
            ("relkind", texts(n, "r")),
            (
                "relnatts",
                Column::Int(
                    tables
                        .iter()
                        .map(|t| Some(t.columns.len() as i64))
                        .collect(),
                ),
            ),
            ("relchecks", ints(n, 0)),
            ("relhasrules", bools(n, false)),
            ("relhastriggers", bools(n, false)),
            ("relhassubclass", bools(n, false)),
            ("relrowsecurity", bools(n, false)),
            ("relforcerowsecurity", bools(n, false)),
            ("relispopulated", bools(n, true)),
            ("relreplident", texts(n, "d")),
            ("relispartition", bools(n, false)),
            ("relrewrite", ints(n, 0)),
            ("relacl", nulls(n)),
            ("reloptions", nulls(n)),
            ("relpartbound", nulls(n)),
        ],
        "pg_am" => vec![
            ("oid", Column::Int(vec![Some(HEAP_AM_OID)])),
            ("amname", Column::Str(vec![s("heap")])),
            ("amhandler", Column::Str(vec![s("heap_tableam_handler")])),
            ("amtype", Column::Str(vec![s("t")])),
        ],
        "pg_attribute" => attributes(sys, tables),
        "pg_type" => {
            let k = TYPES.len();
            vec![
                (
                    "oid",
                    Column::Int(TYPES.iter().map(|t| Some(t.oid)).collect()),
                ),
                (
                    "typname",
                    Column::Str(TYPES.iter().map(|t| s(t.name)).collect()),
                ),
                ("typnamespace", ints(k, CATALOG_NS_OID)),
                ("typowner", ints(k, OWNER_OID)),
                (
                    "typlen",
                    Column::Int(TYPES.iter().map(|t| Some(t.len)).collect()),
                ),
                (
                    "typbyval",
                    Column::Bool(
                        TYPES
                            .iter()
                            .map(|t| Some(t.len > 0 && t.len <= 8))
                            .collect(),
                    ),
                ),
                ("typtype", texts(k, "b")),
                (
                    "typcategory",
                    Column::Str(TYPES.iter().map(|t| s(t.category)).collect()),
                ),
                ("typisdefined", bools(k, true)),
                ("typdelim", texts(k, ",")),
                ("typrelid", ints(k, 0)),
                ("typelem", ints(k, 0)),
                ("typnotnull", bools(k, false)),
                ("typbasetype", ints(k, 0)),
                ("typtypmod", ints(k, -1)),
                ("typndims", ints(k, 0)),
                (
                    "typcollation",
                    Column::Int(TYPES.iter().map(|t| Some(t.collation)).collect()),
                ),
                ("typdefault", nulls(k)),
                ("typarray", ints(k, 0)),
                ("typalign", texts(k, "d")),
                ("typstorage", texts(k, "p")),
                ("typacl", nulls(k)),
            ]
        }
        "pg_database" => vec![
            ("oid", Column::Int(vec![Some(DATABASE_OID)])),
            ("datname", Column::Str(vec![s(DATABASE)])),
            ("datdba", ints(1, OWNER_OID)),
            // UTF8.
            ("encoding", ints(1, 6)),
            ("datlocprovider", texts(1, "c")),
            ("datistemplate", bools(1, false)),
            ("datallowconn", bools(1, true)),
            ("datconnlimit", ints(1, -1)),
            ("datcollate", texts(1, "C.UTF-8")),
            ("datctype", texts(1, "C.UTF-8")),
            ("daticulocale", nulls(1)),
            ("datcollversion", nulls(1)),
            ("dattablespace", ints(1, DEFAULT_TABLESPACE_OID)),
            ("datacl", nulls(1)),
        ],
        "pg_tablespace" => vec![
            ("oid", ints(1, DEFAULT_TABLESPACE_OID)),
            ("spcname", texts(1, "pg_default")),
            ("spcowner", ints(1, OWNER_OID)),
            ("spcacl", nulls(1)),
            ("spcoptions", nulls(1)),
        ],
        // No extensions (Grafana asks for TimescaleDB's version here); the built-in plpgsql as PostgreSQL lists it.
        "pg_extension" => vec![
            ("oid", Column::Int(vec![Some(13_000 + 581)])),
            ("extname", Column::Str(vec![s("plpgsql")])),
            ("extowner", ints(1, OWNER_OID)),
            ("extnamespace", Column::Int(vec![Some(CATALOG_NS_OID)])),
            ("extrelocatable", bools(1, false)),
            ("extversion", Column::Str(vec![s("1.0")])),
        ],
        "pg_roles" => {
            let roles = sys.roles();
            let n = roles.len();
            let super_of =
                |f: fn(&HostRole) -> bool| Column::Bool(roles.iter().map(|r| Some(f(r))).collect());
            vec![
                ("oid", Column::Int(role_oids(&roles))),
                (
                    "rolname",
                    Column::Str(roles.iter().map(|r| s(&r.name)).collect()),
                ),
                ("rolsuper", super_of(|r| r.superuser)),
                ("rolinherit", bools(n, true)),
                ("rolcreaterole", super_of(|r| r.superuser)),
                ("rolcreatedb", super_of(|r| r.superuser)),
                ("rolcanlogin", super_of(|r| r.login)),
                ("rolreplication", bools(n, false)),
                ("rolconnlimit", ints(n, -1)),
                ("rolpassword", texts(n, "********")),
                ("rolvaliduntil", nulls(n)),
                ("rolbypassrls", super_of(|r| r.superuser)),
                ("rolconfig", nulls(n)),
            ]
        }
        "pg_user" => {
            let all = sys.roles();
            let oids = role_oids(&all);
            let users: Vec<(usize, &HostRole)> =
                all.iter().enumerate().filter(|(_, r)| r.login).collect();
            let n = users.len();
            vec![
                (
                    "usename",
                    Column::Str(users.iter().map(|(_, r)| s(&r.name)).collect()),
                ),
                (
                    "usesysid",
                    Column::Int(users.iter().map(|(i, _)| oids[*i]).collect()),
                ),
                (
                    "usecreatedb",
                    Column::Bool(users.iter().map(|(_, r)| Some(r.superuser)).collect()),
                ),
                (
                    "usesuper",
                    Column::Bool(users.iter().map(|(_, r)| Some(r.superuser)).collect()),
                ),
                ("userepl", bools(n, false)),
                (
                    "usebypassrls",
                    Column::Bool(users.iter().map(|(_, r)| Some(r.superuser)).collect()),
                ),
                ("passwd", texts(n, "********")),
                ("valuntil", nulls(n)),
                ("useconfig", nulls(n)),
            ]
        }
        "pg_auth_members" => {
            let roles = sys.roles();
            let oids = role_oids(&roles);
            let oid_of = |name: &str| {
                roles
                    .iter()
                    .position(|r| r.name.eq_ignore_ascii_case(name))
                    .map(|i| oids[i])
            };
            let pairs: Vec<(Option<i64>, Option<i64>)> = roles
                .iter()
                .enumerate()
                .flat_map(|(i, r)| r.member_of.iter().map(move |m| (i, m)))
                .filter_map(|(i, m)| oid_of(m).map(|role| (role, oids[i])))
                .collect();
            let n = pairs.len();
            vec![
                (
                    "oid",
                    Column::Int(
                        (0..n)
                            .map(|i| Some(FIRST_MEMBERSHIP_OID + i as i64))
                            .collect(),
                    ),
                ),
                ("roleid", Column::Int(pairs.iter().map(|p| p.0).collect())),
                ("member", Column::Int(pairs.iter().map(|p| p.1).collect())),
                ("grantor", ints(n, OWNER_OID)),
                ("admin_option", bools(n, false)),
            ]
        }
        "pg_collation" => vec![
            (
                "oid",
                Column::Int(vec![Some(DEFAULT_COLLATION_OID), Some(950), Some(951)]),
            ),
            (
                "collname",
                Column::Str(vec![s("default"), s("C"), s("POSIX")]),
            ),
            ("collnamespace", ints(3, CATALOG_NS_OID)),
            ("collowner", ints(3, OWNER_OID)),
            ("collprovider", Column::Str(vec![s("d"), s("c"), s("c")])),
            ("collisdeterministic", bools(3, true)),
            ("collencoding", ints(3, -1)),
            ("collcollate", Column::Str(vec![None, s("C"), s("POSIX")])),
            ("collctype", Column::Str(vec![None, s("C"), s("POSIX")])),
        ],
        "pg_settings" => sys.settings_rows(),
        "pg_attrdef" => empty(&[
            ("oid", 'i'),
            ("adrelid", 'i'),
            ("adnum", 'i'),
            ("adbin", 't'),
        ]),
        "pg_policy" => empty(&[
            ("oid", 'i'),
            ("polname", 't'),
            ("polrelid", 'i'),
            ("polcmd", 't'),
            ("polpermissive", 'b'),
            ("polroles", 't'),
            ("polqual", 't'),
            ("polwithcheck", 't'),
        ]),
        "pg_statistic_ext" => empty(&[
            ("oid", 'i'),
            ("stxrelid", 'i'),
            ("stxname", 't'),
            ("stxnamespace", 'i'),
            ("stxowner", 'i'),
            ("stxstattarget", 'i'),
            ("stxkeys", 't'),
            ("stxkind", 't'),
            ("stxexprs", 't'),
        ]),
        "pg_publication" => empty(&[
            ("oid", 'i'),
            ("pubname", 't'),
            ("pubowner", 'i'),
            ("puballtables", 'b'),
            ("pubinsert", 'b'),
            ("pubupdate", 'b'),
            ("pubdelete", 'b'),
            ("pubtruncate", 'b'),
            ("pubviaroot", 'b'),
        ]),
        "pg_publication_namespace" => empty(&[("oid", 'i'), ("pnpubid", 'i'), ("pnnspid", 'i')]),
        "pg_publication_rel" => empty(&[
            ("oid", 'i'),
            ("prpubid", 'i'),
            ("prrelid", 'i'),
            ("prqual", 't'),
            ("prattrs", 't'),
        ]),
        "pg_inherits" => empty(&[
            ("inhrelid", 'i'),
            ("inhparent", 'i'),
            ("inhseqno", 'i'),
            ("inhdetachpending", 'b'),
        ]),
        "pg_index" => empty(&[
            ("indexrelid", 'i'),
            ("indrelid", 'i'),
            ("indnatts", 'i'),
            ("indnkeyatts", 'i'),
            ("indisunique", 'b'),
            ("indnullsnotdistinct", 'b'),
            ("indisprimary", 'b'),
            ("indisexclusion", 'b'),
            ("indimmediate", 'b'),
            ("indisclustered", 'b'),
            ("indisvalid", 'b'),
            ("indcheckxmin", 'b'),
            ("indisready", 'b'),
            ("indislive", 'b'),
            ("indisreplident", 'b'),
            ("indkey", 't'),
            ("indcollation", 't'),
            ("indclass", 't'),
            ("indoption", 't'),
            ("indexprs", 't'),
            ("indpred", 't'),
        ]),
        "pg_constraint" => empty(&[
            ("oid", 'i'),
            ("conname", 't'),
            ("connamespace", 'i'),
            ("contype", 't'),
            ("condeferrable", 'b'),
            ("condeferred", 'b'),
            ("convalidated", 'b'),
            ("conrelid", 'i'),
            ("contypid", 'i'),
            ("conindid", 'i'),
            ("conparentid", 'i'),
            ("confrelid", 'i'),
            ("confupdtype", 't'),
            ("confdeltype", 't'),
            ("confmatchtype", 't'),
            ("conislocal", 'b'),
            ("coninhcount", 'i'),
            ("connoinherit", 'b'),
            ("conkey", 't'),
            ("confkey", 't'),
            ("conbin", 't'),
        ]),
        // The one comment PostgreSQL ships outside pg_catalog: the public schema's.
        "pg_description" => vec![
            ("objoid", ints(1, PUBLIC_NS_OID)),
            ("classoid", ints(1, NAMESPACE_CLASS_OID)),
            ("objsubid", ints(1, 0)),
            ("description", texts(1, PUBLIC_DESCRIPTION)),
        ],
        "pg_sequence" => empty(&[
            ("seqrelid", 'i'),
            ("seqtypid", 'i'),
            ("seqstart", 'i'),
            ("seqincrement", 'i'),
            ("seqmax", 'i'),
            ("seqmin", 'i'),
            ("seqcache", 'i'),
            ("seqcycle", 'b'),
        ]),
        "pg_enum" => empty(&[
            ("oid", 'i'),
            ("enumtypid", 'i'),
            ("enumsortorder", 'f'),
            ("enumlabel", 't'),
        ]),
        "pg_trigger" => empty(&[
            ("oid", 'i'),
            ("tgrelid", 'i'),
            ("tgname", 't'),
            ("tgenabled", 't'),
            ("tgisinternal", 'b'),
        ]),
        "pg_opclass" => empty(&[
            ("oid", 'i'),
            ("opcmethod", 'i'),
            ("opcname", 't'),
            ("opcnamespace", 'i'),
            ("opcowner", 'i'),
            ("opcfamily", 'i'),
            ("opcintype", 'i'),
            ("opcdefault", 'b'),
            ("opckeytype", 'i'),
        ]),
        "pg_proc" => empty(&[
            ("oid", 'i'),
            ("proname", 't'),
            ("pronamespace", 'i'),
            ("proowner", 'i'),
            ("prokind", 't'),
            ("prorettype", 'i'),
        ]),
        _ => Vec::new(),
    }
}

/// One column of a user table: its table's OID, its name, type and 1-based position.
type AttRow = (i64, String, ColumnType, i64);

/// `pg_attribute`: one row per column of every user table; the time column is NOT NULL.
fn attributes(sys: &SystemTables, tables: &[TableSchema]) -> Vec<Col> {
    let oids: HashMap<&str, i64> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), FIRST_TABLE_OID + i as i64))
        .collect();
    let rows: Vec<AttRow> = sys
        .column_rows(tables)
        .into_iter()
        .map(|(t, col, ty, pos)| (oids[t.as_str()], col, ty, pos))
        .collect();
    let n = rows.len();
    let each = |f: &dyn Fn(&AttRow) -> i64| Column::Int(rows.iter().map(|r| Some(f(r))).collect());
    let fixed = |ty: ColumnType| ty != ColumnType::String;
    vec![
        ("attrelid", each(&|r| r.0)),
        (
            "attname",
            Column::Str(rows.iter().map(|r| s(&r.1)).collect()),
        ),
        ("atttypid", each(&|r| pg_type(r.2).2)),
        ("attstattarget", ints(n, -1)),
        (
            "attlen",
            each(&|r| match r.2 {
                ColumnType::String => -1,
                ColumnType::Boolean => 1,
                _ => 8,
            }),
        ),
        ("attnum", each(&|r| r.3)),
        ("attndims", ints(n, 0)),
        ("attcacheoff", ints(n, -1)),
        ("atttypmod", ints(n, -1)),
        (
            "attbyval",
            Column::Bool(rows.iter().map(|r| Some(fixed(r.2))).collect()),
        ),
        (
            "attalign",
            Column::Str(
                rows.iter()
                    .map(|r| s(if fixed(r.2) { "d" } else { "i" }))
                    .collect(),
            ),
        ),
        (
            "attstorage",
            Column::Str(
                rows.iter()
                    .map(|r| s(if fixed(r.2) { "p" } else { "x" }))
                    .collect(),
            ),
        ),
        ("attcompression", texts(n, "")),
        (
            "attnotnull",
            Column::Bool(
                rows.iter()
                    .map(|r| Some(r.2 == ColumnType::Timestamp))
                    .collect(),
            ),
        ),
        ("atthasdef", bools(n, false)),
        ("atthasmissing", bools(n, false)),
        ("attidentity", texts(n, "")),
        ("attgenerated", texts(n, "")),
        ("attisdropped", bools(n, false)),
        ("attislocal", bools(n, true)),
        ("attinhcount", ints(n, 0)),
        (
            "attcollation",
            each(&|r| {
                if r.2 == ColumnType::String {
                    DEFAULT_COLLATION_OID
                } else {
                    0
                }
            }),
        ),
        ("attacl", nulls(n)),
        ("attoptions", nulls(n)),
        ("attfdwoptions", nulls(n)),
        ("attmissingval", nulls(n)),
    ]
}
