//! Which Kafka client properties an ingest spec may set. librdkafka takes hundreds, and some of them load
//! shared libraries (`plugin.library.paths`), run commands (`sasl.kerberos.kinit.cmd`), fetch URLs
//! (`sasl.oauthbearer.token.endpoint.url`) or read files: a spec comes from any HTTP client, so only the
//! properties listed here pass, each with its values checked; every other one is refused, by name. The list
//! is documented for users in `SECURITY.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// What a property's value may be.
enum Allowed {
    /// One of these words (compared case-insensitively).
    OneOf(&'static [&'static str]),
    /// An integer in this closed range.
    Int(i64, i64),
    /// Free text (credentials, names): printable, at most 1,024 bytes.
    Text,
    /// A file inside one of the server's `kafka_tls_dirs`.
    TlsFile,
}

use Allowed::*;

const BOOL: Allowed = OneOf(&["true", "false"]);

/// The properties a spec may set, in the order `SECURITY.md` lists them.
const ALLOWED: &[(&str, Allowed)] = &[
    (
        "security.protocol",
        OneOf(&["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]),
    ),
    (
        "sasl.mechanism",
        OneOf(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
    ),
    (
        "sasl.mechanisms",
        OneOf(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
    ),
    ("sasl.username", Text),
    ("sasl.password", Text),
    ("ssl.ca.location", TlsFile),
    ("ssl.certificate.location", TlsFile),
    ("ssl.key.location", TlsFile),
    ("ssl.key.password", Text),
    (
        "ssl.endpoint.identification.algorithm",
        OneOf(&["none", "https"]),
    ),
    ("enable.ssl.certificate.verification", BOOL),
    ("client.id", Text),
    ("client.rack", Text),
    (
        "isolation.level",
        OneOf(&["read_committed", "read_uncommitted"]),
    ),
    ("broker.address.family", OneOf(&["any", "v4", "v6"])),
    (
        "client.dns.lookup",
        OneOf(&[
            "use_all_dns_ips",
            "resolve_canonical_bootstrap_servers_only",
        ]),
    ),
    ("fetch.min.bytes", Int(1, 100_000_000)),
    ("fetch.max.bytes", Int(0, 2_147_483_135)),
    ("fetch.wait.max.ms", Int(0, 300_000)),
    ("fetch.message.max.bytes", Int(1, 1_000_000_000)),
    ("max.partition.fetch.bytes", Int(1, 1_000_000_000)),
    ("receive.message.max.bytes", Int(1_000, 2_147_483_647)),
    ("queued.min.messages", Int(1, 10_000_000)),
    ("queued.max.messages.kbytes", Int(1, 2_097_151)),
    ("socket.timeout.ms", Int(10, 300_000)),
    ("socket.keepalive.enable", BOOL),
    (
        "socket.connection.setup.timeout.ms",
        Int(1_000, 2_147_483_647),
    ),
    ("reconnect.backoff.ms", Int(0, 3_600_000)),
    ("reconnect.backoff.max.ms", Int(0, 3_600_000)),
    ("session.timeout.ms", Int(1, 3_600_000)),
    ("heartbeat.interval.ms", Int(1, 3_600_000)),
    ("metadata.max.age.ms", Int(1, 86_400_000)),
    ("topic.metadata.refresh.interval.ms", Int(-1, 3_600_000)),
];

/// Names of the properties a spec may set.
pub fn allowed_names() -> impl Iterator<Item = &'static str> {
    ALLOWED.iter().map(|(name, _)| *name)
}

/// Checks every property of a spec; `tls_dirs` are the directories TLS files may come from. The error names
/// the property and says why.
pub fn check(properties: &BTreeMap<String, String>, tls_dirs: &[PathBuf]) -> Result<()> {
    for (name, value) in properties {
        let Some((_, allowed)) = ALLOWED.iter().find(|(n, _)| n == name) else {
            return Err(Error::Spec(format!(
                "kafka property {name:?} is not allowed (basalt sets the consumer's own properties and lets a \
                 spec set only: {}; see SECURITY.md)",
                allowed_names().collect::<Vec<_>>().join(", ")
            )));
        };
        let bad = |why: String| Error::Spec(format!("kafka property {name:?}: {why}"));
        match allowed {
            OneOf(words) => {
                if !words.iter().any(|w| w.eq_ignore_ascii_case(value)) {
                    return Err(bad(format!("{value:?} is not one of {}", words.join(", "))));
                }
            }
            Int(lo, hi) => match value.trim().parse::<i64>() {
                Ok(v) if (*lo..=*hi).contains(&v) => {}
                _ => {
                    return Err(bad(format!(
                        "{value:?} is not an integer from {lo} to {hi}"
                    )))
                }
            },
            Text => {
                if value.len() > 1024 || value.chars().any(char::is_control) {
                    return Err(bad(
                        "must be printable text of at most 1,024 bytes".to_string()
                    ));
                }
            }
            TlsFile => check_tls_file(value, tls_dirs).map_err(bad)?,
        }
    }
    Ok(())
}

/// A TLS file must exist and, with symbolic links and `..` resolved, lie inside one of `tls_dirs`.
fn check_tls_file(value: &str, tls_dirs: &[PathBuf]) -> std::result::Result<(), String> {
    if tls_dirs.is_empty() {
        return Err(
            "this server reads no Kafka TLS files (set kafka_tls_dirs in its config to the directories that \
             hold them)"
                .into(),
        );
    }
    let file = Path::new(value)
        .canonicalize()
        .map_err(|_| format!("{value:?} is not a readable file inside kafka_tls_dirs"))?;
    let inside = tls_dirs.iter().any(|d| {
        d.canonicalize()
            .map(|d| file.starts_with(d))
            .unwrap_or(false)
    });
    if !inside || !file.is_file() {
        return Err(format!(
            "{value:?} is not a readable file inside kafka_tls_dirs"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dangerous_properties_are_refused_by_name() {
        for name in [
            "plugin.library.paths",
            "sasl.kerberos.kinit.cmd",
            "sasl.oauthbearer.token.endpoint.url",
            "ssl.keystore.location",
            "group.id",
            "enable.auto.commit",
            "bootstrap.servers",
        ] {
            let e = check(&props(&[(name, "x")]), &[]).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains("not allowed"), "{e}");
        }
        let e = check(&props(&[("sasl.mechanism", "GSSAPI")]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("GSSAPI"), "{e}");
        let e = check(
            &props(&[("fetch.wait.max.ms", "18446744073709551615")]),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("0 to 300000"), "{e}");
    }

    #[test]
    fn ordinary_tuning_and_credentials_pass() {
        check(
            &props(&[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("sasl.username", "alice"),
                ("sasl.password", "s3cret"),
                ("fetch.wait.max.ms", "50"),
                ("client.id", "dash"),
            ]),
            &[],
        )
        .unwrap();
    }

    #[test]
    fn tls_files_only_from_the_configured_directories() {
        let tls = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(tls.path().join("ca.pem"), "x").unwrap();
        std::fs::write(other.path().join("evil.pem"), "x").unwrap();
        let dirs = vec![tls.path().to_path_buf()];
        let ok = tls.path().join("ca.pem");
        check(&props(&[("ssl.ca.location", ok.to_str().unwrap())]), &dirs).unwrap();
        let e = check(&props(&[("ssl.ca.location", ok.to_str().unwrap())]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka_tls_dirs"), "{e}");
        let outside = other.path().join("evil.pem");
        let escape = tls.path().join("..").join(
            other
                .path()
                .strip_prefix(tls.path().parent().unwrap())
                .unwrap_or(other.path())
                .join("evil.pem"),
        );
        for bad in [outside, escape, PathBuf::from("/etc/passwd")] {
            let e = check(
                &props(&[("ssl.key.location", bad.to_str().unwrap())]),
                &dirs,
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("ssl.key.location"), "{e}");
        }
        #[cfg(unix)]
        {
            let link = tls.path().join("link.pem");
            std::os::unix::fs::symlink(other.path().join("evil.pem"), &link).unwrap();
            assert!(check(
                &props(&[("ssl.key.location", link.to_str().unwrap())]),
                &dirs
            )
            .is_err());
        }
    }
}
