//! Computing window calls over the inner SELECT's rows: partitions sorted by their keys, then one kernel per
//! function family (ranking, offsets, frame aggregates with prefix sums or a monotonic deque for MIN / MAX).

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

use super::{Bound, WindowCall};
use crate::error::{QueryError, Result};
use crate::expr::{compare_scalars, compare_sort_key, scalar_at, scalars_to_array, Scalar};

/// Adds a column `__w{i}` per window call to the inner SELECT's rows.
pub(crate) fn compute(batch: RecordBatch, windows: &[WindowCall]) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = batch.columns().to_vec();
    for (i, w) in windows.iter().enumerate() {
        let a = window_column(&batch, w)?;
        fields.push(Field::new(format!("__w{i}"), a.data_type().clone(), true));
        columns.push(a);
    }
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?)
}

fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| QueryError::internal(format!("window input {name} missing")))
}

fn values(a: &ArrayRef) -> Result<Vec<Scalar>> {
    (0..a.len()).map(|r| scalar_at(a, r)).collect()
}

fn rows_equal(keys: &[Vec<Scalar>], a: usize, b: usize) -> bool {
    keys.iter()
        .all(|k| compare_scalars(&k[a], &k[b]) == Ordering::Equal)
}

fn window_column(batch: &RecordBatch, w: &WindowCall) -> Result<ArrayRef> {
    let n = batch.num_rows();
    let part: Vec<Vec<Scalar>> = w
        .partition
        .iter()
        .map(|c| values(column(batch, c)?))
        .collect::<Result<_>>()?;
    let ord: Vec<Vec<Scalar>> = w
        .order
        .iter()
        .map(|(c, _, _)| values(column(batch, c)?))
        .collect::<Result<_>>()?;
    // Rows sorted by partition, then window order (stable: ties keep the inner result's order).
    let mut sorted: Vec<usize> = (0..n).collect();
    sorted.sort_by(|&a, &b| {
        for k in &part {
            let o = compare_scalars(&k[a], &k[b]);
            if o != Ordering::Equal {
                return o;
            }
        }
        for (k, (_, desc, nulls_first)) in ord.iter().zip(&w.order) {
            let o = compare_sort_key(&k[a], &k[b], *desc, *nulls_first);
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    let arg: Option<(&ArrayRef, Vec<Scalar>)> = match w.args.first() {
        Some(c) => {
            let a = column(batch, c)?;
            Some((a, values(a)?))
        }
        None => None,
    };
    let default: Option<Vec<Scalar>> = match w.args.get(1) {
        Some(c) => Some(values(column(batch, c)?)?),
        None => None,
    };
    let mut out: Vec<Scalar> = vec![Scalar::Null; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && rows_equal(&part, sorted[start], sorted[end]) {
            end += 1;
        }
        let rows = &sorted[start..end];
        partition(
            w,
            rows,
            &ord,
            arg.as_ref().map(|(_, v)| v),
            default.as_ref(),
            &mut out,
        )?;
        start = end;
    }
    let ty = match w.func.as_str() {
        "row_number" | "rank" | "dense_rank" | "count" => DataType::Int64,
        "percent_rank" | "cume_dist" | "avg" => DataType::Float64,
        _ => match arg.as_ref().map(|(a, _)| a.data_type().clone()) {
            Some(DataType::Dictionary(_, v)) => *v,
            Some(t) => t,
            None => DataType::Null,
        },
    };
    if w.func == "sum" && !matches!(ty, DataType::Int64 | DataType::Float64 | DataType::Null) {
        return Err(QueryError::invalid(
            format!("sum over a window of {ty} values"),
            w.pos,
        ));
    }
    if ty == DataType::Null {
        return Ok(Arc::new(Int64Array::from(vec![None::<i64>; n])));
    }
    scalars_to_array(out.into_iter(), &ty)
}

/// The window call's values for one partition's rows (in window order), written to `out` by row.
fn partition(
    w: &WindowCall,
    rows: &[usize],
    ord: &[Vec<Scalar>],
    arg: Option<&Vec<Scalar>>,
    default: Option<&Vec<Scalar>>,
    out: &mut [Scalar],
) -> Result<()> {
    let m = rows.len();
    // Peer groups: positions with equal order keys.
    let mut peer_start = vec![0usize; m];
    let mut peer_end = vec![0usize; m];
    let mut group = vec![0usize; m];
    let mut p = 0;
    let mut g = 0;
    while p < m {
        let mut q = p + 1;
        while q < m && rows_equal(ord, rows[p], rows[q]) {
            q += 1;
        }
        for i in p..q {
            peer_start[i] = p;
            peer_end[i] = q - 1;
            group[i] = g;
        }
        g += 1;
        p = q;
    }
    let value = |i: usize| -> Scalar { arg.map_or(Scalar::Null, |v| v[rows[i]].clone()) };
    // The frame [lo, hi] of position i (lo > hi when empty).
    let bounds = |i: usize| -> (usize, isize) {
        let f = w.frame;
        let lo = match f.start {
            Bound::UnboundedPreceding => 0,
            Bound::Preceding(k) if f.rows => i.saturating_sub(k),
            Bound::CurrentRow if !f.rows => peer_start[i],
            Bound::CurrentRow => i,
            Bound::Following(k) => i.saturating_add(k),
            Bound::Preceding(_) | Bound::UnboundedFollowing => 0,
        };
        let hi = match f.end {
            Bound::UnboundedFollowing => m as isize - 1,
            Bound::Following(k) if f.rows => (i.saturating_add(k)).min(m - 1) as isize,
            Bound::CurrentRow if !f.rows => peer_end[i] as isize,
            Bound::CurrentRow => i as isize,
            Bound::Preceding(k) => i as isize - k as isize,
            Bound::Following(_) | Bound::UnboundedPreceding => m as isize - 1,
        };
        (lo, hi.min(m as isize - 1))
    };
    match w.func.as_str() {
        "row_number" => {
            for i in 0..m {
                out[rows[i]] = Scalar::Int(i as i64 + 1);
            }
        }
        "rank" => {
            for i in 0..m {
                out[rows[i]] = Scalar::Int(peer_start[i] as i64 + 1);
            }
        }
        "dense_rank" => {
            for i in 0..m {
                out[rows[i]] = Scalar::Int(group[i] as i64 + 1);
            }
        }
        "percent_rank" => {
            for i in 0..m {
                out[rows[i]] = Scalar::Float(if m > 1 {
                    peer_start[i] as f64 / (m - 1) as f64
                } else {
                    0.0
                });
            }
        }
        "cume_dist" => {
            for i in 0..m {
                out[rows[i]] = Scalar::Float((peer_end[i] + 1) as f64 / m as f64);
            }
        }
        "lag" | "lead" => {
            for i in 0..m {
                let j = if w.func == "lag" {
                    i.checked_sub(w.offset)
                } else {
                    Some(i + w.offset).filter(|j| *j < m)
                };
                out[rows[i]] = match j {
                    Some(j) => value(j),
                    None => default.map_or(Scalar::Null, |d| d[rows[i]].clone()),
                };
            }
        }
        "first_value" | "last_value" => {
            for i in 0..m {
                let (lo, hi) = bounds(i);
                out[rows[i]] = if (lo as isize) > hi {
                    Scalar::Null
                } else if w.func == "first_value" {
                    value(lo)
                } else {
                    value(hi as usize)
                };
            }
        }
        "count" | "sum" | "avg" => {
            // Prefix sums over the partition's non-NULL values.
            let mut count = vec![0i64; m + 1];
            let mut int = vec![0i128; m + 1];
            let mut float = vec![0f64; m + 1];
            let mut is_float = false;
            for i in 0..m {
                let v = if arg.is_none() {
                    Scalar::Int(0)
                } else {
                    value(i)
                };
                let (c, x, f) = match v {
                    Scalar::Null => (0, 0, 0.0),
                    Scalar::Int(x) => (1, i128::from(x), x as f64),
                    Scalar::Float(f) => {
                        is_float = true;
                        (1, 0, f)
                    }
                    Scalar::Timestamp(_) | Scalar::Str(_) | Scalar::Bool(_)
                        if w.func == "count" =>
                    {
                        (1, 0, 0.0)
                    }
                    other => {
                        return Err(QueryError::invalid(
                            format!("{} over {other:?} in a window", w.func),
                            w.pos,
                        ))
                    }
                };
                count[i + 1] = count[i] + c;
                int[i + 1] = int[i] + x;
                float[i + 1] = float[i] + f;
            }
            for i in 0..m {
                let (lo, hi) = bounds(i);
                let (c, x, f) = if (lo as isize) > hi {
                    (0, 0, 0.0)
                } else {
                    let hi = hi as usize + 1;
                    (
                        count[hi] - count[lo],
                        int[hi] - int[lo],
                        float[hi] - float[lo],
                    )
                };
                out[rows[i]] = match w.func.as_str() {
                    "count" => Scalar::Int(c),
                    _ if c == 0 => Scalar::Null,
                    "avg" => Scalar::Float(if is_float { f } else { x as f64 } / c as f64),
                    _ if is_float => Scalar::Float(f),
                    _ => Scalar::Int(i64::try_from(x).map_err(|_| {
                        QueryError::OutOfRange("bigint out of range in SUM".into())
                    })?),
                };
            }
        }
        "min" | "max" => {
            // A monotonic deque over the frames (both ends move forward with the row): linear time.
            let max = w.func == "max";
            let better = |a: &Scalar, b: &Scalar| {
                let o = compare_scalars(a, b);
                if max {
                    o == Ordering::Greater
                } else {
                    o == Ordering::Less
                }
            };
            let mut deque: VecDeque<usize> = VecDeque::new();
            let mut next = 0usize;
            for i in 0..m {
                let (lo, hi) = bounds(i);
                while (next as isize) <= hi {
                    let v = value(next);
                    if v != Scalar::Null {
                        while deque.back().is_some_and(|&b| !better(&value(b), &v)) {
                            deque.pop_back();
                        }
                        deque.push_back(next);
                    }
                    next += 1;
                }
                while deque.front().is_some_and(|&f| f < lo) {
                    deque.pop_front();
                }
                out[rows[i]] = match deque.front() {
                    Some(&f) if (f as isize) <= hi => value(f),
                    _ => Scalar::Null,
                };
            }
        }
        other => {
            return Err(QueryError::unsupported(
                format!("window function {other}"),
                w.pos,
            ))
        }
    }
    Ok(())
}
