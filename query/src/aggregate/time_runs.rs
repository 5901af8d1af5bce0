//! GROUP BY time buckets over rows in time order: a segment's rows are sorted by time, so the rows of one bucket
//! (an hour, a day) are one stretch of a block, found by binary search. Each stretch is one group (or, with a
//! dictionary-coded key beside the buckets, one row of group ids indexed by code): no key is computed per row,
//! and a plain aggregate adds a stretch straight from the value slice.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::ArrayRef;
use arrow_schema::DataType;
use basalt_segment::Granularity;

use crate::error::{QueryError, Result};
use crate::expr::{Expr, Func, TS};

/// How one GROUP BY key is worked out in a time-ordered share.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RunKey {
    /// A monotone function of the time column.
    Time(TimeKey),
    /// The one dictionary-coded string column among the keys.
    Codes,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TimeKey {
    /// The time column itself.
    Raw,
    Trunc(Granularity),
    Bin {
        width: i64,
        origin: i64,
    },
}

impl TimeKey {
    /// The key of time `t`: the same arithmetic as [`Func::TimeTrunc`] and [`Func::TimeBin`].
    fn of(self, t: i64) -> i64 {
        match self {
            TimeKey::Raw => t,
            TimeKey::Trunc(g) => g.floor(t),
            TimeKey::Bin { width, origin } => (t - origin).div_euclid(width) * width + origin,
        }
    }
}

/// The key shape of a GROUP BY that runs stretch by stretch: every key a time bucket (or the time column), and
/// at most one string column.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeRuns {
    keys: Vec<RunKey>,
    time_index: usize,
    /// The position among the keys of the string column, and its input column.
    code_key: Option<(usize, usize)>,
}

