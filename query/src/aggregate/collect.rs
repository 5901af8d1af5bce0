//! `ARRAY_AGG(x [ORDER BY ...])` and `STRING_AGG(x, sep [ORDER BY ...])`: each group's values collected with
//! their sort keys, sorted at the end (ascending, NULLs last, or as the ORDER BY says; in arrival order without
//! one), then written out: `ARRAY_AGG` as the text of a PostgreSQL array (`{a,b,"c d"}`, NULL elements as
//! `NULL`; basalt has no array type), `STRING_AGG` joined by the separator with NULLs skipped. A group without
//! values is NULL. The input is the value alone, or a struct of the value and the sort keys.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, StringArray, StructArray};
use arrow_schema::DataType;

use super::support::{internal, vec_bytes};
use super::Accumulator;
use crate::error::Result;
use crate::expr::{compare_sort_key, pg_array_text, scalar_at, Scalar};
use crate::plan::CollectInto;

/// One value with its sort keys.
type Item = (Vec<Scalar>, Option<String>);

#[derive(Debug, Clone)]
pub(crate) struct Collect {
    groups: Vec<Vec<Item>>,
    into: CollectInto,
    /// Per sort key: descending, NULLs first.
    order: Vec<(bool, bool)>,
}

impl Collect {
    pub(crate) fn new(into: CollectInto, order: Vec<(bool, bool)>) -> Self {
        Collect {
            groups: Vec::new(),
            into,
            order,
        }
    }

    fn compare(&self, a: &[Scalar], b: &[Scalar]) -> Ordering {
        for (k, (desc, nulls_first)) in self.order.iter().enumerate() {
            let o = compare_sort_key(&a[k], &b[k], *desc, *nulls_first);
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

/// A scalar as PostgreSQL's text output writes it.
fn text(s: &Scalar) -> Option<String> {
    match s {
        Scalar::Null => None,
        Scalar::Bool(b) => Some(if *b { "t" } else { "f" }.into()),
        Scalar::Int(i) => Some(i.to_string()),
        Scalar::Float(f) => Some(f.to_string()),
        Scalar::Str(s) => Some(s.clone()),
        Scalar::Timestamp(ms) => chrono::DateTime::from_timestamp_millis(*ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f+00").to_string()),
    }
}

impl Accumulator for Collect {
    fn len(&self) -> usize {
        self.groups.len()
    }

    fn resize(&mut self, n: usize) {
        self.groups.resize_with(n, Vec::new);
    }

    fn memory_bytes(&self) -> usize {
        vec_bytes(&self.groups)
            + self
                .groups
                .iter()
                .map(|g| {
                    vec_bytes(g)
                        + g.iter()
                            .map(|(k, v)| vec_bytes(k) + v.as_ref().map_or(0, |s| s.len()))
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        let values = values.ok_or_else(|| internal("array_agg without an argument"))?;
        let (value, keys): (ArrayRef, Vec<ArrayRef>) = match values
            .as_any()
            .downcast_ref::<StructArray>()
        {
            Some(s) if !self.order.is_empty() => (s.column(0).clone(), s.columns()[1..].to_vec()),
            _ => (values.clone(), Vec::new()),
        };
        for (&g, &r) in gids.iter().zip(rows) {
            let r = r as usize;
            let v = text(&scalar_at(&value, r)?);
            let k = keys
                .iter()
                .map(|a| scalar_at(a, r))
                .collect::<Result<Vec<_>>>()?;
            self.groups
                .get_mut(g as usize)
                .ok_or_else(|| internal("a group past the states"))?
                .push((k, v));
        }
        Ok(())
    }

    fn merge(&mut self, to: usize, other: &Self, from: usize) -> Result<()> {
        let items = other
            .groups
            .get(from)
            .ok_or_else(|| internal("a group past the states"))?
            .clone();
        self.groups
            .get_mut(to)
            .ok_or_else(|| internal("a group past the states"))?
            .extend(items);
        Ok(())
    }

    fn finish(&mut self, _ty: &DataType) -> Result<ArrayRef> {
        let mut groups = std::mem::take(&mut self.groups);
        let out: StringArray = groups
            .iter_mut()
            .map(|items| {
                if items.is_empty() {
                    return None;
                }
                if !self.order.is_empty() {
                    items.sort_by(|a, b| self.compare(&a.0, &b.0));
                }
                match &self.into {
                    CollectInto::Array => {
                        let values: Vec<Option<String>> =
                            items.iter().map(|(_, v)| v.clone()).collect();
                        Some(pg_array_text(&values))
                    }
                    CollectInto::String(sep) => {
                        let parts: Vec<&str> =
                            items.iter().filter_map(|(_, v)| v.as_deref()).collect();
                        (!parts.is_empty()).then(|| parts.join(sep))
                    }
                }
            })
            .collect();
        Ok(Arc::new(out))
    }
}
