//! Deep storage: where segment files live durably. [`SegmentStore`] is the seam with two implementations:
//! [`LocalDir`] (the data directory is the only copy, as before) and [`ObjectStorage`] (an object store through
//! the `object_store` crate: S3 or any S3-compatible server, or a local-filesystem store for embedded use and
//! tests). With object storage the data directory's `tables/` becomes a cache: the catalog uploads a segment
//! before the commit that names it, downloads one a query needs that is not on local disk, and keeps a copy of
//! the manifest in the store, so a node whose disk is wiped answers the same results from the store alone.
//!
//! Keys under the store's prefix: `tables/<table>/<segment id>.bslt` (immutable) and `MANIFEST` (the latest
//! committed manifest, replaced after each commit).

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, WriteMultipart,
};

use crate::{Error, Result};

/// Files at least this large go up in parts (S3 multipart upload), 8 MiB each.
pub const MULTIPART_THRESHOLD: u64 = 16 << 20;
const PART_BYTES: usize = 8 << 20;

/// What a store did, for `/metrics`.
#[derive(Debug, Default)]
pub struct StoreStats {
    pub uploads: AtomicU64,
    pub uploaded_bytes: AtomicU64,
    pub downloads: AtomicU64,
    pub downloaded_bytes: AtomicU64,
    pub deletes: AtomicU64,
}

/// Where segments live durably.
pub trait SegmentStore: Send + Sync + fmt::Debug {
    /// The store's URL for messages and for the manifest (`None`: the local directory is the only copy).
    fn url(&self) -> Option<String>;
    /// Makes the local file `path` durable as `key`; returns once the store holds all of it (size checked).
    fn upload(&self, key: &str, path: &Path) -> Result<()>;
    /// Copies `key` into the new file `dest`; its length.
    fn download(&self, key: &str, dest: &Path) -> Result<u64>;
    /// Removes `key` (absent is fine).
    fn delete(&self, key: &str) -> Result<()>;
    /// Keys under `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Stores small metadata (the manifest) under `key` if the object is as `expect` says (a compare-and-swap
    /// where the store supports conditional puts, a plain replace where it does not); the new version (ETag).
    fn put_bytes(&self, key: &str, bytes: Vec<u8>, expect: Expect) -> Result<Option<String>>;
    /// Reads `key` and its version (ETag), `None` when absent.
    fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>>;
    fn stats(&self) -> &StoreStats;
}

/// What a conditional write expects to find under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there.
    Any,
    /// Nothing.
    Absent,
    /// This version (the ETag last read or written).
    Version(String),
}

/// No deep storage: the data directory holds the only copy of each segment.
#[derive(Debug, Default)]
pub struct LocalDir {
    stats: StoreStats,
}

impl SegmentStore for LocalDir {
    fn url(&self) -> Option<String> {
        None
    }
    fn upload(&self, _key: &str, _path: &Path) -> Result<()> {
        Ok(())
    }
    fn download(&self, key: &str, _dest: &Path) -> Result<u64> {
        Err(Error::Store {
            url: "local directory".into(),
            op: "download",
            key: key.into(),
            reason: "the file is missing and there is no deep storage to fetch it from".into(),
        })
    }
    fn delete(&self, _key: &str) -> Result<()> {
        Ok(())
    }
    fn list(&self, _prefix: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn put_bytes(&self, _key: &str, _bytes: Vec<u8>, _expect: Expect) -> Result<Option<String>> {
        Ok(None)
    }
    fn get_bytes(&self, _key: &str) -> Result<Option<(Vec<u8>, Option<String>)>> {
        Ok(None)
    }
    fn stats(&self) -> &StoreStats {
        &self.stats
    }
}

/// Settings of an S3-compatible store that its URL does not carry. Credentials come from the usual
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_*`) environment variables unless given here.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// `http://127.0.0.1:9000` for MinIO, moto or another S3-compatible server; empty for AWS.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// A segment store on an object store.
pub struct ObjectStorage {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// The store's client is async; the catalog is not. Calls run on this runtime's threads, so that they work
    /// from any thread (a tokio worker included).
    runtime: Option<tokio::runtime::Runtime>,
    stats: StoreStats,
    /// Set once a conditional put came back unsupported (warned once).
    conditional_unsupported: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for ObjectStorage {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's context panics; a background shutdown never does.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Opens the store at `url`: `s3://bucket[/prefix]` or `file:///absolute/dir`.
pub fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn SegmentStore>> {
    let bad = |reason: String| Error::Store {
        url: url.into(),
        op: "open",
        key: String::new(),
        reason,
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected s3://bucket/prefix or file:///dir".into()))?;
    let (store, prefix): (Arc<dyn ObjectStore>, String) = match scheme {
        "s3" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("the URL names no bucket".into()));
            }
            // Retries for at most 30 s (the crate's default is 3 minutes): a store that went away fails a load or
            // a query with its error instead of holding it for minutes.
            let retry = object_store::RetryConfig {
                max_retries: 5,
                retry_timeout: std::time::Duration::from_secs(30),
                ..Default::default()
            };
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry);
            if !options.endpoint.is_empty() {
                b = b
                    .with_endpoint(&options.endpoint)
                    .with_allow_http(options.endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            if !options.region.is_empty() {
                b = b.with_region(&options.region);
            }
            if !options.access_key_id.is_empty() {
                b = b
                    .with_access_key_id(&options.access_key_id)
                    .with_secret_access_key(&options.secret_access_key);
            }
            let s = b.build().map_err(|e| bad(e.to_string()))?;
            (Arc::new(s), prefix.trim_matches('/').to_string())
        }
        "file" => {
            let dir = PathBuf::from(rest);
            if !dir.is_absolute() {
                return Err(bad("a file:// URL needs an absolute path".into()));
            }
            std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
            let s = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| bad(e.to_string()))?;
            (Arc::new(s), String::new())
        }
        other => return Err(bad(format!("unknown scheme {other:?}"))),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("basalt-store")
        .enable_all()
        .build()
        .map_err(|e| bad(format!("starting its I/O threads: {e}")))?;
    Ok(Arc::new(ObjectStorage {
        url: url.trim_end_matches('/').to_string(),
        store,
        prefix,
        runtime: Some(runtime),
        stats: StoreStats::default(),
        conditional_unsupported: Default::default(),
    }))
}

impl ObjectStorage {
    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn err(&self, op: &'static str, key: &str, e: impl fmt::Display) -> Error {
        let mut reason = e.to_string();
        // Without credentials the S3 client falls back to the EC2 instance metadata service; say what is missing.
        if reason.contains("169.254.169.254") {
            reason.push_str(
                " (no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                 deep_storage_access_key_id and deep_storage_secret_access_key)",
            );
        }
        Error::Store {
            url: self.url.clone(),
            op,
            key: key.into(),
            reason,
        }
    }

