//! [`DamagedSegment`]: a committed segment whose file does not open, standing in for it so that one bad file
//! does not take its whole table down. It knows only what the catalog knows (id, interval, row count), so
//! queries whose time filter prunes it run as usual; a query that needs it gets its error, which names the
//! segment and its time range (see [`SegmentSource::damage`]). It also stands in for a segment held only in deep
//! storage whose time chunk the query's time filter excludes ([`DamagedSegment::not_downloaded`]): pruning drops
//! it by its interval, so a query over recent data downloads nothing old.

use std::sync::Arc;

use arrow_array::ArrayRef;
use basalt_segment::granularity::format_iso;
use basalt_segment::{
    ColumnInfo, ColumnStats, Dictionary, Error, Interval, SegmentEntry, SegmentSource,
};
use roaring::RoaringBitmap;

#[derive(Debug)]
pub struct DamagedSegment {
    id: String,
    interval: Interval,
    num_rows: usize,
    table: String,
    reason: String,
}

impl DamagedSegment {
    /// Stands in for `entry`, whose file failed to open with `cause`.
    pub fn new(entry: &SegmentEntry, cause: &Error) -> Self {
        DamagedSegment {
            id: entry.id.clone(),
            interval: entry.interval,
            num_rows: entry.num_rows as usize,
            table: entry.table.clone(),
            reason: cause.to_string(),
        }
    }

    /// Stands in for `entry`, in deep storage only and outside the query's time filter: never downloaded.
    pub fn not_downloaded(entry: &SegmentEntry) -> Self {
        DamagedSegment {
            id: entry.id.clone(),
            interval: entry.interval,
            num_rows: entry.num_rows as usize,
            table: entry.table.clone(),
            reason: "internal: read a segment that pruning should have dropped by its time chunk"
                .into(),
        }
    }

    fn unavailable(&self) -> Error {
        Error::SegmentUnavailable {
            table: self.table.clone(),
            segment: self.id.clone(),
            from: format_iso(self.interval.start),
            to: format_iso(self.interval.end),
            reason: self.reason.clone(),
        }
    }

    fn fail<T>(&self) -> basalt_segment::Result<T> {
        Err(self.unavailable())
    }
}

impl SegmentSource for DamagedSegment {
    fn id(&self) -> &str {
        &self.id
    }

    fn interval(&self) -> Interval {
        self.interval
    }

    fn num_rows(&self) -> usize {
        // Never 0, which pruning would read as "empty": the catalog says the file holds rows.
        self.num_rows.max(1)
    }

    fn columns(&self) -> &[ColumnInfo] {
        &[]
    }

    fn block_rows(&self) -> usize {
        self.num_rows()
    }

    fn block_stats(&self, _: &str, _: usize) -> Option<&ColumnStats> {
        None
    }

    fn read_block(&self, _: &str, _: usize) -> basalt_segment::Result<Option<ArrayRef>> {
        self.fail()
    }

    fn dictionary(&self, _: &str) -> basalt_segment::Result<Option<Arc<Dictionary>>> {
        self.fail()
    }

    fn value_bitmap(&self, _: &str, _: u32) -> basalt_segment::Result<RoaringBitmap> {
        self.fail()
    }

    fn null_bitmap(&self, _: &str) -> basalt_segment::Result<RoaringBitmap> {
        self.fail()
    }

    fn damage(&self) -> Option<Error> {
        Some(self.unavailable())
    }
}
