//! MIN and MAX: integers and timestamps kept as plain `i64`, doubles in `f64::total_cmp` order, any other type
//! (strings) as scalars.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array};
use arrow_schema::DataType;
use std::cmp::Ordering;
use std::sync::Arc;

use super::support::{internal, vec_bytes};
use super::{one_group, Accumulator};
use crate::error::Result;
use crate::expr::{cast_to, compare_scalars, scalar_at, scalars_to_array, Scalar};

/// MIN/MAX of longs and timestamps.
#[derive(Debug, Clone)]
pub(crate) struct MinMaxInt {
    values: Vec<Option<i64>>,
    max: bool,
}

/// MIN/MAX of doubles.
#[derive(Debug, Clone)]
pub(crate) struct MinMaxFloat {
    values: Vec<Option<f64>>,
    max: bool,
}

/// MIN/MAX of other types (strings), as scalars.
#[derive(Debug, Clone)]
pub(crate) struct MinMax {
    values: Vec<Option<Scalar>>,
    max: bool,
}

impl MinMaxInt {
    pub(crate) fn new(max: bool) -> Self {
        MinMaxInt {
            values: Vec::new(),
            max,
        }
    }

    fn pick(&self, cur: Option<i64>, x: i64) -> i64 {
        match cur {
            None => x,
            Some(c) if self.max => c.max(x),
            Some(c) => c.min(x),
        }
    }
}

impl MinMaxFloat {
    pub(crate) fn new(max: bool) -> Self {
        MinMaxFloat {
            values: Vec::new(),
            max,
        }
    }
}

impl MinMax {
    pub(crate) fn new(max: bool) -> Self {
        MinMax {
            values: Vec::new(),
            max,
        }
    }

    /// Whether `x` replaces the current value `cur`.
    fn better(&self, x: &Scalar, cur: &Option<Scalar>) -> bool {
        match cur {
            None => true,
            Some(cur) => {
                let ord = compare_scalars(x, cur);
                if self.max {
                    ord == Ordering::Greater
                } else {
                    ord == Ordering::Less
                }
            }
        }
    }
}

impl Accumulator for MinMaxInt {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, None);
    }

    fn memory_bytes(&self) -> usize {
        vec_bytes(&self.values)
    }

    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        let v = values.ok_or_else(|| internal("MIN/MAX without argument"))?;
        let v = cast_to(v, &DataType::Int64)?;
        let a = v.as_primitive::<Int64Type>();
        let vals = a.values();
        for (g, r) in gids.iter().zip(rows) {
            if a.is_valid(*r as usize) {
                let g = *g as usize;
                self.values[g] = Some(self.pick(self.values[g], vals[*r as usize]));
            }
        }
        Ok(())
    }

    fn merge(&mut self, to: usize, other: &MinMaxInt, from: usize) -> Result<()> {
        if let Some(x) = other.values[from] {
            self.values[to] = Some(self.pick(self.values[to], x));
        }
        Ok(())
    }

    fn finish(&mut self, ty: &DataType) -> Result<ArrayRef> {
        let a: ArrayRef = Arc::new(Int64Array::from(self.values.clone()));
        cast_to(&a, ty)
    }
}

impl Accumulator for MinMaxFloat {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, None);
    }

    fn memory_bytes(&self) -> usize {
        vec_bytes(&self.values)
    }

    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        let v = values.ok_or_else(|| internal("MIN/MAX without argument"))?;
        let a = v.as_primitive::<Float64Type>();
        let vals = a.values();
        let max = self.max;
        for (g, r) in gids.iter().zip(rows) {
            if a.is_valid(*r as usize) {
                let x = vals[*r as usize];
                let s = &mut self.values[*g as usize];
                *s = Some(match *s {
                    Some(c) if max && x.total_cmp(&c).is_le() => c,
                    Some(c) if !max && x.total_cmp(&c).is_ge() => c,
                    _ => x,
                });
            }
        }
        Ok(())
    }

    fn update_group(&mut self, g: usize, rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        if values.is_none_or(|v| v.null_count() == 0) && !rows.is_empty() {
            let all = values.is_some_and(|v| rows.len() == v.len());
            let v = values.ok_or_else(|| internal("MIN/MAX without argument"))?;
            let vals = v.as_primitive::<Float64Type>().values();
            let max = self.max;
            let pick = |a: f64, b: f64| match (max, b.total_cmp(&a)) {
                (true, Ordering::Greater) | (false, Ordering::Less) => b,
                _ => a,
            };
            let first = vals[rows[0] as usize];
            let m = if all {
                vals.iter().fold(first, |a, b| pick(a, *b))
            } else {
                rows.iter().fold(first, |a, r| pick(a, vals[*r as usize]))
            };
            self.values[g] = Some(self.values[g].map_or(m, |c| pick(c, m)));
            return Ok(());
        }
        one_group(self, g, rows, values)
    }

    fn merge(&mut self, to: usize, other: &MinMaxFloat, from: usize) -> Result<()> {
        if let Some(x) = other.values[from] {
            self.values[to] = Some(match self.values[to] {
                None => x,
                Some(c) if self.max => {
                    if x.total_cmp(&c).is_gt() {
                        x
                    } else {
                        c
                    }
                }
                Some(c) => {
                    if x.total_cmp(&c).is_lt() {
                        x
                    } else {
                        c
                    }
                }
            });
        }
        Ok(())
    }

    fn finish(&mut self, _ty: &DataType) -> Result<ArrayRef> {
        Ok(Arc::new(Float64Array::from(self.values.clone())))
    }
}

impl Accumulator for MinMax {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn resize(&mut self, n: usize) {
        self.values.resize(n, None);
    }

    fn memory_bytes(&self) -> usize {
        vec_bytes(&self.values)
            + self
                .values
                .iter()
                .map(|v| match v {
                    Some(Scalar::Str(s)) => s.capacity(),
                    _ => 0,
                })
                .sum::<usize>()
    }

    fn update(&mut self, gids: &[u32], rows: &[u32], values: Option<&ArrayRef>) -> Result<()> {
        let v = values.ok_or_else(|| internal("MIN/MAX without argument"))?;
        for (g, r) in gids.iter().zip(rows) {
            let r = *r as usize;
            if v.is_null(r) {
                continue;
            }
            let x = scalar_at(v, r)?;
            let g = *g as usize;
            if self.better(&x, &self.values[g]) {
                self.values[g] = Some(x);
            }
        }
        Ok(())
    }

    fn merge(&mut self, to: usize, other: &MinMax, from: usize) -> Result<()> {
        if let Some(x) = &other.values[from] {
            if self.better(x, &self.values[to]) {
                self.values[to] = Some(x.clone());
            }
        }
        Ok(())
    }

    fn finish(&mut self, ty: &DataType) -> Result<ArrayRef> {
        scalars_to_array(
            self.values
                .iter()
                .map(|v| v.clone().unwrap_or(Scalar::Null)),
            ty,
        )
    }
}
