//! Kafka ingestion, exactly once: [`Supervisors`] runs one consumer thread ([`worker`]) per ingest spec. Specs,
//! offsets, rejection counts and dead letters live in the catalog (see [`state::SourceState`]), committed in
//! the same atomic step as the segments they describe; the catalog, not the consumer group, is the truth. A
//! restarted process resumes each ingestion from its committed offsets and re-reads the uncommitted tail.

mod batch;
mod handoff;
pub mod properties;
pub mod state;
pub mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use basalt_segment::{Catalog, Commit, LiveIndex, SourceUpdate};

use crate::spec::{IngestSpec, InputFormat};
use crate::{Error, Result};
pub use state::{source_id, DeadLetter, Desired, IngestStatus, SourceState};
use worker::{Command, Worker};

/// Stack of a worker thread: ample for JSON nested as deep as simd-json parses (see `input::json`'s tests).
const WORKER_STACK_BYTES: usize = 16 << 20;

/// How long an operator command waits for the worker's answer (a handoff may run meanwhile).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

struct Handle {
    status: Arc<Mutex<IngestStatus>>,
    commands: Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

/// What the server lets ingest specs do.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Directories Kafka TLS files may be read from (see [`properties`]).
    pub tls_dirs: Vec<PathBuf>,
    /// Ingestions running at once, at most.
    pub max_ingestions: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            tls_dirs: Vec::new(),
            max_ingestions: 16,
        }
    }
}

/// The running Kafka ingestions of one process.
pub struct Supervisors {
    catalog: Arc<dyn Catalog>,
    live: Arc<LiveIndex>,
    tls_dirs: Arc<[PathBuf]>,
    max_ingestions: usize,
    running: Mutex<BTreeMap<String, Handle>>,
}

impl Supervisors {
    pub fn new(catalog: Arc<dyn Catalog>, live: Arc<LiveIndex>) -> Self {
        Self::with_policy(catalog, live, Policy::default())
    }

