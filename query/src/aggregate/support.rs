//! Small helpers the aggregate families share: argument casts, an internal error, heap bytes of a vector,
//! regrouping pairs by group, and merges of sorted lists.

use arrow_array::{Array, ArrayRef, StringArray};
use arrow_schema::DataType;

use crate::error::{QueryError, Result};

pub(crate) fn internal(what: &str) -> QueryError {
    QueryError::internal(what)
}

/// Heap bytes of a vector's buffer.
pub(crate) fn vec_bytes<T>(v: &Vec<T>) -> usize {
    v.capacity() * std::mem::size_of::<T>()
}

pub(crate) fn as_f64(a: &ArrayRef) -> Result<ArrayRef> {
    crate::expr::cast_to(a, &DataType::Float64)
}

/// `(group, value)` pairs regrouped by a counting sort: group `g`'s values are `sorted[starts[g]..starts[g + 1]]`,
/// in their order in `pairs`.
pub(crate) fn by_group<T: Copy>(groups: usize, pairs: &[(u32, T)]) -> Result<(Vec<usize>, Vec<T>)> {
    let mut starts = vec![0usize; groups + 1];
    for (g, _) in pairs {
        let s = starts
            .get_mut(*g as usize + 1)
            .ok_or_else(|| internal("a group id past the groups"))?;
        *s += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let Some(&(_, fill)) = pairs.first() else {
        return Ok((starts, Vec::new()));
    };
    let mut sorted = vec![fill; pairs.len()];
    let mut at = starts.clone();
    for (g, v) in pairs {
        let i = &mut at[*g as usize];
        sorted[*i] = *v;
        *i += 1;
    }
    Ok((starts, sorted))
}

/// Two lists sorted by `cmp`, each without equal items, merged into one; items equal in both become
/// `both(from a, from b)`.
pub(crate) fn merge_sorted<T: Copy>(
    a: &[T],
    b: &[T],
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
    both: impl Fn(T, T) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match cmp(&a[i], &b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(both(a[i], b[j]));
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Whether two string arrays are the same buffers (a segment's dictionary handed to every block): pointers
/// compared, nothing copied.
pub(crate) fn same_strings(a: &StringArray, b: &StringArray) -> bool {
    a.len() == b.len()
        && a.values().as_ptr() == b.values().as_ptr()
        && a.offsets().as_ptr() == b.offsets().as_ptr()
}
