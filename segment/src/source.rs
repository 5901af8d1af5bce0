//! The read interface every data source implements: committed segment files now, the real-time in-memory index
//! later. The query engine reads only through [`SegmentSource`], so it never knows which one it reads.

use std::any::Any;
use std::fmt::Debug;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::{new_null_array, Array, ArrayRef, StringArray};
use roaring::RoaringBitmap;

use crate::footer::{ColumnStats, Interval};
use crate::schema::{Aggregator, ColumnRole, ColumnType};
use crate::Result;

/// A string predicate matching more dictionary values than this is answered by scanning the code blocks
/// instead of uniting one bitmap per value.
const MAX_BITMAPS_TO_UNION: usize = 256;

/// What a source says about one of its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    pub ty: ColumnType,
    pub role: ColumnRole,
    pub aggregator: Option<Aggregator>,
    pub stats: ColumnStats,
}

/// A sorted dictionary of distinct non-null strings; a value's code is its position.
#[derive(Debug)]
pub struct Dictionary {
    values: StringArray,
    /// Tables a reader derives from the values (at most one per type, see [`Dictionary::derived`]).
    derived: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

impl Clone for Dictionary {
    fn clone(&self) -> Self {
        Dictionary::from_sorted(self.values.clone())
    }
}

impl Dictionary {
    /// Wraps values that are sorted ascending (byte order) and distinct, without NULLs.
    pub fn from_sorted(values: StringArray) -> Self {
        debug_assert!(values.null_count() == 0);
        Dictionary {
            values,
            derived: Mutex::default(),
        }
    }

