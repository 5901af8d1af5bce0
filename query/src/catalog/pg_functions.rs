//! PostgreSQL's catalog functions and object-identifier casts, rewritten on the syntax tree over what the
//! catalog holds, before planning: `format_type(oid, typmod)` and `x::regtype` become a `CASE` over the type
//! OIDs, `x::regclass` a `CASE` over the tables (a string literal `'t'::regclass` becomes the table's OID),
//! `x::regnamespace` one over the namespaces, `pg_table_size(oid)` one over the tables' bytes on disk. Functions
//! about objects basalt does not have (`pg_get_expr`, `col_description`, `pg_get_indexdef`, ...) are NULL text;
//! privilege checks are true (auth is not per table yet). `x = ANY(arr)` of a non-constant array (the catalog's
//! array columns, NULL text in PostgreSQL's `{a,b}` form) is a text match on the elements.

use std::ops::ControlFlow;

use sqlparser::ast::{self, Spanned, VisitMut, VisitorMut};

use super::pg_catalog::{NAMESPACES, TYPES};
use super::system::{SystemTables, FIRST_TABLE_OID};
use crate::error::{Pos, QueryError, Result};
use crate::expr::Scalar;
use crate::sql::consts::{const_scalar_text, const_str, is_null};
use crate::sql::literal;

/// Rewrites the catalog functions and casts of `stmt` (see the module doc).
pub fn fold(stmt: &mut ast::Statement, sys: &SystemTables) -> Result<()> {
    match stmt.visit(&mut Folder {
        sys,
        relations: std::cell::OnceCell::new(),
    }) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// One user table: OID, name and bytes on disk.
type Relation = (i64, String, Option<u64>);

struct Folder<'a, 'b> {
    sys: &'a SystemTables<'b>,
    /// Every user table, listed the first time a rewrite needs them (most statements never do).
    relations: std::cell::OnceCell<Vec<Relation>>,
}

impl Folder<'_, '_> {
    fn relations(&self) -> &[Relation] {
        self.relations.get_or_init(|| {
            let base = self.sys.base();
            let mut names = base.table_names();
            names.sort();
            names
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    let bytes = base.table_bytes(&n);
                    (FIRST_TABLE_OID + i as i64, n, bytes)
                })
                .collect()
        })
    }
}

fn text_null() -> ast::Expr {
    cast(literal(&Scalar::Null), ast::DataType::Text)
}

fn cast(e: ast::Expr, ty: ast::DataType) -> ast::Expr {
    ast::Expr::Cast {
        kind: ast::CastKind::Cast,
        expr: Box::new(e),
        data_type: ty,
        format: None,
    }
}

/// `CASE WHEN e IS NULL THEN NULL WHEN e = k1 THEN v1 ... ELSE default END`.
fn lookup(e: &ast::Expr, pairs: Vec<(Scalar, Scalar)>, default: ast::Expr) -> ast::Expr {
    let mut conditions = vec![ast::CaseWhen {
        condition: ast::Expr::IsNull(Box::new(e.clone())),
        result: literal(&Scalar::Null),
    }];
    for (k, v) in pairs {
        conditions.push(ast::CaseWhen {
            condition: ast::Expr::BinaryOp {
                left: Box::new(e.clone()),
                op: ast::BinaryOperator::Eq,
                right: Box::new(literal(&k)),
            },
            result: literal(&v),
        });
    }
    ast::Expr::Case {
        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions,
        else_result: Some(Box::new(default)),
    }
}

/// A string constant (`None` for NULL or anything else).
fn str_literal(e: &ast::Expr) -> Option<String> {
    const_str(e).flatten()
}

/// The last part of a custom type name (`pg_catalog.regclass` -> `regclass`), lower-cased.
fn custom_type(t: &ast::DataType) -> Option<String> {
    match t {
        ast::DataType::Custom(name, _) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase()),
        ast::DataType::Regclass => Some("regclass".into()),
        _ => None,
    }
}

/// The OID of a `pg_catalog` table: PostgreSQL's own for the ones clients name (`'pg_class'::regclass` in
/// `pg_description.classoid` filters), one past the others.
fn catalog_oid(name: &str) -> Option<i64> {
    const KNOWN: [(&str, i64); 9] = [
        ("pg_type", 1247),
        ("pg_attribute", 1249),
        ("pg_proc", 1255),
        ("pg_class", 1259),
        ("pg_database", 1262),
        ("pg_constraint", 2606),
        ("pg_description", 2609),
        ("pg_index", 2610),
        ("pg_namespace", super::pg_catalog::NAMESPACE_CLASS_OID),
    ];
    if let Some((_, oid)) = KNOWN.iter().find(|(n, _)| *n == name) {
        return Some(*oid);
    }
    super::pg_catalog::TABLES
        .iter()
        .position(|t| *t == name)
        .map(|i| 12_000 + i as i64)
}

