//! A PostgreSQL server of a test's own (Debian's postgresql package: initdb into a temp dir, a loopback port, as
//! nobody when the test runs as root), stopped and removed on drop. Shared by the segment and server tests.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::process::Command;

/// A PostgreSQL server of its own for one test, stopped and removed on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    as_user: Vec<&'static str>,
}

fn pg_bin(name: &str) -> String {
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server (Debian package postgresql) must be installed: scripts/test.sh installs it")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap().to_str().unwrap().to_string()
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        // initdb refuses to run as root: run the server as nobody then.
        let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        let as_user: Vec<&'static str> = if root {
            Command::new("chown")
                .args(["nobody"])
                .arg(dir.path())
                .status()
                .unwrap();
            vec![
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
            ]
        } else {
            Vec::new()
        };
        let run = |args: Vec<String>| {
            let mut all: Vec<String> = as_user.iter().map(|s| s.to_string()).collect();
            all.extend(args);
            let out = Command::new(&all[0]).args(&all[1..]).output().unwrap();
            assert!(
                out.status.success(),
                "{all:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let data = dir.path().join("data").to_str().unwrap().to_string();
        run(vec![
            pg_bin("initdb"),
            "-D".into(),
            data.clone(),
            "-U".into(),
            "postgres".into(),
            "-A".into(),
            "trust".into(),
            "--no-sync".into(),
        ]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        let log = dir.path().join("log").to_str().unwrap().to_string();
        run(vec![
            pg_bin("pg_ctl"),
            "-D".into(),
            data,
            "-l".into(),
            log,
            "-w".into(),
            "-o".into(),
            options,
            "start".into(),
        ]);
        Postgres { dir, port, as_user }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// One value from psql, as text.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-p",
            ])
            .arg(self.port.to_string())
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut all: Vec<String> = self.as_user.iter().map(|s| s.to_string()).collect();
        all.extend([
            pg_bin("pg_ctl"),
            "-D".into(),
            data.to_str().unwrap().into(),
            "-m".into(),
            "immediate".into(),
            "stop".into(),
        ]);
        let _ = Command::new(&all[0]).args(&all[1..]).output();
    }
}
