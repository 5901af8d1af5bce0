//! One Kafka ingestion's consumer thread: assigns every partition at the catalog's offsets, polls messages in
//! small batches into the [`RealtimeIndex`] (published to the [`LiveIndex`] after each batch, so rows are
//! queryable at once), and hands off into segments on the row, byte and time thresholds, committing segments,
//! offsets, rejection counts and dead letters in one catalog step.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basalt_segment::catalog::fault;
use basalt_segment::{Catalog, Commit, LiveIndex, SourceUpdate, TableSchema, WriteOptions};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::state::{source_id, DeadLetter, Desired, IngestStatus, PartitionStatus, SourceState};
use crate::build::SegmentBuilder;
use crate::infer::{self, Sampler};
use crate::input::json::JsonRecord;
use crate::realtime::RealtimeIndex;
use crate::record::{FieldValue, Record, RejectReason, Rejection};
use crate::rows::{RowBuffer, RowPlan};
use crate::spec::IngestSpec;
use crate::{Error, Result};

/// Messages per poll batch at most; how long a poll waits for a first message, and then for more. The second
/// wait bounds how long a consumed row stays invisible, and keeps batches large enough to index cheaply.
const BATCH_MESSAGES: usize = 20_000;
const BATCH_WAIT: Duration = Duration::from_millis(50);
const BATCH_FILL: Duration = Duration::from_millis(10);
/// How often partitions are re-listed (new partitions, broker reachability); faster while idle or failing.
const METADATA_EVERY: Duration = Duration::from_secs(10);
const METADATA_EVERY_IDLE: Duration = Duration::from_secs(2);
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
const DEAD_LETTER_BYTES: usize = 1024;

/// What the operator asks of a running worker; each carries the channel for its answer.
pub enum Command {
    Pause(Sender<Result<(), String>>),
    Resume(Sender<Result<(), String>>),
    /// Hand off what is in memory and stop; `delete` also marks the ingestion deleted.
    Stop {
        delete: bool,
        reply: Sender<Result<(), String>>,
    },
}