impl Folder<'_, '_> {
    /// A relation named by a string (`'births'`, `'public.births'`, `'"Births"'`) to its OID.
    fn relation_oid(&self, name: &str, pos: Pos) -> Result<i64> {
        let bare = name.rsplit('.').next().unwrap_or(name);
        let (bare, quoted) = match bare.strip_prefix('"').and_then(|b| b.strip_suffix('"')) {
            Some(q) => (q.to_string(), true),
            None => (bare.to_ascii_lowercase(), false),
        };
        if let Some(oid) = catalog_oid(&bare) {
            return Ok(oid);
        }
        self.relations()
            .iter()
            .find(|r| r.1 == bare || (!quoted && r.1.eq_ignore_ascii_case(&bare)))
            .map(|r| r.0)
            .ok_or_else(|| QueryError::UnknownTable {
                name: name.to_string(),
                pos,
            })
    }

    fn cast(&self, expr: &ast::Expr, ty: &str, pos: Pos) -> Result<Option<ast::Expr>> {
        let text = |e: &ast::Expr| cast(e.clone(), ast::DataType::Text);
        if is_null(expr) && ty.starts_with("reg") {
            return Ok(Some(literal(&Scalar::Null)));
        }
        Ok(Some(match ty {
            "regclass" => match str_literal(expr) {
                Some(name) => literal(&Scalar::Int(self.relation_oid(&name, pos)?)),
                None => lookup(
                    expr,
                    self.relations()
                        .iter()
                        .map(|r| (Scalar::Int(r.0), Scalar::Str(r.1.clone())))
                        .collect(),
                    text(expr),
                ),
            },
            "regtype" => match str_literal(expr) {
                Some(name) => {
                    let lower = name.to_ascii_lowercase();
                    let found = TYPES
                        .iter()
                        .find(|t| t.name == lower || t.formatted == lower)
                        .ok_or_else(|| {
                            QueryError::invalid(format!("type \"{name}\" does not exist"), pos)
                        })?;
                    literal(&Scalar::Int(found.oid))
                }
                None => lookup(
                    expr,
                    TYPES
                        .iter()
                        .map(|t| (Scalar::Int(t.oid), Scalar::Str(t.formatted.into())))
                        .collect(),
                    text(expr),
                ),
            },
            "regnamespace" => lookup(
                expr,
                NAMESPACES
                    .iter()
                    .map(|n| (Scalar::Int(n.0), Scalar::Str(n.1.into())))
                    .collect(),
                text(expr),
            ),
            // No functions or operators are listed in the catalog: their OIDs print as numbers.
            "regproc" | "regprocedure" | "regoper" | "regoperator" | "regrole" => text(expr),
            _ => return Ok(None),
        }))
    }

