//! TLS on both ports, with rustls: `tls_cert` and `tls_key` (PEM files) turn it on. HTTP then speaks only HTTPS
//! (served here through hyper's connection API, since `axum::serve` has no TLS), and the PostgreSQL port answers
//! `SSLRequest` with `S` and refuses connections that did not ask for TLS (SQLSTATE 28000), so that no password
//! or result crosses the network in the clear.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};

/// How long a client has to finish the TLS handshake before its connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The acceptor for the configured certificate chain and key; `None` when TLS is not configured. Either file
/// alone, or one that does not read, is a startup error naming it.
pub fn acceptor(cert: &Path, key: &Path) -> Result<Option<TlsAcceptor>> {
    let (cert_set, key_set) = (!cert.as_os_str().is_empty(), !key.as_os_str().is_empty());
    if !cert_set && !key_set {
        return Ok(None);
    }
    if cert_set != key_set {
        return Err(Error::Usage(
            "TLS needs both tls_cert and tls_key (PEM files), or neither".into(),
        ));
    }
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        Error::Usage(format!("{what} {}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("tls_cert", cert, &e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad("tls_cert", cert, &e))?;
    if chain.is_empty() {
        return Err(bad("tls_cert", cert, &"holds no PEM certificate"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("tls_key", key, &e))?;
    // ring, which object_store and pgwire already build; rustls now prefers aws-lc-rs (post-quantum key
    // exchange), whose C build would add minutes to every clean build.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Usage(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| bad("tls_cert and tls_key", cert, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Serves `app` over HTTPS on `listener` until `stop` turns true; then open connections finish their request
/// and close.
pub async fn serve_https(
    listener: super::conns::LimitedListener,
    app: Router,
    acceptor: TlsAcceptor,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.next(Some(&acceptor)) => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (acceptor, app, mut stop) = (acceptor.clone(), app.clone(), stop.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "https connection ended: {e}");
                    }
                }
                _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
