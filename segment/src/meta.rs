//! Where the catalog's commit point lives. By default it is the data directory's `MANIFEST` file (and, with deep
//! storage, the store's copy); with `catalog = "postgres://..."` it is a PostgreSQL database that several basalt
//! nodes share, as Druid's metadata store is. The catalog computes each commit the same way over either; this
//! module only loads the manifest and publishes the next one, compare-and-swap on its version.
//!
//! In PostgreSQL the manifest is kept relational, one row per thing, in tables the catalog creates on first use:
//!
//! ```text
//! basalt_catalog   (id = 1, version, deep_storage, access)   the version is the compare-and-swap point
//! basalt_tables    (name, schema)                            each table's schema (JSON)
//! basalt_segments  (id, table_name, start_ms, end_ms, num_rows, bytes, version, crc32c)
//! basalt_sources   (id, value)                               per-source metadata: Kafka offsets (JSON)
//! basalt_rules     (table_name, rules)                       lifecycle rules (JSON)
//! ```
//!
//! A publish is one SERIALIZABLE transaction: it locks the `basalt_catalog` row, checks that the version is the
//! one the commit was computed from, writes only what changed (segments added and removed, tables, sources,
//! rules, access) and bumps the version. Another writer's commit in between makes it [`Error::StaleCatalog`]:
//! the catalog then reloads and computes the commit again, so source compare-and-swaps (Kafka offsets) are
//! checked against what is really committed.

use std::collections::BTreeMap;
use std::fmt;

use tokio_postgres::{Client, NoTls, Transaction};

use crate::catalog::{Manifest, SegmentEntry};
use crate::footer::Interval;
use crate::schema::TableSchema;
use crate::{Error, Result};

/// The commit point of a catalog.
pub trait ManifestStore: Send + Sync + fmt::Debug {
    /// Where it is, for messages (credentials left out).
    fn describe(&self) -> String;
    /// The committed manifest; `None` when nothing was ever committed.
    fn load(&self) -> Result<Option<Manifest>>;
    /// Publishes `next` over `old` (whose version must still be the committed one).
    fn publish(&self, old: &Manifest, next: &Manifest) -> Result<()>;
}

/// The catalog's tables, created when missing.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS basalt_catalog (
    id integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL,
    deep_storage jsonb,
    access jsonb
);
CREATE TABLE IF NOT EXISTS basalt_tables (name text PRIMARY KEY, schema jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS basalt_segments (
    id text PRIMARY KEY,
    table_name text NOT NULL,
    start_ms bigint NOT NULL,
    end_ms bigint NOT NULL,
    num_rows bigint NOT NULL,
    bytes bigint NOT NULL,
    version bigint NOT NULL,
    crc32c bigint
);
CREATE TABLE IF NOT EXISTS basalt_sources (id text PRIMARY KEY, value jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS basalt_rules (table_name text PRIMARY KEY, rules jsonb NOT NULL);
INSERT INTO basalt_catalog (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
";

/// A catalog in a PostgreSQL database.
pub struct Postgres {
    /// The URL without its password.
    shown: String,
    client: tokio::sync::Mutex<Client>,
    /// tokio-postgres is async; the catalog is not. Calls run on this runtime's threads, so that they work from
    /// any thread (a tokio worker included).
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("url", &self.shown)
            .finish()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's context panics; a background shutdown never does.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// `url` without the password, for messages and logs.
pub fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let auth = &url[scheme + 3..at];
            let user = auth.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Postgres {
    /// Connects to `url` (`postgres://user:password@host:port/database`, libpq's forms) and creates the
    /// catalog's tables if they are missing.
    pub fn connect(url: &str) -> Result<Postgres> {
        let shown = without_password(url);
        let fail = |op: &str, e: &dyn fmt::Display| Error::MetadataStore {
            url: shown.clone(),
            reason: format!("{op}: {e}"),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("basalt-catalog")
            .enable_all()
            .build()
            .map_err(|e| fail("starting its I/O thread", &e))?;
        let owned = url.to_string();
        let connected = runtime.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&owned, NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::error!("catalog database connection ended: {e}");
                }
            });
            client.batch_execute(SCHEMA).await?;
            Ok::<Client, tokio_postgres::Error>(client)
        });
        let client = connected.map_err(|e| fail("connecting", &pg_reason(&e)))?;
        Ok(Postgres {
            shown,
            client: tokio::sync::Mutex::new(client),
            runtime: Some(runtime),
        })
    }

    fn error(&self, op: &str, e: &tokio_postgres::Error) -> Error {
        Error::MetadataStore {
            url: self.shown.clone(),
            reason: format!("{op}: {}", pg_reason(e)),
        }
    }

    /// Runs `f` on the catalog's runtime and waits for it (also from inside another runtime's thread).
    fn block<T: Send>(&self, f: impl std::future::Future<Output = T> + Send) -> Result<T> {
        let rt = self.runtime.as_ref().ok_or_else(|| Error::MetadataStore {
            url: self.shown.clone(),
            reason: "the catalog connection is shut down".into(),
        })?;
        // A scoped thread: the future borrows `self`, and block_on may not run on a runtime's own thread.
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(f))
                .join()
                .map_err(|_| Error::MetadataStore {
                    url: self.shown.clone(),
                    reason: "the catalog's I/O thread panicked".into(),
                })
        })
    }
}