    pub fn with_policy(catalog: Arc<dyn Catalog>, live: Arc<LiveIndex>, policy: Policy) -> Self {
        Supervisors {
            catalog,
            live,
            tls_dirs: policy.tls_dirs.into(),
            max_ingestions: policy.max_ingestions,
            running: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Handle>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts every ingestion the catalog holds that is not deleted (paused ones start paused). Returns their ids.
    pub fn resume_from_catalog(&self) -> Result<Vec<String>> {
        let manifest = self.catalog.snapshot();
        let mut started = Vec::new();
        for (key, value) in &manifest.sources {
            if !key.starts_with("kafka:") {
                continue;
            }
            let state: SourceState = serde_json::from_value(value.clone())
                .map_err(|e| Error::Spec(format!("catalog entry {key:?}: {e}")))?;
            if state.desired != Desired::Deleted {
                started.push(state.spec.id().to_string());
                self.spawn(state);
            }
        }
        Ok(started)
    }

    /// Creates an ingestion, or replaces the spec of an existing one (which hands off and restarts). Offsets are
    /// kept while the topic stays the same.
    pub fn submit(&self, spec: IngestSpec) -> Result<IngestStatus> {
        spec.validate()?;
        let Some(kafka) = &spec.kafka else {
            return Err(Error::Spec(
                "a Kafka ingestion needs a \"kafka\" section (bootstrap_servers, topic)".into(),
            ));
        };
        if kafka.topic.is_empty() || kafka.bootstrap_servers.is_empty() {
            return Err(Error::Spec(
                "kafka.topic and kafka.bootstrap_servers must not be empty".into(),
            ));
        }
        for (what, v) in [
            ("bootstrap_servers", &kafka.bootstrap_servers),
            ("topic", &kafka.topic),
        ] {
            if v.len() > 4096 || v.chars().any(char::is_control) {
                return Err(Error::Spec(format!(
                    "kafka.{what} must be printable text of at most 4,096 bytes"
                )));
            }
        }
        properties::check(&kafka.properties, &self.tls_dirs)?;
        basalt_segment::catalog::check_table_name(&self.catalog.snapshot(), &spec.table)?;
        if !matches!(spec.format, InputFormat::Json | InputFormat::Auto) {
            return Err(Error::Spec(format!(
                "Kafka messages are read as JSON (format \"json\"), not {:?}",
                spec.format
            )));
        }
        let id = spec.id().to_string();
        {
            let running = self.lock();
            if !running.contains_key(&id) && running.len() >= self.max_ingestions {
                return Err(Error::Limit(format!(
                    "this server already runs {} Kafka ingestions (max_ingestions); delete one or raise the setting",
                    running.len()
                )));
            }
        }
        if let Some(handle) = self.lock().remove(&id) {
            stop(handle, false)?;
        }
        let key = source_id(&id);
        let manifest = self.catalog.snapshot();
        let existing = manifest.sources.get(&key).cloned();
        let mut state = match existing
            .as_ref()
            .map(|v| serde_json::from_value::<SourceState>(v.clone()))
        {
            Some(Ok(old)) if old.topic == kafka.topic => SourceState {
                spec: spec.clone(),
                desired: Desired::Running,
                ..old
            },
            _ => SourceState::new(spec.clone(), kafka.topic.clone()),
        };
        state.desired = Desired::Running;
        let new =
            serde_json::to_value(&state).map_err(|e| Error::Spec(format!("internal: {e}")))?;
        self.catalog.commit(Commit {
            sources: vec![SourceUpdate {
                source_id: key,
                expected: existing,
                new,
            }],
            ..Default::default()
        })?;
        let status = self.spawn(state);
        let s = status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(s)
    }

    fn spawn(&self, state: SourceState) -> Arc<Mutex<IngestStatus>> {
        let id = state.spec.id().to_string();
        let status = Arc::new(Mutex::new(IngestStatus {
            id: id.clone(),
            table: state.spec.table.clone(),
            topic: state.topic.clone(),
            state: "starting".into(),
            spec: Some(state.spec.clone()),
            rows_committed: state.rows_committed,
            messages_committed: state.messages_committed,
            rejected: state.rejected.clone(),
            dead_letters: state.dead_letters.clone(),
            ..Default::default()
        }));
        let (tx, rx) = channel();
        let worker = Worker::new(
            state,
            self.catalog.clone(),
            self.live.clone(),
            status.clone(),
            rx,
            self.tls_dirs.clone(),
        );
        let on_panic = status.clone();
        let thread = std::thread::Builder::new()
            .name(format!("kafka-{id}"))
            // Messages are parsed and their nested values printed recursively, within simd-json's depth bound.
            .stack_size(WORKER_STACK_BYTES)
            .spawn(move || {
                // A bug must not take the server down: the ingestion shows as failed instead. What it held in
                // memory was not committed, so the next start re-reads it.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run()));
                if let Err(panic) = r {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    tracing::error!(panic = %what, "kafka ingestion worker panicked");
                    let mut s = on_panic.lock().unwrap_or_else(|p| p.into_inner());
                    s.state = "failed".into();
                    s.last_error = Some(format!("internal error (worker panicked): {what}"));
                }
            })
            .ok();
        self.lock().insert(
            id,
            Handle {
                status: status.clone(),
                commands: tx,
                thread,
            },
        );
        status
    }

    /// The status of every running ingestion.
    pub fn list(&self) -> Vec<IngestStatus> {
        self.lock()
            .values()
            .map(|h| h.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    pub fn status(&self, id: &str) -> Result<IngestStatus> {
        self.lock()
            .get(id)
            .map(|h| h.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .ok_or_else(|| Error::NoIngestion(id.to_string()))
    }

    fn command(
        &self,
        id: &str,
        make: impl FnOnce(Sender<Result<(), String>>) -> Command,
    ) -> Result<()> {
        let (tx, rx) = channel();
        {
            let running = self.lock();
            let handle = running
                .get(id)
                .ok_or_else(|| Error::NoIngestion(id.to_string()))?;
            handle
                .commands
                .send(make(tx))
                .map_err(|_| Error::Kafka(format!("ingestion {id:?} is not running")))?;
        }
        rx.recv_timeout(COMMAND_TIMEOUT)
            .map_err(|_| Error::Kafka(format!("ingestion {id:?} did not answer")))?
            .map_err(Error::Kafka)
    }

    /// Hands off what is in memory and stops consuming until resumed (also after a restart).
    pub fn pause(&self, id: &str) -> Result<IngestStatus> {
        self.command(id, Command::Pause)?;
        self.status(id)
    }

    pub fn resume(&self, id: &str) -> Result<IngestStatus> {
        self.command(id, Command::Resume)?;
        self.status(id)
    }

    /// Hands off, stops, and marks the ingestion deleted (its data and offsets stay).
    pub fn delete(&self, id: &str) -> Result<()> {
        let handle = self
            .lock()
            .remove(id)
            .ok_or_else(|| Error::NoIngestion(id.to_string()))?;
        stop(handle, true)
    }

    /// Hands off and stops every ingestion (they resume on the next start).
    pub fn shutdown(&self) {
        let handles: Vec<(String, Handle)> =
            std::mem::take(&mut *self.lock()).into_iter().collect();
        for (id, h) in handles {
            if let Err(e) = stop(h, false) {
                tracing::warn!(id = %id, error = %e, "stopping a kafka ingestion");
            }
        }
    }
}

fn stop(mut handle: Handle, delete: bool) -> Result<()> {
    let (tx, rx) = channel();
    let sent = handle
        .commands
        .send(Command::Stop { delete, reply: tx })
        .is_ok();
    let answer = if sent {
        rx.recv_timeout(COMMAND_TIMEOUT)
            .unwrap_or_else(|_| Err("the ingestion did not answer".into()))
    } else {
        Ok(())
    };
    if let Some(t) = handle.thread.take() {
        let _ = t.join();
    }
    answer.map_err(Error::Kafka)
}
