//! The PostgreSQL port on generated input (proptest, bounded for CI): a startup message followed by messages
//! of every type with payloads and lengths of any bytes, or no startup at all, must never stop the server: after
//! the connections, psql still gets an answer. (pgwire's decoder panics on some of these messages; the panic
//! ends only that connection's task, which this test pins down.) The server is started and stopped inside the
//! one test, so no server outlives it.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use proptest::prelude::*;

/// A protocol 3.0 StartupMessage for user and database basalt.
fn startup() -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for kv in ["user", "basalt", "database", "basalt"] {
        body.extend_from_slice(kv.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    m.extend(body);
    m
}

/// One frontend message: a type byte, a length (right or not), a payload.
fn message() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(
            &[
                b'Q', b'P', b'B', b'E', b'D', b'S', b'H', b'C', b'F', b'p', b'd', b'c', b'X', 0,
            ][..],
        ),
        prop::collection::vec(any::<u8>(), 0..64),
        prop_oneof![Just(None), any::<u32>().prop_map(Some)],
    )
        .prop_map(|(ty, payload, length)| {
            let mut m = vec![ty];
            let len = length.unwrap_or((payload.len() + 4) as u32);
            m.extend_from_slice(&len.to_be_bytes());
            m.extend(payload);
            m
        })
}

fn exchange(s: &Served, bytes: &[u8]) {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", s.pg_port)) else {
        return;
    };
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let _ = conn.write_all(bytes);
    let mut buf = [0u8; 4096];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

fn still_answers(s: &Served) {
    let out = psql(s.pg_port, &["-A", "-t", "-c", "SELECT 1"]);
    assert_eq!(psql_stdout(&out).trim(), "1");
}

#[test]
fn any_messages_leave_the_server_serving() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let s = serve_dir(dir, &[]);
    let input = (
        prop::collection::vec(message(), 1..6),
        prop::bool::weighted(0.8),
    );
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&input, |(messages, with_startup)| {
            let mut bytes = if with_startup { startup() } else { Vec::new() };
            for m in &messages {
                bytes.extend_from_slice(m);
            }
            exchange(&s, &bytes);
            Ok(())
        })
        .unwrap();
    for _ in 0..3 {
        exchange(&s, &startup()[..7]);
        exchange(&s, b"\x00\x00\x00\x08\x04\xd2\x16\x2f"); // an SSLRequest, then nothing
        still_answers(&s);
    }
}
