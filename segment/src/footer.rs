//! The segment footer: JSON metadata describing every column, its statistics and its regions.

use serde::{Deserialize, Serialize};

use crate::schema::{Aggregator, ColumnRole, ColumnType};

/// A half-open interval of epoch milliseconds `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Interval {
    pub start: i64,
    pub end: i64,
}

impl Interval {
    pub fn new(start: i64, end: i64) -> Self {
        Interval { start, end }
    }

    /// Whether the two intervals share at least one millisecond.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub fn contains(&self, ms: i64) -> bool {
        self.start <= ms && ms < self.end
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            crate::granularity::format_iso(self.start),
            crate::granularity::format_iso(self.end)
        )
    }
}

/// How a region's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// Raw little-endian values, handed out without a copy.
    #[default]
    None,
    /// LZ4 block compression, one compressed block per [`crate::format::BLOCK_ROWS`] rows.
    Lz4,
    /// Zstandard, one compressed block per [`crate::format::BLOCK_ROWS`] rows.
    Zstd,
}

/// How a numeric column's values are laid out before compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The values themselves.
    #[default]
    Plain,
    /// (Format 4; 8-byte integer columns with a compressed values region.) Each block holds its first value,
    /// then the wrapping differences of consecutive values: small numbers for a sorted time column, which
    /// compress to about two thirds.
    Delta,
}

impl Encoding {
    fn is_plain(&self) -> bool {
        *self == Encoding::Plain
    }
}

/// A contiguous byte range of the file with its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub offset: u64,
    pub len: u64,
    pub crc32c: u32,
    #[serde(default)]
    pub codec: Codec,
}

/// A statistic value; doubles are kept as their IEEE bit pattern so that every value round-trips through JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatValue {
    Long(i64),
    Double(#[serde(with = "f64_bits")] f64),
    String(String),
}

impl StatValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            StatValue::Long(v) => Some(*v as f64),
            StatValue::Double(v) => Some(*v),
            StatValue::String(_) => None,
        }
    }
}

mod f64_bits {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(f64::from_bits(u64::deserialize(d)?))
    }
}

/// Statistics of a column (or of one block of it). `min`/`max` ignore NULLs and NaN; they are absent when the
/// column holds no such value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub null_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<StatValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<StatValue>,
    /// Number of distinct non-null values (string columns: the dictionary size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<u64>,
    /// Whether a double column holds NaN somewhere.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_nan: bool,
}

/// Everything the footer says about one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnMeta {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    pub role: ColumnRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<Aggregator>,
    pub stats: ColumnStats,
    /// Numeric columns: the values. String columns: the per-row dictionary codes.
    pub values: Region,
    /// Bytes per stored value: 8 for numbers; 1, 2 or 4 for dictionary codes.
    pub width: u8,
    #[serde(default, skip_serializing_if = "Encoding::is_plain")]
    pub encoding: Encoding,
    /// String columns: the sorted dictionary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dictionary: Option<Region>,
    /// String columns: one roaring bitmap per dictionary code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitmaps: Option<Region>,
    /// Rows that are NULL, as a roaring bitmap; absent when none are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nulls: Option<Region>,
    /// Numeric columns: min/max per block of [`Footer::block_rows`] rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_stats: Vec<ColumnStats>,
}

/// The footer of a segment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Footer {
    pub format_version: u32,
    pub table: String,
    pub time_column: String,
    /// The time chunk the segment belongs to.
    pub interval: Interval,
    pub num_rows: u64,
    pub block_rows: u32,
    pub columns: Vec<ColumnMeta>,
}