/// The server's message and SQLSTATE where there is one (tokio-postgres's Display says only "db error").
fn pg_reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

impl ManifestStore for Postgres {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn load(&self) -> Result<Option<Manifest>> {
        let loaded = self.block(async {
            let client = self.client.lock().await;
            load(&client).await
        })?;
        let raw = loaded.map_err(|e| self.error("reading the catalog", &e))?;
        let bad = |what: &str, e: serde_json::Error| Error::MetadataStore {
            url: self.shown.clone(),
            reason: format!("{what} is unreadable: {e}"),
        };
        if raw.version == 0 {
            return Ok(None);
        }
        let mut m = Manifest {
            version: raw.version as u64,
            ..Default::default()
        };
        for (name, schema) in raw.tables {
            let schema: TableSchema =
                serde_json::from_str(&schema).map_err(|e| bad(&format!("table {name:?}"), e))?;
            m.tables.insert(name, schema);
        }
        for (id, value) in raw.sources {
            m.sources.insert(
                id.clone(),
                serde_json::from_str(&value).map_err(|e| bad(&format!("source {id:?}"), e))?,
            );
        }
        for (table, rules) in raw.rules {
            m.rules.insert(
                table.clone(),
                serde_json::from_str(&rules).map_err(|e| bad(&format!("rules of {table:?}"), e))?,
            );
        }
        if let Some(d) = raw.deep_storage {
            m.deep_storage = serde_json::from_str(&d).map_err(|e| bad("deep_storage", e))?;
        }
        if let Some(a) = raw.access {
            m.access = serde_json::from_str(&a).map_err(|e| bad("access", e))?;
        }
        m.segments = raw.segments;
        m.sort_segments();
        Ok(Some(m))
    }

    fn publish(&self, old: &Manifest, next: &Manifest) -> Result<()> {
        let done = self.block(async {
            let mut client = self.client.lock().await;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::Serializable)
                .start()
                .await?;
            let row = tx
                .query_one(
                    "SELECT version FROM basalt_catalog WHERE id = 1 FOR UPDATE",
                    &[],
                )
                .await?;
            let committed: i64 = row.get(0);
            if committed != old.version as i64 {
                tx.rollback().await?;
                return Ok(Some(committed as u64));
            }
            write_changes(&tx, old, next).await?;
            tx.commit().await?;
            Ok::<Option<u64>, tokio_postgres::Error>(None)
        })?;
        match done {
            Ok(None) => Ok(()),
            Ok(Some(actual)) => Err(Error::StaleCatalog {
                expected: old.version,
                actual,
            }),
            // Another writer's transaction got in the way: the same as a newer version.
            Err(e)
                if e.code()
                    == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE) =>
            {
                Err(Error::StaleCatalog {
                    expected: old.version,
                    actual: old.version + 1,
                })
            }
            Err(e) => Err(self.error("committing", &e)),
        }
    }
}

/// The catalog's rows, as text.
struct Raw {
    version: i64,
    deep_storage: Option<String>,
    access: Option<String>,
    tables: Vec<(String, String)>,
    segments: Vec<SegmentEntry>,
    sources: Vec<(String, String)>,
    rules: Vec<(String, String)>,
}

