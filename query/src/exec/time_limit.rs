//! Early LIMIT on time order: for `SELECT ... ORDER BY <time column> [DESC], ... LIMIT n` (no aggregation),
//! once the shares scanned so far hold n rows at or before a time `b` (at or after, under DESC), no row later
//! than `b` can be in the answer. The bound is shared by every share of the query; blocks and whole shares whose
//! time range lies past it are skipped, before their index filter is worked out. Segments are handed out in time
//! order (newest first under DESC), so a drill-down's first segments set the bound and the rest are skipped.

use std::sync::atomic::{AtomicI64, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{Array, ArrayRef};

use crate::expr::Expr;
use crate::plan::SelectPlan;

/// The shared bound of one query.
#[derive(Debug)]
pub struct TimeLimit {
    /// Position of the sort key among the output columns.
    column: usize,
    n: usize,
    descending: bool,
    /// Rows strictly past this time cannot be in the answer (`i64::MAX` / `i64::MIN` until n rows are seen).
    bound: AtomicI64,
}

impl TimeLimit {
    /// The early limit of `plan`, when it is a plain scan ordered first by the time column (`time_col`, a
    /// position in the table) with a LIMIT.
    pub fn of(plan: &SelectPlan, time_col: usize) -> Option<TimeLimit> {
        if plan.aggregate.is_some() || plan.distinct || plan.having.is_some() {
            return None;
        }
        let n = plan.limit?.checked_add(plan.offset)?;
        let first = plan.order_by.first()?;
        match &plan.output.get(first.column)?.0 {
            Expr::Column { index, .. } if *index == time_col => {}
            _ => return None,
        }
        Some(TimeLimit {
            column: first.column,
            n,
            descending: first.descending,
            bound: AtomicI64::new(if first.descending { i64::MIN } else { i64::MAX }),
        })
    }

    /// Under DESC the scan goes newest first.
    pub fn descending(&self) -> bool {
        self.descending
    }

    /// Whether rows with times in `[min, max]` all lie past the bound (a tie with it is kept: later sort keys
    /// decide between rows of equal time).
    pub fn excludes(&self, min: i64, max: i64) -> bool {
        let b = self.bound.load(Ordering::Relaxed);
        if self.descending {
            max < b
        } else {
            min > b
        }
    }

    /// Adds the sort-key values of rows a share produced to `seen` (the share's best n so far) and tightens the
    /// bound once the share holds n of them.
    pub fn execute(&self, output: &[ArrayRef], seen: &mut Vec<i64>) {
        let Some(times) = output
            .get(self.column)
            .and_then(|a| a.as_primitive_opt::<TimestampMillisecondType>())
        else {
            return;
        };
        // NULL times sort last under ASC and first under DESC: they never tighten the bound.
        if times.null_count() == 0 {
            seen.extend_from_slice(times.values());
        } else {
            seen.extend(times.iter().flatten());
        }
        if self.n == 0 || seen.len() < self.n {
            return;
        }
        let nth = self.n - 1;
        if self.descending {
            seen.select_nth_unstable_by(nth, |a, b| b.cmp(a));
        } else {
            seen.select_nth_unstable(nth);
        }
        seen.truncate(self.n);
        let b = seen[nth];
        if self.descending {
            self.bound.fetch_max(b, Ordering::Relaxed);
        } else {
            self.bound.fetch_min(b, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::TimestampMillisecondArray;
    use std::sync::Arc;

    fn limit(n: usize, descending: bool) -> TimeLimit {
        TimeLimit {
            column: 0,
            n,
            descending,
            bound: AtomicI64::new(if descending { i64::MIN } else { i64::MAX }),
        }
    }

    fn times(v: &[i64]) -> Vec<ArrayRef> {
        vec![Arc::new(TimestampMillisecondArray::from(v.to_vec()))]
    }

    #[test]
    fn the_bound_is_the_nth_time_and_ties_stay() {
        let l = limit(3, false);
        let mut seen = Vec::new();
        l.execute(&times(&[50, 10]), &mut seen);
        assert!(!l.excludes(1_000, 2_000), "fewer than n rows set no bound");
        l.execute(&times(&[30, 40, 20]), &mut seen);
        // The three earliest: 10, 20, 30.
        assert!(l.excludes(31, 90));
        assert!(
            !l.excludes(30, 90),
            "a row at the bound may still win on a later key"
        );
        assert!(!l.excludes(0, 5));
        let d = limit(2, true);
        let mut seen = Vec::new();
        d.execute(&times(&[5, 9, 7]), &mut seen);
        assert!(d.excludes(0, 6));
        assert!(!d.excludes(0, 7));
    }
}
