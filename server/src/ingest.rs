//! `basalt ingest kafka`: one process that consumes a topic into a data directory, without the server.

use std::path::Path;
use std::sync::Arc;

use basalt_ingest::kafka::Supervisors;
use basalt_ingest::IngestSpec;
use basalt_segment::{FileCatalog, LiveIndex};

use crate::error::{Error, Result};

/// Reads an ingest spec: TOML when the file name ends in `.toml`, JSON otherwise.
pub fn read_spec(path: &Path) -> Result<IngestSpec> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    if path.extension().is_some_and(|e| e == "toml") {
        let spec: IngestSpec =
            toml::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        spec.validate()?;
        Ok(spec)
    } else {
        IngestSpec::from_json(&text).map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
    }
}

pub fn kafka(data_dir: &Path, storage: &crate::load::StorageArgs, spec_path: &Path) -> Result<()> {
    let spec = read_spec(spec_path)?;
    let catalog = Arc::new(FileCatalog::open_with_storage(
        data_dir,
        "basalt ingest kafka",
        &storage.config(),
    )?);
    let supervisors = Arc::new(Supervisors::new(catalog, Arc::new(LiveIndex::new())));
    let id = spec.id().to_string();
    supervisors.submit(spec)?;
    println!("ingesting: {id} (SIGINT or SIGTERM stops after handing off what is in memory)");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("cannot start the async runtime: {e}")))?;
    let s = supervisors.clone();
    runtime.block_on(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        let stop = crate::serve::shutdown_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {
                    if let Ok(st) = s.status(&id) {
                        let rejected: u64 = st.rejected.values().sum();
                        println!(
                            "{}: {} consumed, {} rows committed, {} in memory, {} rejected, lag {}, {:.0} msg/s{}",
                            st.state,
                            st.messages_consumed,
                            st.rows_committed,
                            st.rows_in_memory,
                            rejected,
                            st.lag.map_or("?".to_string(), |l| l.to_string()),
                            st.messages_per_second,
                            st.last_error.map(|e| format!(" (last error: {e})")).unwrap_or_default(),
                        );
                    }
                }
            }
        }
    });
    supervisors.shutdown();
    println!("stopped");
    Ok(())
}