async fn load(client: &Client) -> std::result::Result<Raw, tokio_postgres::Error> {
    // One snapshot for every table: a commit in between cannot mix two versions.
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let read = async {
        let head = client
            .query_one(
                "SELECT version, deep_storage::text, access::text FROM basalt_catalog WHERE id = 1",
                &[],
            )
            .await?;
        let pairs = |rows: Vec<tokio_postgres::Row>| -> Vec<(String, String)> {
            rows.iter().map(|r| (r.get(0), r.get(1))).collect()
        };
        let tables = pairs(
            client
                .query("SELECT name, schema::text FROM basalt_tables", &[])
                .await?,
        );
        let sources = pairs(
            client
                .query("SELECT id, value::text FROM basalt_sources", &[])
                .await?,
        );
        let rules = pairs(
            client
                .query("SELECT table_name, rules::text FROM basalt_rules", &[])
                .await?,
        );
        let segments = client
            .query(
                "SELECT id, table_name, start_ms, end_ms, num_rows, bytes, version, crc32c FROM basalt_segments",
                &[],
            )
            .await?
            .iter()
            .map(|r| SegmentEntry {
                id: r.get(0),
                table: r.get(1),
                interval: Interval::new(r.get(2), r.get(3)),
                num_rows: r.get::<_, i64>(4) as u64,
                bytes: r.get::<_, i64>(5) as u64,
                version: r.get::<_, i64>(6) as u64,
                crc32c: r.get::<_, Option<i64>>(7).map(|c| c as u32),
            })
            .collect();
        Ok::<Raw, tokio_postgres::Error>(Raw {
            version: head.get(0),
            deep_storage: head.get(1),
            access: head.get(2),
            tables,
            segments,
            sources,
            rules,
        })
    }
    .await;
    client.batch_execute("COMMIT").await?;
    read
}

/// Writes what differs between `old` and `next`, and the new version.
async fn write_changes(
    tx: &Transaction<'_>,
    old: &Manifest,
    next: &Manifest,
) -> std::result::Result<(), tokio_postgres::Error> {
    let old_ids: BTreeMap<&str, &SegmentEntry> =
        old.segments.iter().map(|s| (s.id.as_str(), s)).collect();
    let new_ids: BTreeMap<&str, &SegmentEntry> =
        next.segments.iter().map(|s| (s.id.as_str(), s)).collect();
    for id in old_ids.keys().filter(|id| !new_ids.contains_key(*id)) {
        tx.execute("DELETE FROM basalt_segments WHERE id = $1", &[id])
            .await?;
    }
    for (id, s) in &new_ids {
        if old_ids.get(id) == Some(s) {
            continue;
        }
        tx.execute(
            "INSERT INTO basalt_segments (id, table_name, start_ms, end_ms, num_rows, bytes, version, crc32c)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET table_name = $2, start_ms = $3, end_ms = $4, num_rows = $5,
               bytes = $6, version = $7, crc32c = $8",
            &[
                id,
                &s.table,
                &s.interval.start,
                &s.interval.end,
                &(s.num_rows as i64),
                &(s.bytes as i64),
                &(s.version as i64),
                &s.crc32c.map(i64::from),
            ],
        )
        .await?;
    }
    sync_json_rows(
        tx,
        "basalt_tables",
        "name",
        "schema",
        &old.tables,
        &next.tables,
    )
    .await?;
    sync_json_rows(
        tx,
        "basalt_sources",
        "id",
        "value",
        &old.sources,
        &next.sources,
    )
    .await?;
    sync_json_rows(
        tx,
        "basalt_rules",
        "table_name",
        "rules",
        &old.rules,
        &next.rules,
    )
    .await?;
    let deep = next.deep_storage.as_ref().map(json_text);
    let access = next.access.as_ref().map(json_text);
    tx.execute(
        "UPDATE basalt_catalog SET version = $1, deep_storage = $2::text::jsonb, access = $3::text::jsonb WHERE id = 1",
        &[&(next.version as i64), &deep, &access],
    )
    .await?;
    Ok(())
}

/// Makes `table`'s (key, JSON value) rows go from `old` to `next`.
async fn sync_json_rows<V: serde::Serialize + PartialEq>(
    tx: &Transaction<'_>,
    table: &str,
    key: &str,
    value: &str,
    old: &BTreeMap<String, V>,
    next: &BTreeMap<String, V>,
) -> std::result::Result<(), tokio_postgres::Error> {
    for k in old.keys().filter(|k| !next.contains_key(*k)) {
        tx.execute(&format!("DELETE FROM {table} WHERE {key} = $1"), &[k])
            .await?;
    }
    for (k, v) in next {
        if old.get(k) == Some(v) {
            continue;
        }
        tx.execute(
            &format!(
                "INSERT INTO {table} ({key}, {value}) VALUES ($1, $2::text::jsonb)
                 ON CONFLICT ({key}) DO UPDATE SET {value} = EXCLUDED.{value}"
            ),
            &[k, &json_text(v)],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn passwords_are_left_out_of_messages() {
        assert_eq!(
            without_password("postgres://basalt:s3cret@db:5432/meta"),
            "postgres://basalt@db:5432/meta"
        );
        assert_eq!(
            without_password("postgres://db:5432/meta"),
            "postgres://db:5432/meta"
        );
    }
}