    fn function(&self, f: &ast::Function) -> Result<Option<ast::Expr>> {
        let name = crate::sql::consts::function_name(f);
        let name = name.as_str();
        // A call with a named or subquery argument is none of these.
        let Some(args) = crate::sql::consts::function_args(f) else {
            return Ok(None);
        };
        let bytes_of = |e: &ast::Expr| -> Result<ast::Expr> {
            Ok(match str_literal(e) {
                Some(name) => {
                    let oid = self.relation_oid(&name, Pos::from(e.span()))?;
                    let bytes = self
                        .relations()
                        .iter()
                        .find(|r| r.0 == oid)
                        .and_then(|r| r.2);
                    literal(&bytes.map_or(Scalar::Null, |b| Scalar::Int(b as i64)))
                }
                None => lookup(
                    e,
                    self.relations()
                        .iter()
                        .filter_map(|r| Some((Scalar::Int(r.0), Scalar::Int(r.2? as i64))))
                        .collect(),
                    literal(&Scalar::Null),
                ),
            })
        };
        Ok(Some(match (name, args.as_slice()) {
            ("bool_and" | "every" | "bool_or", [x]) => bool_aggregate(name, x, f),
            ("format_type", [ty, _]) => lookup(
                ty,
                TYPES
                    .iter()
                    .map(|t| (Scalar::Int(t.oid), Scalar::Str(t.formatted.into())))
                    .collect(),
                literal(&Scalar::Str("???".into())),
            ),
            ("pg_table_size" | "pg_relation_size" | "pg_total_relation_size", [rel, ..]) => {
                bytes_of(rel)?
            }
            ("pg_indexes_size", [_]) => literal(&Scalar::Int(0)),
            ("pg_database_size", [_]) => literal(&Scalar::Int(
                self.relations().iter().filter_map(|r| r.2).sum::<u64>() as i64,
            )),
            (
                "pg_get_expr"
                | "pg_get_indexdef"
                | "pg_get_constraintdef"
                | "pg_get_viewdef"
                | "pg_get_triggerdef"
                | "pg_get_partkeydef"
                | "pg_get_serial_sequence"
                | "pg_get_statisticsobjdef_columns"
                | "col_description"
                | "shobj_description"
                | "pg_get_function_result"
                | "pg_get_function_arguments"
                | "pg_get_function_identity_arguments"
                | "pg_tablespace_location",
                _,
            ) => text_null(),
            // The public schema's comment, as pg_description holds it; nothing else has one.
            ("obj_description", [oid, class])
                if str_literal(class).as_deref() == Some("pg_namespace") =>
            {
                lookup(
                    oid,
                    vec![(
                        Scalar::Int(super::pg_catalog::PUBLIC_NS_OID),
                        Scalar::Str(super::pg_catalog::PUBLIC_DESCRIPTION.into()),
                    )],
                    text_null(),
                )
            }
            ("obj_description", _) => text_null(),
            ("pg_encoding_to_char", [_]) => literal(&Scalar::Str("UTF8".into())),
            (
                "has_table_privilege"
                | "has_database_privilege"
                | "has_schema_privilege"
                | "has_column_privilege"
                | "has_any_column_privilege"
                | "has_sequence_privilege"
                | "pg_has_role"
                | "pg_collation_is_visible"
                | "pg_type_is_visible"
                | "pg_function_is_visible",
                _,
            ) => literal(&Scalar::Bool(true)),
            ("pg_relation_is_publishable" | "pg_is_other_temp_schema", [_]) => {
                literal(&Scalar::Bool(false))
            }
            // The catalog's arrays are NULL text; a constant array was folded before.
            ("array_to_string", [a, ..])
                if matches!(
                    a,
                    ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_)
                ) =>
            {
                cast((*a).clone(), ast::DataType::Text)
            }
            _ => return Ok(None),
        }))
    }
}

/// `bool_and(x)` as `MIN(CASE WHEN x THEN 1 WHEN NOT x THEN 0 END) = 1` (NULL over no rows or only NULLs, as in
/// PostgreSQL), `bool_or(x)` the same with MAX.
fn bool_aggregate(name: &str, x: &ast::Expr, f: &ast::Function) -> ast::Expr {
    let when = |condition: ast::Expr, v: i64| ast::CaseWhen {
        condition,
        result: literal(&Scalar::Int(v)),
    };
    let as_int = ast::Expr::Case {
        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        operand: None,
        conditions: vec![
            when(x.clone(), 1),
            when(
                ast::Expr::UnaryOp {
                    op: ast::UnaryOperator::Not,
                    expr: Box::new(ast::Expr::Nested(Box::new(x.clone()))),
                },
                0,
            ),
        ],
        else_result: None,
    };
    let mut call = f.clone();
    call.name = ast::ObjectName::from(vec![ast::Ident::new(if name == "bool_or" {
        "max"
    } else {
        "min"
    })]);
    call.args = ast::FunctionArguments::List(ast::FunctionArgumentList {
        duplicate_treatment: None,
        args: vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(
            as_int,
        ))],
        clauses: Vec::new(),
    });
    ast::Expr::Nested(Box::new(ast::Expr::BinaryOp {
        left: Box::new(ast::Expr::Function(call)),
        op: ast::BinaryOperator::Eq,
        right: Box::new(literal(&Scalar::Int(1))),
    }))
}

/// Array-typed columns of the catalog tables: always NULL in basalt (no indexes, constraints, ACLs, options).
const ARRAY_COLUMNS: [&str; 26] = [
    "indkey",
    "indcollation",
    "indclass",
    "indoption",
    "conkey",
    "confkey",
    "conpfeqop",
    "conppeqop",
    "conffeqop",
    "conexclop",
    "reloptions",
    "relacl",
    "datacl",
    "nspacl",
    "attacl",
    "attoptions",
    "typacl",
    "spcacl",
    "spcoptions",
    "rolconfig",
    "useconfig",
    "polroles",
    "stxkeys",
    "stxkind",
    "prattrs",
    "proargtypes",
];

