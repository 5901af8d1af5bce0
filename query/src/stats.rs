//! [`ExecStats`]: what a query touched (segments pruned and scanned, rows, bytes, index use, memory), summed over
//! the queries of a statement; read by EXPLAIN, `/metrics`, the query log and tests that prove pruning.

/// What a query touched, for EXPLAIN and tests that prove pruning and index use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecStats {
    pub segments_total: usize,
    pub segments_pruned: usize,
    pub segments_scanned: usize,
    pub blocks_skipped: usize,
    pub rows_scanned: u64,
    /// Bytes of column data read (decoded; dictionary-encoded strings count their codes).
    pub bytes_scanned: u64,
    /// Rows a bitmap index selected (before residual filters).
    pub rows_from_index: u64,
    /// Rows the early LIMIT on a sorted group key dropped (see `exec::key_limit`).
    pub rows_past_key_limit: u64,
    /// The early LIMIT on a sorted group key, when the plan has one: `(n, column, descending)`.
    pub key_limit: Option<(usize, String, bool)>,
    /// How the shares of the scan collected their rows (see `exec::collect`), and how many shares did so.
    pub collectors: std::collections::BTreeMap<String, usize>,
    pub index_filter: Option<String>,
    /// Columns of the index filter that some scanned segment has no bitmap index for (near-unique values):
    /// there the filter scanned the column's dictionary codes.
    pub code_scan_columns: std::collections::BTreeSet<String>,
    pub residual_filter: bool,
    pub pruned: Vec<(String, String)>,
    /// The most memory the query held at once (estimated; see `crate::memory`).
    pub peak_memory_bytes: u64,
    /// Whether the result cache took part (an aggregate, the cache on); segments answered from it and segments
    /// that could have been but were scanned (then kept). EXPLAIN without ANALYZE counts the hits it would get.
    pub cache_enabled: bool,
    pub cache_hits: usize,
    pub cache_misses: usize,
}

impl ExecStats {
    /// Adds what another query of the same statement touched (an inner query, a join side, a UNION branch).
    pub fn add(&mut self, s: &ExecStats) {
        self.segments_total += s.segments_total;
        self.segments_pruned += s.segments_pruned;
        self.segments_scanned += s.segments_scanned;
        self.blocks_skipped += s.blocks_skipped;
        self.rows_scanned += s.rows_scanned;
        self.bytes_scanned += s.bytes_scanned;
        self.rows_from_index += s.rows_from_index;
        self.rows_past_key_limit += s.rows_past_key_limit;
        if self.index_filter.is_none() {
            self.index_filter = s.index_filter.clone();
        }
        self.code_scan_columns
            .extend(s.code_scan_columns.iter().cloned());
        self.residual_filter |= s.residual_filter;
        self.cache_enabled |= s.cache_enabled;
        self.cache_hits += s.cache_hits;
        self.cache_misses += s.cache_misses;
        self.pruned.extend(s.pruned.iter().cloned());
        for (c, n) in &s.collectors {
            *self.collectors.entry(c.clone()).or_default() += n;
        }
    }
}
