//! A polled batch into the real-time index: each message parsed (simd-json) through the ingestion's row plan,
//! the schema extended (and committed) when new fields appear, rejections counted and kept as dead letters.

use std::collections::HashSet;

use basalt_segment::Commit;

use super::handoff::fmt_ms;
use super::state::DeadLetter;
use super::worker::*;
use crate::infer::{self, Sampler};
use crate::input::json::JsonRecord;
use crate::realtime::RealtimeIndex;
use crate::record::{FieldValue, Record, RejectReason, Rejection};
use crate::rows::{RowBuffer, RowPlan};
use crate::spec::IngestSpec;
use crate::Result;

impl Worker {
    pub(super) fn reject(&mut self, m: &Polled, r: Rejection, original: &[u8]) {
        let reason = r.reason.name();
        self.rejections_changed = true;
        // The first rejections of a run are warnings; after that they are counted (and kept as dead letters)
        // without flooding the log.
        self.rejections_logged += 1;
        if self.rejections_logged <= 20 {
            tracing::warn!(id = %self.id, topic = %self.committed.topic, partition = m.partition,
                offset = m.offset, reason, message = %r.message, "message rejected");
        } else {
            tracing::debug!(id = %self.id, topic = %self.committed.topic, partition = m.partition,
                offset = m.offset, reason, message = %r.message, "message rejected");
        }
        *self.pending_rejected.entry(reason.to_string()).or_default() += 1;
        let cut = &original[..original.len().min(DEAD_LETTER_BYTES)];
        self.pending_dead.push(DeadLetter {
            partition: m.partition,
            offset: m.offset,
            reason: reason.to_string(),
            message: r.message,
            payload: String::from_utf8_lossy(cut).into_owned(),
        });
        let keep = self.spec.tuning.max_dead_letters;
        if self.pending_dead.len() > keep {
            let drop = self.pending_dead.len() - keep;
            self.pending_dead.drain(..drop);
        }
    }

    /// Parses a batch of messages into rows, extends the schema with new fields, and publishes the rows.
    pub(super) fn ingest(&mut self, polled: Vec<Polled>) -> Result<()> {
        self.consumed += polled.len() as u64;
        self.pending_messages += polled.len() as u64;
        let max_bytes = self.spec.tuning.max_message_bytes;
        let mut records: Vec<(usize, JsonRecord)> = Vec::with_capacity(polled.len());
        for (i, m) in polled.iter().enumerate() {
            if m.payload.len() > max_bytes {
                let r = Rejection::new(
                    RejectReason::Oversized,
                    format!(
                        "message of {} bytes, more than tuning.max_message_bytes {max_bytes}",
                        m.payload.len()
                    ),
                );
                self.reject(m, r, &m.payload);
                continue;
            }
            let mut bytes = m.payload.clone();
            match JsonRecord::parse(&mut bytes) {
                Ok(r) => records.push((i, r)),
                Err(r) => self.reject(m, r, &m.payload),
            }
        }
        self.extend_schema(records.iter().map(|(_, r)| r as &dyn Record))?;
        let (Some(plan), Some(index)) = (&self.plan, &mut self.index) else {
            return Ok(());
        };
        let mut buffer = RowBuffer::new(plan.clone());
        let tuning = &self.spec.tuning;
        let now = now_ms();
        let (late, early) = (
            tuning.late_message_rejection_ms.map(|ms| now - ms as i64),
            tuning.early_message_rejection_ms.map(|ms| now + ms as i64),
        );
        let accept = |t: i64| {
            if late.is_some_and(|l| t < l) {
                Err(Rejection::new(
                    RejectReason::TooLate,
                    format!(
                        "time {} is older than tuning.late_message_rejection_ms allows",
                        fmt_ms(t)
                    ),
                ))
            } else if early.is_some_and(|e| t > e) {
                Err(Rejection::new(
                    RejectReason::TooEarly,
                    format!(
                        "time {} is further ahead than tuning.early_message_rejection_ms allows",
                        fmt_ms(t)
                    ),
                ))
            } else {
                Ok(())
            }
        };
        let mut rejected = Vec::new();
        for (i, record) in &records {
            if let Err(r) = buffer.push_checked(record, &accept) {
                rejected.push((*i, r));
            }
        }
        let batch = buffer.take_batch()?;
        index.add(batch)?;
        self.live
            .publish(&self.id, &self.spec.table, index.sources());
        for (i, r) in rejected {
            let m = &polled[i];
            self.reject(m, r, &m.payload);
        }
        Ok(())
    }