/// A set-returning call over a catalog array column in a SELECT list (`unnest(pg_index.indkey)`): its array
/// is always NULL, so the SELECT has no rows.
fn unnests_catalog_array(e: &ast::Expr) -> bool {
    let ast::Expr::Function(f) = e else {
        return false;
    };
    let name = f.name.to_string().to_ascii_lowercase();
    let name = name.strip_prefix("pg_catalog.").unwrap_or(&name);
    if !matches!(name, "unnest" | "generate_subscripts") {
        return false;
    }
    let ast::FunctionArguments::List(l) = &f.args else {
        return false;
    };
    let column = match l.args.first() {
        Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e))) => match e {
            ast::Expr::Identifier(i) => Some(i.value.to_ascii_lowercase()),
            ast::Expr::CompoundIdentifier(p) => p.last().map(|i| i.value.to_ascii_lowercase()),
            _ => None,
        },
        _ => None,
    };
    column.is_some_and(|c| ARRAY_COLUMNS.contains(&c.as_str()))
}

/// `x = ANY(a)` over a non-constant array in text form: `(',' || btrim(a, '{}') || ',') LIKE '%,' || x || ',%'`.
fn any_text(left: &ast::Expr, right: &ast::Expr) -> ast::Expr {
    let concat = |l: ast::Expr, r: ast::Expr| ast::Expr::BinaryOp {
        left: Box::new(l),
        op: ast::BinaryOperator::StringConcat,
        right: Box::new(r),
    };
    let comma = || literal(&Scalar::Str(",".into()));
    let trimmed = ast::Expr::Function(ast::Function {
        name: ast::ObjectName::from(vec![ast::Ident::new("btrim")]),
        uses_odbc_syntax: false,
        parameters: ast::FunctionArguments::None,
        args: ast::FunctionArguments::List(ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(cast(
                    right.clone(),
                    ast::DataType::Text,
                ))),
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(literal(&Scalar::Str(
                    "{}".into(),
                )))),
            ],
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    });
    ast::Expr::Like {
        negated: false,
        any: false,
        expr: Box::new(concat(concat(comma(), trimmed), comma())),
        pattern: Box::new(match const_scalar_text(left).flatten() {
            Some(v) => literal(&Scalar::Str(format!("%,{v},%"))),
            None => concat(
                concat(
                    literal(&Scalar::Str("%,".into())),
                    cast(left.clone(), ast::DataType::Text),
                ),
                literal(&Scalar::Str(",%".into())),
            ),
        }),
        escape_char: None,
    }
}

/// Whether `e` is a call or cast this module rewrites (so its output keeps the name PostgreSQL gives it).
fn rewritten(e: &ast::Expr) -> bool {
    match e {
        ast::Expr::Function(f) => crate::planner::registry::lookup(&f.name.to_string())
            .is_some_and(|f| f.kind == crate::planner::registry::Kind::Catalog),
        ast::Expr::Cast { data_type, .. } => {
            custom_type(data_type).is_some_and(|t| t.starts_with("reg"))
        }
        _ => false,
    }
}

impl VisitorMut for Folder<'_, '_> {
    type Break = QueryError;

    fn pre_visit_query(&mut self, q: &mut ast::Query) -> ControlFlow<QueryError> {
        if let ast::SetExpr::Select(select) = q.body.as_mut() {
            let mut empty = false;
            for item in &mut select.projection {
                if let ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    if unnests_catalog_array(e) {
                        *e = cast(literal(&Scalar::Null), ast::DataType::BigInt(None));
                        empty = true;
                    }
                }
            }
            if empty {
                select.selection = Some(literal(&Scalar::Bool(false)));
            }
            for item in &mut select.projection {
                if let ast::SelectItem::UnnamedExpr(e) = item {
                    if rewritten(e) {
                        let alias = ast::Ident::with_quote('"', crate::planner::output_name(e));
                        *item = ast::SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias,
                        };
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut ast::Expr) -> ControlFlow<QueryError> {
        let pos = Pos::from(e.span());
        let replaced = match e {
            ast::Expr::Cast {
                expr, data_type, ..
            } => match custom_type(data_type) {
                Some(ty) => self.cast(expr, &ty, pos),
                None => Ok(None),
            },
            ast::Expr::Function(f) => self.function(f),
            ast::Expr::AnyOp {
                left,
                compare_op: ast::BinaryOperator::Eq,
                right,
                ..
            } if !matches!(right.as_ref(), ast::Expr::Array(_)) => Ok(Some(any_text(left, right))),
            _ => Ok(None),
        };
        match replaced {
            Ok(Some(new)) => {
                *e = new;
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(err) => ControlFlow::Break(err),
        }
    }
}
