//! One Kafka ingestion's consumer thread: assigns every partition at the catalog's offsets, polls messages in
//! small batches into the [`RealtimeIndex`] (published to the [`LiveIndex`] after each batch, so rows are
//! queryable at once), and hands off into segments on the row, byte and time thresholds, committing segments,
//! offsets, rejection counts and dead letters in one catalog step.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basalt_segment::{Catalog, LiveIndex, TableSchema};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::state::{DeadLetter, Desired, IngestStatus, SourceState};
use crate::realtime::RealtimeIndex;
use crate::rows::RowPlan;
use crate::spec::IngestSpec;
use crate::{Error, Result};

/// Messages per poll batch at most; how long a poll waits for a first message, and then for more. The second
/// wait bounds how long a consumed row stays invisible, and keeps batches large enough to index cheaply.
pub(super) const BATCH_MESSAGES: usize = 20_000;
pub(super) const BATCH_WAIT: Duration = Duration::from_millis(50);
pub(super) const BATCH_FILL: Duration = Duration::from_millis(10);
/// How often partitions are re-listed (new partitions, broker reachability); faster while idle or failing.
pub(super) const METADATA_EVERY: Duration = Duration::from_secs(10);
pub(super) const METADATA_EVERY_IDLE: Duration = Duration::from_secs(2);
pub(super) const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
pub(super) const DEAD_LETTER_BYTES: usize = 1024;

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
    pub(super) high_watermarks: Mutex<HashMap<i32, i64>>,
    pub(super) last_error: Mutex<Option<String>>,
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
pub(super) struct Polled {
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) payload: Vec<u8>,
}

pub struct Worker {
    pub(super) id: String,
    pub(super) spec: IngestSpec,
    pub(super) catalog: Arc<dyn Catalog>,
    pub(super) live: Arc<LiveIndex>,
    pub(super) status: Arc<Mutex<IngestStatus>>,
    pub(super) commands: Receiver<Command>,
    /// Directories Kafka TLS files may come from (the server's `kafka_tls_dirs`).
    pub(super) tls_dirs: Arc<[PathBuf]>,
    pub(super) committed: SourceState,
    pub(super) consumer: Option<BaseConsumer<Context>>,
    /// Partitions assigned, and per partition the next offset to consume.
    pub(super) assigned: HashSet<i32>,
    pub(super) next: BTreeMap<i32, i64>,
    pub(super) schema: Option<TableSchema>,
    pub(super) plan: Option<RowPlan>,
    pub(super) index: Option<RealtimeIndex>,
    /// Rejections and dead letters since the last handoff.
    pub(super) pending_rejected: BTreeMap<String, u64>,
    pub(super) pending_dead: Vec<DeadLetter>,
    pub(super) pending_messages: u64,
    pub(super) last_handoff: Instant,
    pub(super) last_metadata: Option<Instant>,
    pub(super) paused: bool,
    pub(super) error: Option<String>,
    pub(super) backoff: Duration,
    pub(super) consumed: u64,
    pub(super) rate: VecDeque<(Instant, u64)>,
    pub(super) segments_committed: u64,
    pub(super) last_handoff_at: Option<i64>,
    pub(super) rejections_logged: u64,
    /// A rejection arrived since the status last showed the counts and dead letters.
    pub(super) rejections_changed: bool,
}

pub(super) enum Flow {
    Continue,
    Exit,
}

pub(super) fn now_ms() -> i64 {
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
}