impl TimeRuns {
    /// The shape of `group_by`, when every key is a time bucket of input column `time_index` (or that column),
    /// except at most one string column; `None` otherwise (or without a time key).
    pub fn new(group_by: &[Expr], time_index: usize) -> Option<TimeRuns> {
        let mut keys = Vec::with_capacity(group_by.len());
        let mut code_key = None;
        for (pos, e) in group_by.iter().enumerate() {
            let key = match e {
                Expr::Column { index, ty, .. } if *index == time_index && *ty == TS => {
                    RunKey::Time(TimeKey::Raw)
                }
                Expr::Column {
                    index,
                    ty: DataType::Utf8,
                    ..
                } if code_key.is_none() => {
                    code_key = Some((pos, *index));
                    RunKey::Codes
                }
                Expr::Func { func, args, ty } if *ty == TS => {
                    let [Expr::Column { index, .. }] = args.as_slice() else {
                        return None;
                    };
                    if *index != time_index {
                        return None;
                    }
                    match func {
                        Func::TimeTrunc(g) => RunKey::Time(TimeKey::Trunc(*g)),
                        Func::TimeBin { width, origin } if *width > 0 => {
                            RunKey::Time(TimeKey::Bin {
                                width: *width,
                                origin: *origin,
                            })
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            };
            keys.push(key);
        }
        if !keys.iter().any(|k| matches!(k, RunKey::Time(_))) {
            return None;
        }
        Some(TimeRuns {
            keys,
            time_index,
            code_key,
        })
    }

    /// The input column of the string key, if there is one.
    pub fn code_column(&self) -> Option<usize> {
        self.code_key.map(|(_, c)| c)
    }

    /// The position of the string key among the GROUP BY keys.
    pub fn code_position(&self) -> Option<usize> {
        self.code_key.map(|(p, _)| p)
    }

    #[cfg(test)]
    /// The number of time keys.
    pub fn time_keys(&self) -> usize {
        self.keys.len() - usize::from(self.code_key.is_some())
    }

    /// An upper bound on the distinct time keys of times in `[lo, hi]`, counted up to `limit` (the stretches of
    /// a share with a string key each hold a group id per string, so the caller bounds their number first).
    pub fn buckets_within(&self, lo: i64, hi: i64, limit: usize) -> usize {
        // Keys are monotone: the tuple changes only where some key does.
        let mut total = 1usize;
        for k in &self.keys {
            let RunKey::Time(tk) = k else { continue };
            let mut t = tk.of(lo);
            let mut n = 0usize;
            while t <= hi && n <= limit {
                let next = match *tk {
                    TimeKey::Raw => t.saturating_add(1),
                    TimeKey::Trunc(g) => g.next(t),
                    TimeKey::Bin { width, .. } => t.saturating_add(width),
                };
                if next <= t {
                    break;
                }
                // Fixed-width keys skip ahead without stepping one bucket at a time.
                let width = match *tk {
                    TimeKey::Raw => Some(1),
                    TimeKey::Trunc(g) => g.fixed_ms(),
                    TimeKey::Bin { width, .. } => Some(width),
                };
                if let Some(w) = width {
                    let steps = (hi.saturating_sub(t) / w.max(1)) as usize + 1;
                    n = n.saturating_add(steps);
                    break;
                }
                n += 1;
                t = next;
            }
            total = total.saturating_add(n.saturating_sub(1));
        }
        total.min(limit.saturating_add(1))
    }

    /// The time keys of time `t`, in key order, into `out` (cleared first).
    fn buckets(&self, t: i64, out: &mut Vec<i64>) {
        out.clear();
        out.extend(self.keys.iter().filter_map(|k| match k {
            RunKey::Time(tk) => Some(tk.of(t)),
            RunKey::Codes => None,
        }));
    }

    /// Splits the selected `rows` of a block (ascending, their times ascending) into stretches of equal time
    /// keys, calling `f(keys, start..end)` with positions into `rows` for each stretch in order.
    pub fn execute(
        &self,
        input: &[Option<ArrayRef>],
        rows: &[u32],
        mut f: impl FnMut(&[i64], std::ops::Range<usize>) -> Result<()>,
    ) -> Result<()> {
        let times = input
            .get(self.time_index)
            .and_then(|a| a.as_ref())
            .and_then(|a| a.as_primitive_opt::<TimestampMillisecondType>())
            .ok_or_else(|| QueryError::internal("time column not loaded"))?;
        let ts = times.values();
        let mut start = 0;
        let mut first = Vec::new();
        let mut probe = Vec::new();
        while start < rows.len() {
            let t0 = ts[rows[start] as usize];
            self.buckets(t0, &mut first);
            // Keys are monotone in time: the rows with the first row's keys are a prefix of the rest.
            let len = rows[start..].partition_point(|r| {
                self.buckets(ts[*r as usize], &mut probe);
                probe == first
            });
            let end = start + len.max(1);
            f(&first, start..end)?;
            start = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::TimestampMillisecondArray;
    use std::sync::Arc;

    fn col(index: usize, ty: DataType) -> Expr {
        Expr::Column {
            index,
            name: format!("c{index}"),
            ty,
        }
    }

    fn trunc(g: Granularity) -> Expr {
        Expr::Func {
            func: Func::TimeTrunc(g),
            args: vec![col(0, TS)],
            ty: TS,
        }
    }

    #[test]
    fn shapes() {
        assert!(TimeRuns::new(&[trunc(Granularity::Hour)], 0).is_some());
        let day_device = TimeRuns::new(&[trunc(Granularity::Day), col(1, DataType::Utf8)], 0);
        assert_eq!(day_device.as_ref().and_then(|r| r.code_column()), Some(1));
        assert_eq!(day_device.map(|r| r.time_keys()), Some(1));
        // No time key, two string keys, a number key: not this shape.
        assert!(TimeRuns::new(&[col(1, DataType::Utf8)], 0).is_none());
        let two = [
            trunc(Granularity::Day),
            col(1, DataType::Utf8),
            col(2, DataType::Utf8),
        ];
        assert!(TimeRuns::new(&two, 0).is_none());
        assert!(TimeRuns::new(&[trunc(Granularity::Day), col(3, DataType::Int64)], 0).is_none());
    }

    #[test]
    fn bucket_counts_bound_the_stretches() {
        let hour = 3_600_000;
        let day = 24 * hour;
        let hours = TimeRuns::new(&[trunc(Granularity::Hour)], 0).expect("shape");
        assert_eq!(hours.buckets_within(0, hour - 1, 100), 1);
        assert_eq!(hours.buckets_within(30 * 60_000, hour + 1, 100), 2);
        assert_eq!(hours.buckets_within(0, day - 1, 100), 24);
        assert_eq!(hours.buckets_within(0, 1_000 * day, 100), 101);
        let months =
            TimeRuns::new(&[trunc(Granularity::Month), trunc(Granularity::Day)], 0).expect("shape");
        // 2024-01-31 .. 2024-02-02: days 31, 1, 2 (three) and months Jan, Feb (one more change).
        let jan31 = 1_706_659_200_000;
        assert_eq!(months.buckets_within(jan31, jan31 + 2 * day, 100), 4);
        let raw = TimeRuns::new(&[col(0, TS), col(1, DataType::Utf8)], 0).expect("shape");
        assert_eq!(raw.buckets_within(0, 9, 100), 10);
        assert_eq!(raw.buckets_within(0, i64::MAX, 100), 101);
    }

    #[test]
    fn stretches_follow_bucket_edges() {
        let hour = 3_600_000;
        // Rows 0..6 at minutes 0, 30, 59, 60, 61, 185 (hours 0, 0, 0, 1, 1, 3); row 2 is not selected.
        let ts: Vec<i64> = [0, 30, 59, 60, 61, 185]
            .iter()
            .map(|m| m * 60_000)
            .collect();
        let input = vec![Some(
            Arc::new(TimestampMillisecondArray::from(ts)) as ArrayRef
        )];
        let rows = [0u32, 1, 3, 4, 5];
        let runs = TimeRuns::new(&[trunc(Granularity::Hour)], 0).expect("shape");
        let mut seen = Vec::new();
        runs.execute(&input, &rows, |k, r| {
            seen.push((k.to_vec(), r));
            Ok(())
        })
        .expect("runs");
        assert_eq!(
            seen,
            vec![(vec![0], 0..2), (vec![hour], 2..4), (vec![3 * hour], 4..5)]
        );
    }
}