    /// Runs `f` on the store's runtime and waits for it.
    fn block<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| self.err("run", "", "the store is shut down"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv()
            .map_err(|_| self.err("run", "", "the store's I/O task stopped"))
    }
}

impl SegmentStore for ObjectStorage {
    fn url(&self) -> Option<String> {
        Some(self.url.clone())
    }

    fn upload(&self, key: &str, path: &Path) -> Result<()> {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        let store = self.store.clone();
        let location = self.path(key);
        if len < MULTIPART_THRESHOLD {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes)
                .map_err(|e| Error::io("read", path, e))?;
            let loc = location.clone();
            self.block(async move { store.put(&loc, PutPayload::from(bytes)).await })?
                .map_err(|e| self.err("upload", key, e))?;
        } else {
            // Parts are read from the file as they go up, a few in flight; an error aborts the upload, so that
            // no half-written object is left behind (S3 keeps unfinished parts until aborted).
            let path_owned = path.to_path_buf();
            let loc = location.clone();
            self.block(async move {
                let upload = store.put_multipart(&loc).await?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
                let mut buf = vec![0u8; PART_BYTES];
                loop {
                    let n = match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) => {
                            let _ = writer.abort().await;
                            return Err(object_store::Error::Generic {
                                store: "file",
                                source: format!("reading {}: {e}", path_owned.display()).into(),
                            });
                        }
                    };
                    writer.wait_for_capacity(4).await?;
                    writer.write(&buf[..n]);
                }
                writer.finish().await
            })?
            .map_err(|e| self.err("upload", key, e))?;
        }
        let stored = {
            let store = self.store.clone();
            self.block(async move { store.head(&location).await })?
                .map_err(|e| self.err("check upload", key, e))?
                .size
        };
        if stored != len {
            return Err(self.err(
                "check upload",
                key,
                format!("the store holds {stored} bytes, the file has {len}"),
            ));
        }
        self.stats.uploads.fetch_add(1, Ordering::Relaxed);
        self.stats.uploaded_bytes.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    fn download(&self, key: &str, dest: &Path) -> Result<u64> {
        let store = self.store.clone();
        let location = self.path(key);
        let mut out = std::fs::File::create(dest).map_err(|e| Error::io("create", dest, e))?;
        let dest_owned = dest.to_path_buf();
        let n = self
            .block(async move {
                let mut stream = store.get(&location).await?.into_stream();
                let mut n = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    out.write_all(&chunk)
                        .map_err(|e| object_store::Error::Generic {
                            store: "file",
                            source: format!("writing {}: {e}", dest_owned.display()).into(),
                        })?;
                    n += chunk.len() as u64;
                }
                out.sync_all().map_err(|e| object_store::Error::Generic {
                    store: "file",
                    source: format!("fsync {}: {e}", dest_owned.display()).into(),
                })?;
                Ok::<u64, object_store::Error>(n)
            })?
            .map_err(|e| self.err("download", key, e))?;
        self.stats.downloads.fetch_add(1, Ordering::Relaxed);
        self.stats.downloaded_bytes.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let store = self.store.clone();
        let location = self.path(key);
        match self.block(async move { store.delete(&location).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                self.stats.deletes.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(self.err("delete", key, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let store = self.store.clone();
        let location = self.path(prefix);
        let metas = self
            .block(async move {
                store
                    .list(Some(&location))
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .collect::<std::result::Result<Vec<_>, _>>()
            })?
            .map_err(|e| self.err("list", prefix, e))?;
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        Ok(metas
            .into_iter()
            .map(|m| {
                let k = m.location.to_string();
                k.strip_prefix(&strip).unwrap_or(&k).to_string()
            })
            .collect())
    }

    fn put_bytes(&self, key: &str, bytes: Vec<u8>, expect: Expect) -> Result<Option<String>> {
        let mode = match &expect {
            Expect::Any => PutMode::Overwrite,
            Expect::Absent => PutMode::Create,
            Expect::Version(e) => PutMode::Update(UpdateVersion {
                e_tag: Some(e.clone()),
                version: None,
            }),
        };
        let put = |mode: PutMode, bytes: Vec<u8>| {
            let store = self.store.clone();
            let location = self.path(key);
            self.block(async move {
                store
                    .put_opts(&location, PutPayload::from(bytes), PutOptions::from(mode))
                    .await
            })
        };
        let r = match put(mode, bytes.clone())? {
            // A store without conditional puts (the local file system's has no If-Match) gets a plain replace:
            // the local writer lock still keeps one writer per data directory.
            Err(object_store::Error::NotImplemented { .. })
            | Err(object_store::Error::NotSupported { .. })
                if expect != Expect::Any =>
            {
                if !self.conditional_unsupported.swap(true, Ordering::Relaxed) {
                    tracing::warn!(url = %self.url, "deep storage has no conditional puts; the manifest is replaced unconditionally");
                }
                put(PutMode::Overwrite, bytes)?
            }
            other => other,
        };
        match r {
            Ok(done) => Ok(done.e_tag),
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. },
            ) => Err(self.err(
                "replace",
                key,
                "it changed since this process read it: another basalt writes to the same store and prefix \
                 (each data directory needs its own prefix until the shared catalog lands)",
            )),
            Err(e) => Err(self.err("upload", key, e)),
        }
    }

    fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>> {
        let store = self.store.clone();
        let location = self.path(key);
        let got = self.block(async move {
            match store.get(&location).await {
                Ok(r) => {
                    let e_tag = r.meta.e_tag.clone();
                    r.bytes().await.map(|b| Some((b.to_vec(), e_tag)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map_err(|e| self.err("download", key, e))
    }

    fn stats(&self) -> &StoreStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_store_keeps_uploads_lists_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("store").display());
        let store = open(&url, &StoreOptions::default()).unwrap();
        let src = dir.path().join("a.bslt");
        std::fs::write(&src, b"segment bytes").unwrap();
        store.upload("tables/t/a.bslt", &src).unwrap();
        assert_eq!(store.list("tables/").unwrap(), vec!["tables/t/a.bslt"]);
        let back = dir.path().join("back");
        assert_eq!(store.download("tables/t/a.bslt", &back).unwrap(), 13);
        assert_eq!(std::fs::read(&back).unwrap(), b"segment bytes");
        assert!(store.get_bytes("MANIFEST").unwrap().is_none());
        store
            .put_bytes("MANIFEST", b"{}".to_vec(), Expect::Absent)
            .unwrap();
        assert_eq!(store.get_bytes("MANIFEST").unwrap().unwrap().0, b"{}");
        // Create refuses an existing object; the local file system has no If-Match, so an update replaces.
        let e = store
            .put_bytes("MANIFEST", b"[]".to_vec(), Expect::Absent)
            .unwrap_err()
            .to_string();
        assert!(e.contains("another basalt"), "{e}");
        store
            .put_bytes("MANIFEST", b"[]".to_vec(), Expect::Version("x".into()))
            .unwrap();
        store.delete("tables/t/a.bslt").unwrap();
        store.delete("tables/t/a.bslt").unwrap();
        assert!(store.list("tables/").unwrap().is_empty());
        let e = store
            .download("tables/t/a.bslt", &back)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tables/t/a.bslt"), "{e}");
    }

    #[test]
    fn bad_urls_are_named() {
        for (url, want) in [
            ("bucket/x", "expected s3://"),
            ("s3://", "no bucket"),
            ("file://relative", "absolute path"),
            ("gs://b", "unknown scheme"),
        ] {
            let e = open(url, &StoreOptions::default()).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(url), "{url}: {e}");
        }
    }
}