    /// A table derived from the values (say, a hash per value), built by `build` the first time a `T` is asked
    /// for and kept as long as the dictionary: a segment's dictionary lives as long as its open reader, so a
    /// query engine pays for such a table once per segment instead of once per query.
    pub fn derived<T: Any + Send + Sync>(&self, build: impl FnOnce(&StringArray) -> T) -> Arc<T> {
        let mut tables = self.derived.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = tables.iter().find_map(|t| t.clone().downcast::<T>().ok()) {
            return t;
        }
        let t = Arc::new(build(&self.values));
        tables.push(t.clone());
        t
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of `code`; `None` when out of range.
    pub fn value(&self, code: u32) -> Option<&str> {
        ((code as usize) < self.values.len()).then(|| self.values.value(code as usize))
    }

    /// The code of `value`, by binary search.
    pub fn lookup(&self, value: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.values.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.values.value(mid).cmp(value) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }

    /// The values as an Arrow array (shared, not copied).
    pub fn values(&self) -> &StringArray {
        &self.values
    }

    /// Codes whose value satisfies `pred` (NULL is never in the dictionary; see [`StringPredicate::IsNull`]).
    pub fn matching_codes(&self, pred: &StringPredicate) -> Vec<u32> {
        match pred {
            StringPredicate::Eq(v) => self.lookup(v).into_iter().collect(),
            StringPredicate::In(vs) => {
                let mut codes: Vec<u32> = vs.iter().filter_map(|v| self.lookup(v)).collect();
                codes.sort_unstable();
                codes.dedup();
                codes
            }
            StringPredicate::Like {
                pattern,
                case_insensitive,
            } => {
                let matcher = LikeMatcher::new(pattern, *case_insensitive);
                (0..self.len() as u32)
                    .filter(|c| matcher.matches(self.values.value(*c as usize)))
                    .collect()
            }
            StringPredicate::Range { low, high } => (0..self.len() as u32)
                .filter(|c| {
                    let v = self.values.value(*c as usize);
                    low.as_ref().is_none_or(|(b, incl)| {
                        if *incl {
                            v >= b.as_str()
                        } else {
                            v > b.as_str()
                        }
                    }) && high.as_ref().is_none_or(|(b, incl)| {
                        if *incl {
                            v <= b.as_str()
                        } else {
                            v < b.as_str()
                        }
                    })
                })
                .collect(),
            StringPredicate::IsNull => Vec::new(),
        }
    }
}

/// How a source answers a [`StringPredicate`] (see [`SegmentSource::match_strings`]).
#[derive(Debug, Clone, PartialEq)]
pub enum StringMatch {
    /// The matching rows of the whole source.
    Rows(RoaringBitmap),
    /// The matching dictionary codes, for a scan of the code blocks.
    Codes { codes: Vec<u32>, dict_len: usize },
}

/// A predicate on a string column that a source answers with a bitmap of matching rows.
#[derive(Debug, Clone, PartialEq)]
pub enum StringPredicate {
    Eq(String),
    In(Vec<String>),
    /// SQL `LIKE` (`%` any run, `_` one character, `\` escapes), optionally case-insensitive (`ILIKE`).
    Like {
        pattern: String,
        case_insensitive: bool,
    },
    /// Bounds as (value, inclusive).
    Range {
        low: Option<(String, bool)>,
        high: Option<(String, bool)>,
    },
    IsNull,
}

/// A compiled SQL `LIKE` pattern.
#[derive(Debug, Clone)]
pub struct LikeMatcher {
    tokens: Vec<LikeToken>,
    case_insensitive: bool,
    /// The common case-sensitive shapes (`abc`, `abc%`, `%abc`, `%abc%`), matched on bytes without decoding.
    shape: Option<(LikeShape, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum LikeShape {
    Exact,
    Prefix,
    Suffix,
    Contains,
}

#[derive(Debug, Clone, PartialEq)]
enum LikeToken {
    Lit(char),
    One,
    Any,
}

impl LikeMatcher {
    pub fn new(pattern: &str, case_insensitive: bool) -> Self {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let t = match c {
                '%' => LikeToken::Any,
                '_' => LikeToken::One,
                '\\' => LikeToken::Lit(chars.next().unwrap_or('\\')),
                c if case_insensitive => LikeToken::Lit(fold(c)),
                c => LikeToken::Lit(c),
            };
            if !(t == LikeToken::Any && tokens.last() == Some(&LikeToken::Any)) {
                tokens.push(t);
            }
        }
        let shape = Self::shape_of(&tokens, case_insensitive);
        LikeMatcher {
            tokens,
            case_insensitive,
            shape,
        }
    }

    fn shape_of(tokens: &[LikeToken], case_insensitive: bool) -> Option<(LikeShape, String)> {
        if case_insensitive {
            return None;
        }
        let lead = tokens.first() == Some(&LikeToken::Any);
        let trail = tokens.len() > usize::from(lead) && tokens.last() == Some(&LikeToken::Any);
        let inner = &tokens[usize::from(lead)..tokens.len() - usize::from(trail)];
        let literal = inner
            .iter()
            .map(|t| match t {
                LikeToken::Lit(c) => Some(*c),
                _ => None,
            })
            .collect::<Option<String>>()?;
        let shape = match (lead, trail) {
            (false, false) => LikeShape::Exact,
            (false, true) => LikeShape::Prefix,
            (true, false) => LikeShape::Suffix,
            (true, true) => LikeShape::Contains,
        };
        Some((shape, literal))
    }

    /// Whether `s` matches the whole pattern.
    pub fn matches(&self, s: &str) -> bool {
        if let Some((shape, lit)) = &self.shape {
            return match shape {
                LikeShape::Exact => s == lit,
                LikeShape::Prefix => s.starts_with(lit.as_str()),
                LikeShape::Suffix => s.ends_with(lit.as_str()),
                LikeShape::Contains => s.contains(lit.as_str()),
            };
        }
        let chars: Vec<char> = if self.case_insensitive {
            s.chars().map(fold).collect()
        } else {
            s.chars().collect()
        };
        // Iterative wildcard matching with backtracking to the last `%`.
        let (mut p, mut i) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while i < chars.len() {
            match self.tokens.get(p) {
                Some(LikeToken::Lit(c)) if *c == chars[i] => {
                    p += 1;
                    i += 1;
                }
                Some(LikeToken::One) => {
                    p += 1;
                    i += 1;
                }
                Some(LikeToken::Any) => {
                    star = Some((p, i));
                    p += 1;
                }
                _ => match star {
                    Some((sp, si)) => {
                        p = sp + 1;
                        i = si + 1;
                        star = Some((sp, si + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|t| *t == LikeToken::Any)
    }
}

fn fold(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// An immutable snapshot of some rows of one table: a segment file or the real-time index.
///
/// Rows are read in blocks of [`SegmentSource::block_rows`] rows (the last block may be shorter). A column the
/// source does not have reads as NULL.
pub trait SegmentSource: Send + Sync + Debug {
    /// A stable identifier (the segment id).
    fn id(&self) -> &str;
    /// The time chunk the rows belong to.
    fn interval(&self) -> Interval;
    fn num_rows(&self) -> usize;
    /// The columns present, with their statistics.
    fn columns(&self) -> &[ColumnInfo];
    fn block_rows(&self) -> usize;

    /// Statistics of one block of a numeric column, when the source keeps them.
    fn block_stats(&self, column: &str, block: usize) -> Option<&ColumnStats>;

    /// The values of `column` for the rows of `block`: `Int64`, `Float64`, `Timestamp(ms)` for the time column,
    /// and for strings a dictionary array whose keys are the codes. `Ok(None)` when the source lacks the column.
    fn read_block(&self, column: &str, block: usize) -> Result<Option<ArrayRef>>;

    /// The dictionary of a string column (`Ok(None)` when the source lacks it or it is not a string column).
    fn dictionary(&self, column: &str) -> Result<Option<Arc<Dictionary>>>;

    /// Rows whose value of string column `column` has dictionary code `code`.
    fn value_bitmap(&self, column: &str, code: u32) -> Result<RoaringBitmap>;

    /// Whether results over this source may be kept across queries: true only for an immutable segment file,
    /// whose id names the same rows forever (the real-time index and catalog tables change under one id).
    fn cacheable(&self) -> bool {
        false
    }

    /// Whether the rows are in time order (ascending time column), so a time range is one stretch of rows.
    fn sorted_by_time(&self) -> bool {
        false
    }

    /// Why the source cannot be read at all (a segment file that failed to open), `None` for a readable one.
    /// Such a source still takes part in pruning by its time interval; a query that needs it fails with
    /// this reason instead of reading it.
    fn damage(&self) -> Option<crate::Error> {
        None
    }

    /// Whether `column` has a bitmap per value; without one, filters scan its codes.
    fn has_bitmap_index(&self, _column: &str) -> bool {
        true
    }

    /// Rows where `column` is NULL (all rows when the source lacks the column).
    fn null_bitmap(&self, column: &str) -> Result<RoaringBitmap>;

    fn column_info(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns().iter().find(|c| c.name == name)
    }

    fn num_blocks(&self) -> usize {
        self.num_rows().div_ceil(self.block_rows().max(1))
    }

    /// The row range of `block`.
    fn block_range(&self, block: usize) -> Range<usize> {
        let start = (block * self.block_rows()).min(self.num_rows());
        start..(start + self.block_rows()).min(self.num_rows())
    }

    /// Like [`SegmentSource::read_block`], but a missing column reads as NULLs of `ty`.
    fn read_block_or_null(&self, column: &str, ty: ColumnType, block: usize) -> Result<ArrayRef> {
        Ok(match self.read_block(column, block)? {
            Some(a) => a,
            None => new_null_array(&ty.arrow_type(), self.block_range(block).len()),
        })
    }

    /// The rows of blocks `blocks`, as a row-number range.
    fn rows_of(&self, blocks: &Range<usize>) -> Range<u32> {
        let lo = self.block_range(blocks.start).start as u32;
        let hi = blocks
            .end
            .checked_sub(1)
            .filter(|last| *last >= blocks.start)
            .map_or(lo, |last| self.block_range(last).end as u32);
        lo..hi
    }

    /// Rows of blocks `blocks` of string column `column` that satisfy `pred`: [`SegmentSource::match_strings`],
    /// then [`SegmentSource::rows_matching`].
    fn filter_strings(
        &self,
        column: &str,
        pred: &StringPredicate,
        blocks: Range<usize>,
    ) -> Result<RoaringBitmap> {
        let m = self.match_strings(column, pred)?;
        self.rows_matching(column, &m, blocks)
    }

    /// How `pred` on string column `column` is answered, worked out once for the whole source: the rows
    /// themselves when the bitmap index answers it (a union of a few bitmaps), or the dictionary codes to look
    /// for in a scan of the code blocks when the column has no index or the predicate matches many values (a
    /// union of thousands of bitmaps costs more than one pass over the codes).
    fn match_strings(&self, column: &str, pred: &StringPredicate) -> Result<StringMatch> {
        if *pred == StringPredicate::IsNull {
            return Ok(StringMatch::Rows(self.null_bitmap(column)?));
        }
        let Some(dict) = self.dictionary(column)? else {
            return Ok(StringMatch::Rows(RoaringBitmap::new()));
        };
        let codes = dict.matching_codes(pred);
        if codes.is_empty() {
            return Ok(StringMatch::Rows(RoaringBitmap::new()));
        }
        if codes.len() > MAX_BITMAPS_TO_UNION || !self.has_bitmap_index(column) {
            return Ok(StringMatch::Codes {
                codes,
                dict_len: dict.len(),
            });
        }
        let mut found = RoaringBitmap::new();
        for code in codes {
            found |= self.value_bitmap(column, code)?;
        }
        Ok(StringMatch::Rows(found))
    }

    /// The rows of blocks `blocks` that `m` (from [`SegmentSource::match_strings`] on `column`) selects: a scan
    /// of just those blocks' codes, so the shares of a segment scan in parallel.
    fn rows_matching(
        &self,
        column: &str,
        m: &StringMatch,
        blocks: Range<usize>,
    ) -> Result<RoaringBitmap> {
        let rows = self.rows_of(&blocks);
        let mut found = RoaringBitmap::new();
        match m {
            StringMatch::Codes { codes, dict_len } => {
                if let Some(scanned) = self.scan_codes(column, *dict_len, codes, blocks)? {
                    return Ok(scanned);
                }
                // Blocks that are not dictionary-coded: one bitmap per code.
                for code in codes {
                    found |= self.value_bitmap(column, *code)?;
                }
            }
            // The blocks' rows of the segment's rows (copying only the containers in range).
            StringMatch::Rows(b) if rows != (0..self.num_rows() as u32) => {
                found.insert_range(rows);
                found &= b;
                return Ok(found);
            }
            StringMatch::Rows(b) => return Ok(b.clone()),
        }
        found.remove_range(..rows.start);
        found.remove_range(rows.end..);
        Ok(found)
    }

    /// Rows of blocks `blocks` whose dictionary code is one of `codes`, by scanning the code blocks; `None` when
    /// the column's blocks are not dictionary-coded. The matches are set as bits, 64 rows to a word, and become
    /// roaring containers whole (pushing each matching row number cost more than the scan itself when most rows
    /// match).
    fn scan_codes(
        &self,
        column: &str,
        dict_len: usize,
        codes: &[u32],
        blocks: Range<usize>,
    ) -> Result<Option<RoaringBitmap>> {
        let matcher = CodeMatcher::new(dict_len, codes);
        let rows = self.rows_of(&blocks);
        let mut bits = RowBits::new(rows.clone());
        for block in blocks {
            let Some(a) = self.read_block(column, block)? else {
                continue;
            };
            let Some(d) = a.as_any_dictionary_opt() else {
                return Ok(None);
            };
            let start = self.block_range(block).start as u32;
            // The segment's code widths read in place (no normalized copy of the keys per block).
            use arrow_array::types::{UInt16Type, UInt32Type, UInt8Type};
            if let Some(k) = a.as_dictionary_opt::<UInt8Type>() {
                matcher.scan(k.keys().values(), start, &mut bits);
            } else if let Some(k) = a.as_dictionary_opt::<UInt16Type>() {
                matcher.scan(k.keys().values(), start, &mut bits);
            } else if let Some(k) = a.as_dictionary_opt::<UInt32Type>() {
                matcher.scan(k.keys().values(), start, &mut bits);
            } else {
                let keys: Vec<u32> = d.normalized_keys().iter().map(|k| *k as u32).collect();
                matcher.scan(&keys, start, &mut bits);
            }
        }
        let mut found = bits.into_bitmap();
        // NULL rows hold code 0: drop them when code 0 matched.
        if matcher.matches(0) {
            found -= self.null_bitmap(column)?;
        }
        Ok(Some(found))
    }
}

/// One bit per row of a row range, filled 64 rows at a time by a code scan.
struct RowBits {
    first: u32,
    words: Vec<u64>,
}

impl RowBits {
    fn new(rows: Range<u32>) -> Self {
        RowBits {
            first: rows.start,
            words: vec![0; (rows.len() / 64) + 2],
        }
    }

    /// Sets the bits of `mask` (bit `j` is row `row + j`).
    fn set(&mut self, row: u32, mask: u64) {
        let at = (row - self.first) as usize;
        let (word, shift) = (at / 64, at % 64);
        self.words[word] |= mask << shift;
        if shift != 0 {
            self.words[word + 1] |= mask >> (64 - shift);
        }
    }

    fn into_bitmap(self) -> RoaringBitmap {
        let bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        RoaringBitmap::from_lsb0_bytes(self.first, &bytes)
    }
}

/// Which dictionary codes a code scan keeps: one code compared directly (an equality filter on an unindexed
/// column), or a table over the dictionary (a wide match).
enum CodeMatcher {
    One(u32),
    Table(Vec<bool>),
}

impl CodeMatcher {
    fn new(dict_len: usize, codes: &[u32]) -> Self {
        match codes {
            [one] => CodeMatcher::One(*one),
            _ => {
                let mut hit = vec![false; dict_len];
                for c in codes {
                    if let Some(h) = hit.get_mut(*c as usize) {
                        *h = true;
                    }
                }
                CodeMatcher::Table(hit)
            }
        }
    }

    fn matches(&self, code: u32) -> bool {
        match self {
            CodeMatcher::One(c) => *c == code,
            CodeMatcher::Table(t) => t.get(code as usize).copied().unwrap_or(false),
        }
    }

    /// Sets the bit of row `start + i` for every key `i` that matches. Keys are tested 64 at a time into a mask
    /// (branch-free, so the compiler vectorizes the one-code case).
    fn scan<K: Copy + Into<u32>>(&self, keys: &[K], start: u32, bits: &mut RowBits) {
        for (chunk_no, chunk) in keys.chunks(64).enumerate() {
            let mut mask = 0u64;
            match self {
                CodeMatcher::One(code) => {
                    for (j, k) in chunk.iter().enumerate() {
                        mask |= u64::from((*k).into() == *code) << j;
                    }
                }
                CodeMatcher::Table(t) => {
                    for (j, k) in chunk.iter().enumerate() {
                        let hit = t.get((*k).into() as usize).copied().unwrap_or(false);
                        mask |= u64::from(hit) << j;
                    }
                }
            }
            if mask != 0 {
                bits.set(start + (chunk_no * 64) as u32, mask);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_derived_table_is_built_once_per_type() {
        let d = Dictionary::from_sorted(StringArray::from(vec!["a", "bb", "ccc"]));
        let mut builds = 0;
        let lens = d.derived(|v| {
            builds += 1;
            v.iter()
                .map(|s| s.map_or(0, str::len))
                .collect::<Vec<usize>>()
        });
        let again = d.derived(|_| -> Vec<usize> { unreachable!("built twice") });
        assert!(Arc::ptr_eq(&lens, &again));
        assert_eq!(*lens, vec![1, 2, 3]);
        // Another type is another table; a clone starts without any.
        assert_eq!(*d.derived(|v| v.len() as u64), 3);
        assert_eq!(builds, 1);
        assert_eq!(*d.clone().derived(|_| 7u64), 7);
    }

    #[test]
    fn like_patterns() {
        let m = |p: &str, s: &str| LikeMatcher::new(p, false).matches(s);
        assert!(m("abc%", "abcdef"));
        assert!(m("%def", "abcdef"));
        assert!(m("%cd%", "abcdef"));
        assert!(!m("%cd%", "abdef"));
        assert!(m("a_c", "abc"));
        assert!(!m("a_c", "abbc"));
        assert!(m("%", ""));
        assert!(m("a%b%c", "axxbyyc"));
        assert!(!m("a%b%c", "axxbyy"));
        assert!(m("100\\%", "100%"));
        assert!(!m("100\\%", "1000"));
        assert!(LikeMatcher::new("AB%", true).matches("abc"));
        assert!(!LikeMatcher::new("AB%", false).matches("abc"));
    }

    #[test]
    fn like_shapes_agree_with_the_general_matcher() {
        let patterns = [
            "", "%", "%%", "ab", "ab%", "%ab", "%ab%", "a%", "%b", "100\\%", "%\\%%", "é%",
        ];
        let strings = [
            "", "a", "ab", "abc", "cab", "xaby", "b", "100%", "1000", "%", "é", "éa",
        ];
        for p in patterns {
            let fast = LikeMatcher::new(p, false);
            assert!(fast.shape.is_some(), "{p:?} has a simple shape");
            let mut general = fast.clone();
            general.shape = None;
            for s in strings {
                assert_eq!(fast.matches(s), general.matches(s), "{p:?} LIKE {s:?}");
            }
        }
    }
}