    /// Creates the table's schema on the first rows, and adds columns for fields not seen before (when the spec
    /// discovers dimensions). The schema is committed before any row that uses it is published.
    pub(super) fn extend_schema<'r>(
        &mut self,
        records: impl Iterator<Item = &'r dyn Record> + Clone,
    ) -> Result<()> {
        let table = self
            .catalog
            .snapshot()
            .tables
            .get(&self.spec.table)
            .cloned();
        let current = match table.clone().or_else(|| self.schema.clone()) {
            Some(s) => s,
            None => {
                // No table yet: wait for rows to learn the types from.
                if records.clone().next().is_none() {
                    return Ok(());
                }
                let mut sampler = Sampler::new(&self.spec.null_values);
                records
                    .clone()
                    .for_each(|r| sampler.observe(&NumericMetrics::new(r, &self.spec)));
                infer::table_schema(&self.spec, &sampler)?
            }
        };
        let mut known: HashSet<&str> = current.columns.iter().map(|c| c.name.as_str()).collect();
        known.extend(self.spec.metrics.iter().map(|m| m.field()));
        known.insert(self.spec.timestamp.column.as_str());
        let wanted_missing = match &self.spec.dimensions {
            Some(dims) => dims.iter().any(|d| !known.contains(d.name())),
            None => records
                .clone()
                .any(|r| r.field_names().iter().any(|f| !known.contains(f.as_str()))),
        } || self
            .spec
            .metrics
            .iter()
            .any(|m| current.column(&m.name).is_none());
        let mut next = current.clone();
        if wanted_missing {
            let mut sampler = Sampler::new(&self.spec.null_values);
            records
                .clone()
                .for_each(|r| sampler.observe(&NumericMetrics::new(r, &self.spec)));
            let mut inferred = infer::table_schema(&self.spec, &sampler)?;
            // Columns the table has keep their type; only new ones come from this batch.
            inferred.columns.retain(|c| {
                c.role == basalt_segment::ColumnRole::Time || current.column(&c.name).is_none()
            });
            next = infer::reconcile(&current, &inferred)?;
        }
        if table.as_ref() != Some(&next) {
            self.catalog.commit(Commit {
                tables: vec![next.clone()],
                ..Default::default()
            })?;
            tracing::info!(id = %self.id, table = %self.spec.table, columns = next.columns.len(), "table schema committed");
        }
        if self.schema.as_ref() != Some(&next) {
            let fixed: Vec<String> = next.columns.iter().map(|c| c.name.clone()).collect();
            self.plan = Some(RowPlan::new(&self.spec, &next, &fixed)?);
            match &mut self.index {
                Some(index) => index.set_schema(next.clone()),
                None => self.index = Some(RealtimeIndex::new(next.clone())),
            }
            self.schema = Some(next);
        }
        Ok(())
    }
}

/// A record whose metric fields holding text read as absent, so that type discovery on a batch is not derailed
/// by one bad value (that row is rejected later, as the wrong type).
struct NumericMetrics<'a> {
    inner: &'a dyn Record,
    metric_fields: Vec<&'a str>,
}

impl<'a> NumericMetrics<'a> {
    fn new(inner: &'a dyn Record, spec: &'a IngestSpec) -> Self {
        NumericMetrics {
            inner,
            metric_fields: spec.metrics.iter().map(|m| m.field()).collect(),
        }
    }
}

impl Record for NumericMetrics<'_> {
    fn get(&self, name: &str) -> FieldValue<'_> {
        let v = self.inner.get(name);
        if self.metric_fields.contains(&name)
            && matches!(v, FieldValue::Str(s) if crate::infer::classify_text(s) == basalt_segment::ColumnType::String)
        {
            return FieldValue::Missing;
        }
        if self.metric_fields.contains(&name) && matches!(v, FieldValue::Json(_)) {
            return FieldValue::Missing;
        }
        v
    }

    fn field_names(&self) -> Vec<String> {
        self.inner.field_names()
    }
}