/// Collects what librdkafka reports in the background: high watermarks (from fetch responses, via statistics)
/// and client-level errors.
#[derive(Default)]
pub struct Context {
    high_watermarks: Mutex<HashMap<i32, i64>>,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for Context {
    fn stats(&self, statistics: Statistics) {
        let mut hw = self
            .high_watermarks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for topic in statistics.topics.values() {
            for (p, s) in &topic.partitions {
                if *p >= 0 && s.hi_offset >= 0 {
                    hw.insert(*p, s.hi_offset);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Context {}

/// A message as polled: partition, offset, payload.
struct Polled {
    partition: i32,
    offset: i64,
    payload: Vec<u8>,
}

pub struct Worker {
    id: String,
    spec: IngestSpec,
    catalog: Arc<dyn Catalog>,
    live: Arc<LiveIndex>,
    status: Arc<Mutex<IngestStatus>>,
    commands: Receiver<Command>,
    /// Directories Kafka TLS files may come from (the server's `kafka_tls_dirs`).
    tls_dirs: Arc<[PathBuf]>,
    committed: SourceState,
    consumer: Option<BaseConsumer<Context>>,
    /// Partitions assigned, and per partition the next offset to consume.
    assigned: HashSet<i32>,
    next: BTreeMap<i32, i64>,
    schema: Option<TableSchema>,
    plan: Option<RowPlan>,
    index: Option<RealtimeIndex>,
    /// Rejections and dead letters since the last handoff.
    pending_rejected: BTreeMap<String, u64>,
    pending_dead: Vec<DeadLetter>,
    pending_messages: u64,
    last_handoff: Instant,
    last_metadata: Option<Instant>,
    paused: bool,
    error: Option<String>,
    backoff: Duration,
    consumed: u64,
    rate: VecDeque<(Instant, u64)>,
    segments_committed: u64,
    last_handoff_at: Option<i64>,
    rejections_logged: u64,
    /// A rejection arrived since the status last showed the counts and dead letters.
    rejections_changed: bool,
}

enum Flow {
    Continue,
    Exit,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Worker {
    pub fn new(
        state: SourceState,
        catalog: Arc<dyn Catalog>,
        live: Arc<LiveIndex>,
        status: Arc<Mutex<IngestStatus>>,
        commands: Receiver<Command>,
        tls_dirs: Arc<[PathBuf]>,
    ) -> Self {
        let spec = state.spec.clone();
        Worker {
            tls_dirs,
            id: spec.id().to_string(),
            paused: state.desired == Desired::Paused,
            next: state.offsets.clone(),
            spec,
            catalog,
            live,
            status,
            commands,
            committed: state,
            consumer: None,
            assigned: HashSet::new(),
            schema: None,
            plan: None,
            index: None,
            pending_rejected: BTreeMap::new(),
            pending_dead: Vec::new(),
            pending_messages: 0,
            last_handoff: Instant::now(),
            last_metadata: None,
            error: None,
            backoff: Duration::from_millis(200),
            consumed: 0,
            rate: VecDeque::new(),
            segments_committed: 0,
            last_handoff_at: None,
            rejections_logged: 0,
            rejections_changed: false,
        }
    }

    /// Runs until stopped. Errors never end the loop: they are shown in the status and retried with backoff.
    pub fn run(mut self) {
        tracing::info!(id = %self.id, topic = %self.committed.topic, "kafka ingestion starting");
        loop {
            match self.step() {
                Ok(Flow::Exit) => break,
                Ok(Flow::Continue) => {
                    self.backoff = Duration::from_millis(200);
                }
                Err(e) => {
                    let message = e.to_string();
                    tracing::warn!(id = %self.id, error = %message, "kafka ingestion error; retrying");
                    self.fail(message);
                    self.publish_status();
                    // Wait, still answering commands.
                    let until = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
                    while Instant::now() < until {
                        if let Ok(Flow::Exit) = self.handle_commands() {
                            self.publish_status();
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
            self.publish_status();
        }
        self.live.remove(&self.id);
        if let Ok(mut s) = self.status.lock() {
            s.state = "stopped".into();
        }
        tracing::info!(id = %self.id, "kafka ingestion stopped");
    }

    fn fail(&mut self, message: String) {
        self.error = Some(message.clone());
        if let Ok(mut s) = self.status.lock() {
            s.last_error = Some(message);
            s.last_error_at = Some(now_ms());
        }
    }

    fn step(&mut self) -> Result<Flow> {
        if let Flow::Exit = self.handle_commands()? {
            return Ok(Flow::Exit);
        }
        if self.paused {
            std::thread::sleep(Duration::from_millis(100));
            return Ok(Flow::Continue);
        }
        if self.consumer.is_none() {
            self.consumer = Some(self.connect()?);
            self.last_metadata = None;
        }
        let refresh_every = if self.error.is_some() || self.pending_messages == 0 {
            METADATA_EVERY_IDLE
        } else {
            METADATA_EVERY
        };
        if self
            .last_metadata
            .is_none_or(|t| t.elapsed() >= refresh_every)
        {
            self.refresh_partitions()?;
            self.last_metadata = Some(Instant::now());
        }
        // Hand off before polling more: while a handoff fails (disk full, say), nothing more is consumed, so
        // memory stays bounded and the consumer waits instead.
        if self.due_for_handoff() {
            self.handoff(None)?;
            self.commit_group_offsets();
        }
        let polled = self.poll_batch();
        if !polled.is_empty() {
            self.error = None;
            self.ingest(polled)?;
        }
        Ok(Flow::Continue)
    }

    fn handle_commands(&mut self) -> Result<Flow> {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Pause(reply) => {
                    let r = self.set_paused(true);
                    self.publish_status();
                    let _ = reply.send(r.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                    r?;
                }
                Command::Resume(reply) => {
                    let r = self.set_paused(false);
                    self.publish_status();
                    let _ = reply.send(r.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                    r?;
                }
                Command::Stop { delete, reply } => {
                    let desired = if delete {
                        Desired::Deleted
                    } else {
                        self.committed.desired
                    };
                    // Stop even if the handoff fails: what was not committed is re-read on the next start.
                    let r = self.handoff(Some(desired));
                    let _ = reply.send(r.map_err(|e| {
                        format!("stopped, but the last handoff failed (its rows will be re-read from Kafka): {e}")
                    }));
                    return Ok(Flow::Exit);
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Pausing hands off what is in memory (so a paused ingestion holds nothing) and records the state.
    fn set_paused(&mut self, paused: bool) -> Result<()> {
        let desired = if paused {
            Desired::Paused
        } else {
            Desired::Running
        };
        self.handoff(Some(desired))?;
        self.paused = paused;
        if let Some(c) = &self.consumer {
            if let Ok(assignment) = c.assignment() {
                let r = if paused {
                    c.pause(&assignment)
                } else {
                    c.resume(&assignment)
                };
                if let Err(e) = r {
                    tracing::warn!(id = %self.id, error = %e, "pause/resume of the consumer");
                }
            }
        }
        Ok(())
    }

    fn connect(&self) -> Result<BaseConsumer<Context>> {
        let Some(kafka) = &self.spec.kafka else {
            return Err(Error::Spec("the spec has no \"kafka\" section".into()));
        };
        // Checked again here, not only when the spec was submitted: a spec read back from the catalog after a
        // restart (or written by an older version) gets no property that this server does not allow.
        super::properties::check(&kafka.properties, &self.tls_dirs)?;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &kafka.bootstrap_servers)
            .set("group.id", format!("basalt-{}", self.id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("statistics.interval.ms", "1000")
            .set("client.id", format!("basalt-{}", self.id));
        for (k, v) in &kafka.properties {
            config.set(k, v);
        }
        config
            .create_with_context(Context::default())
            .map_err(|e| Error::Kafka(format!("creating the Kafka consumer: {e}")))
    }

    /// Lists the topic's partitions and assigns any not yet assigned (at the catalog's offsets, or the beginning).
    fn refresh_partitions(&mut self) -> Result<()> {
        let Some(consumer) = &self.consumer else {
            return Ok(());
        };
        let topic = &self.committed.topic;
        let servers = self
            .spec
            .kafka
            .as_ref()
            .map_or("", |k| k.bootstrap_servers.as_str());
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(|e| {
                Error::Kafka(format!(
                    "cannot reach the Kafka brokers at {servers} (metadata of topic {topic:?}): {e}"
                ))
            })?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(Error::Kafka(format!(
                "topic {topic:?} is not in the metadata"
            )));
        };
        if let Some(err) = t.error() {
            return Err(Error::Kafka(format!(
                "topic {topic:?} at {servers}: {err:?} (does the topic exist?)"
            )));
        }
        let partitions: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
        if partitions.is_empty() {
            return Err(Error::Kafka(format!("topic {topic:?} has no partitions")));
        }
        self.error = None;
        if partitions.iter().all(|p| self.assigned.contains(p)) {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            let offset = match self.next.get(p) {
                Some(n) => Offset::Offset(*n),
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(topic, *p, offset)
                .map_err(|e| Error::Kafka(format!("partition {p}: {e}")))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| Error::Kafka(format!("assigning the partitions of {topic:?}: {e}")))?;
        tracing::info!(id = %self.id, topic = %topic, ?partitions, "partitions assigned");
        self.assigned = partitions.into_iter().collect();
        Ok(())
    }

    /// Also records the committed offsets in the consumer group `basalt-{id}`, for lag tools. Only informative:
    /// basalt resumes from the catalog, never from the group.
    fn commit_group_offsets(&self) {
        let Some(consumer) = &self.consumer else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &self.committed.offsets {
            if tpl
                .add_partition_offset(&self.committed.topic, *p, Offset::Offset(*o))
                .is_err()
            {
                return;
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = consumer.commit(&tpl, rdkafka::consumer::CommitMode::Async) {
                tracing::debug!(id = %self.id, error = %e, "committing consumer-group offsets");
            }
        }
    }

    fn poll_batch(&mut self) -> Vec<Polled> {
        let Some(consumer) = &self.consumer else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut deadline = Instant::now() + BATCH_WAIT;
        while out.len() < BATCH_MESSAGES {
            let left = deadline.saturating_duration_since(Instant::now());
            match consumer.poll(left) {
                None => break,
                Some(Ok(m)) => {
                    let p = m.partition();
                    // Never take a message twice (after a re-assignment).
                    if self.next.get(&p).is_some_and(|n| m.offset() < *n) {
                        continue;
                    }
                    self.next.insert(p, m.offset() + 1);
                    if out.is_empty() {
                        deadline = deadline.min(Instant::now() + BATCH_FILL);
                    }
                    out.push(Polled {
                        partition: p,
                        offset: m.offset(),
                        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    });
                }
                Some(Err(e)) => {
                    let message = format!("consuming {:?}: {e}", self.committed.topic);
                    tracing::warn!(id = %self.id, error = %message, "kafka poll");
                    self.error = Some(message.clone());
                    if let Ok(mut s) = self.status.lock() {
                        s.last_error = Some(message);
                        s.last_error_at = Some(now_ms());
                    }
                    break;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        out
    }

    fn reject(&mut self, m: &Polled, r: Rejection, original: &[u8]) {
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
    fn ingest(&mut self, polled: Vec<Polled>) -> Result<()> {
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
    fn extend_schema<'r>(
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

    fn due_for_handoff(&self) -> bool {
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
    fn handoff(&mut self, desired: Option<Desired>) -> Result<()> {
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

    fn publish_status(&mut self) {
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

fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    )
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
