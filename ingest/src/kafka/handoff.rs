//! Handoff: when the real-time index passes its row, byte or time threshold, its rows become segments, committed
//! with the offsets, counts and dead letters in one catalog step; and the ingestion's status for the API.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use basalt_segment::catalog::fault;
use basalt_segment::{Commit, SourceUpdate, WriteOptions};
use rdkafka::consumer::Consumer;

use super::state::{source_id, Desired, PartitionStatus, SourceState};
use super::worker::*;
use crate::build::SegmentBuilder;
use crate::realtime::RealtimeIndex;
use crate::{Error, Result};

impl Worker {
    pub(super) fn due_for_handoff(&self) -> bool {
        let t = &self.spec.tuning;
        let (rows, bytes) = self
            .index
            .as_ref()
            .map_or((0, 0), |i| (i.rows(), i.bytes()));
        rows >= t.max_rows_in_memory
            || bytes >= t.max_bytes_in_memory
            || (self.pending_messages > 0
                && self.last_handoff.elapsed() >= Duration::from_millis(t.persist_period_ms))
    }

    /// Writes the in-memory rows into segments and commits them with the offsets, counts and dead letters, in
    /// one catalog step that also swaps the in-memory rows out of queries. `desired` records a state change.
    pub(super) fn handoff(&mut self, desired: Option<Desired>) -> Result<()> {
        let nothing_new = self.pending_messages == 0 && self.next == self.committed.offsets;
        if nothing_new && desired.is_none_or(|d| d == self.committed.desired) {
            self.last_handoff = Instant::now();
            return Ok(());
        }
        let started = Instant::now();
        let mut entries = Vec::new();
        let mut rows = 0u64;
        if let (Some(index), Some(schema)) = (&self.index, &self.schema) {
            let t = &self.spec.tuning;
            let mut builder = SegmentBuilder::new(
                self.catalog.as_ref(),
                schema.clone(),
                WriteOptions::default(),
                t.max_rows_per_segment,
                t.max_bytes_in_memory / 4,
            );
            let built = (|| -> Result<()> {
                for batch in index.chunk_batches()? {
                    rows += batch.num_rows() as u64;
                    builder.push(batch)?;
                }
                Ok(())
            })();
            if let Err(e) = built {
                self.catalog.discard(&builder.abandon());
                return Err(e);
            }
            entries = builder.finish()?;
        }
        fault::point(fault::AFTER_SEGMENT_WRITE);
        let mut next = self.committed.clone();
        next.offsets = self.next.clone();
        next.rows_committed += rows;
        next.messages_committed += self.pending_messages;
        for (reason, n) in &self.pending_rejected {
            *next.rejected.entry(reason.clone()).or_default() += n;
        }
        next.dead_letters.extend(self.pending_dead.iter().cloned());
        let keep = self.spec.tuning.max_dead_letters;
        if next.dead_letters.len() > keep {
            let drop = next.dead_letters.len() - keep;
            next.dead_letters.drain(..drop);
        }
        if let Some(d) = desired {
            next.desired = d;
        }
        let to_json = |s: &SourceState| {
            serde_json::to_value(s).map_err(|e| Error::Spec(format!("internal: {e}")))
        };
        let commit = Commit {
            tables: Vec::new(),
            add: entries.clone(),
            remove: Vec::new(),
            sources: vec![SourceUpdate {
                source_id: source_id(&self.id),
                expected: Some(to_json(&self.committed)?),
                new: to_json(&next)?,
            }],
            ..Default::default()
        };
        if let Err(e) = self.live.commit_and_publish(
            self.catalog.as_ref(),
            commit,
            &self.id,
            &self.spec.table,
            Vec::new(),
        ) {
            self.catalog.discard(&entries);
            return Err(e.into());
        }
        if let Some(index) = &mut self.index {
            index.clear();
        }
        tracing::info!(id = %self.id, rows, segments = entries.len(), elapsed_ms = started.elapsed().as_millis() as u64,
            "handoff committed");
        // Merge small segments of the chunks just written (size-tiered; a failure only delays it).
        let chunks: std::collections::BTreeSet<(i64, i64)> = entries
            .iter()
            .map(|e| (e.interval.start, e.interval.end))
            .collect();
        for (start, end) in chunks {
            for _ in 0..4 {
                match crate::compact::compact_chunk(
                    self.catalog.as_ref(),
                    &self.spec.table,
                    basalt_segment::Interval::new(start, end),
                    self.spec.tuning.max_rows_per_segment,
                ) {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(id = %self.id, error = %e, "compaction failed; will retry after a later handoff");
                        break;
                    }
                }
            }
        }
        self.committed = next;
        self.segments_committed += entries.len() as u64;
        self.pending_rejected.clear();
        self.pending_dead.clear();
        self.pending_messages = 0;
        self.last_handoff = Instant::now();
        self.last_handoff_at = Some(now_ms());
        Ok(())
    }

    pub(super) fn publish_status(&mut self) {
        let now = Instant::now();
        self.rate.push_back((now, self.consumed));
        while self
            .rate
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(5))
        {
            self.rate.pop_front();
        }
        let rate = match (self.rate.front(), self.rate.back()) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                (n1 - n0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        };
        let hw: HashMap<i32, i64> = self
            .consumer
            .as_ref()
            .map(|c| {
                c.context()
                    .high_watermarks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            })
            .unwrap_or_default();
        let mut ids: Vec<i32> = self.assigned.iter().copied().collect();
        ids.extend(self.committed.offsets.keys());
        ids.sort_unstable();
        ids.dedup();
        let partitions: Vec<PartitionStatus> = ids
            .into_iter()
            .map(|p| {
                let consumed = self.next.get(&p).copied();
                let latest = hw.get(&p).copied();
                PartitionStatus {
                    partition: p,
                    committed_offset: self.committed.offsets.get(&p).copied(),
                    consumed_offset: consumed,
                    latest_offset: latest,
                    lag: latest.map(|l| (l - consumed.unwrap_or(0)).max(0)),
                }
            })
            .collect();
        let lag = partitions
            .iter()
            .map(|p| p.lag)
            .sum::<Option<i64>>()
            .filter(|_| !partitions.is_empty());
        // Counts and dead letters change only with a rejection: rebuilt then, not on every poll.
        let rejections = if self.rejections_changed {
            self.rejections_changed = false;
            let mut rejected = self.committed.rejected.clone();
            for (r, n) in &self.pending_rejected {
                *rejected.entry(r.clone()).or_default() += n;
            }
            let mut dead = self.committed.dead_letters.clone();
            dead.extend(self.pending_dead.iter().cloned());
            let keep = self.spec.tuning.max_dead_letters;
            if dead.len() > keep {
                let drop = dead.len() - keep;
                dead.drain(..drop);
            }
            Some((rejected, dead))
        } else {
            None
        };
        let state = if self.paused {
            "paused"
        } else if self.error.is_some() {
            "error"
        } else if self.consumer.is_none() || self.assigned.is_empty() {
            "starting"
        } else {
            "running"
        };
        let client_error = self.consumer.as_ref().and_then(|c| {
            c.context()
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
        });
        if let Ok(mut s) = self.status.lock() {
            s.id = self.id.clone();
            s.table = self.spec.table.clone();
            s.topic = self.committed.topic.clone();
            s.state = state.into();
            if let Some(e) = client_error {
                s.last_error = Some(e);
                s.last_error_at = Some(now_ms());
            }
            s.partitions = partitions;
            s.lag = lag;
            s.messages_per_second = rate;
            s.rows_in_memory = self.index.as_ref().map_or(0, RealtimeIndex::rows);
            s.bytes_in_memory = self.index.as_ref().map_or(0, RealtimeIndex::bytes);
            s.messages_consumed = self.consumed;
            s.rows_committed = self.committed.rows_committed;
            s.messages_committed = self.committed.messages_committed;
            s.segments_committed = self.segments_committed;
            s.last_handoff_at = self.last_handoff_at;
            if let Some((rejected, dead)) = rejections {
                s.rejected = rejected;
                s.dead_letters = dead;
            }
            s.spec = Some(self.spec.clone());
        }
    }
}

pub(super) fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    )
}
