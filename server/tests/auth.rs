//! Users, roles and grants end to end: `basalt serve` with `auth = true`, driven by real clients (ureq, psql,
//! psycopg, pydruid, requests). Every path of a grant is tried from both sides: what a user may do works, what it
//! may not is refused with 401/403 (SQLSTATE 28P01/42501) and changes nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const ADMIN_PW: &str = "admin-Secret-1";

/// `basalt serve` with auth on (settings from a config file, as an operator writes them).
fn serve_with_auth(dir: tempfile::TempDir) -> Served {
    let conf = dir.path().join("basalt.toml");
    std::fs::write(
        &conf,
        format!("auth = true\nauth_admin_password = \"{ADMIN_PW}\"\n"),
    )
    .unwrap();
    let conf = conf.to_str().unwrap().to_string();
    serve_dir(dir, &["--config", &conf])
}

/// One request with HTTP basic auth (or none): status, `WWW-Authenticate`, body.
fn call(
    method: &str,
    url: &str,
    user: Option<(&str, &str)>,
    body: Option<&str>,
) -> (u16, Option<String>, String) {
    let agent = agent();
    let auth = user.map(|(u, p)| {
        let raw = format!("{u}:{p}");
        format!("Basic {}", base64(raw.as_bytes()))
    });
    let mut r = match method {
        "GET" => {
            let mut req = agent.get(url);
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.call().unwrap()
        }
        "DELETE" => {
            let mut req = agent.delete(url);
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.call().unwrap()
        }
        _ => {
            let mut req = agent.post(url).header("content-type", "application/json");
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            req.send(body.unwrap_or("")).unwrap()
        }
    };
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (
        r.status().as_u16(),
        challenge,
        r.body_mut().read_to_string().unwrap(),
    )
}

/// Standard base64 (RFC 4648), written out here so the test does not share the server's encoder.
fn base64(data: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sql(s: &Served, user: (&str, &str), query: &str) -> (u16, String) {
    let body = serde_json::json!({"query": query, "format": "csv"}).to_string();
    let (st, _, text) = call(
        "POST",
        &format!("{}/v1/sql", s.http),
        Some(user),
        Some(&body),
    );
    (st, text)
}

fn psql_as(port: u16, user: &str, password: &str, query: &str) -> std::process::Output {
    Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            "basalt",
        ])
        .args(["-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query])
        .env("PGPASSWORD", password)
        .output()
        .unwrap()
}

const ADMIN: (&str, &str) = ("basalt", ADMIN_PW);
const ANA: (&str, &str) = ("ana", "ana-pw");
const WES: (&str, &str) = ("wes", "wes-pw");

#[test]
fn grants_decide_what_each_user_reads_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let flights = dataset("flight_data.csv.gz");
    load_table(
        dir.path().to_str().unwrap(),
        "flights",
        "ts",
        &flights,
        &[
            "--transform",
            "ts=concat(YEAR, '-', lpad(MONTH, 2, '0'), '-', lpad(DAY, 2, '0'))",
        ],
    );
    let s = serve_with_auth(dir);

    // Without credentials only the health checks answer; wrong ones are refused the same way.
    for path in ["/v1/sql", "/v1/tables", "/metrics", "/", "/v1/users"] {
        let (st, challenge, body) = call("GET", &format!("{}{path}", s.http), None, None);
        assert_eq!(st, 401, "{path}: {body}");
        assert!(challenge.is_some_and(|c| c.starts_with("Basic")), "{path}");
    }
    assert_eq!(
        call("GET", &format!("{}/v1/health", s.http), None, None).0,
        200
    );
    assert_eq!(sql(&s, ("basalt", "nope"), "SELECT 1").0, 401);
    assert_eq!(sql(&s, ("nobody", "nope"), "SELECT 1").0, 401);

    // The admin makes users and grants in SQL, over psql (SCRAM-SHA-256).
    let setup = [
        "CREATE USER ana WITH PASSWORD 'ana-pw' IN ROLE reader",
        "GRANT SELECT ON births TO reader",
        "CREATE USER wes WITH PASSWORD 'wes-pw'",
        "GRANT SELECT, INSERT ON flights TO wes",
    ];
    for q in setup {
        let out = psql_as(s.pg_port, ADMIN.0, ADMIN.1, q);
        assert!(
            out.status.success(),
            "{q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (_, total) = sql(&s, ADMIN, "SELECT COUNT(*) AS n FROM births");

    // ana reads births and nothing else, lists only births, and may write nothing.
    assert_eq!(
        sql(&s, ANA, "SELECT COUNT(*) AS n FROM births"),
        (200, total.clone())
    );
    let (st, body) = sql(&s, ANA, "SELECT COUNT(*) FROM flights");
    assert_eq!(st, 403, "{body}");
    assert!(
        body.contains("permission denied for table flights"),
        "{body}"
    );
    let (st, body) = sql(
        &s,
        ANA,
        "SELECT * FROM births JOIN flights ON births.state = flights.ORIGIN_AIRPORT LIMIT 1",
    );
    assert_eq!(st, 403, "a join reaches the ungranted table: {body}");
    let (_, listed) = sql(
        &s,
        ANA,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert_eq!(listed, "table_name\nbirths\n");
    let (_, _, tables) = call("GET", &format!("{}/v1/tables", s.http), Some(ANA), None);
    let names: Vec<String> = json(&tables)["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["births"]);
    let (st, _, _) = call(
        "GET",
        &format!("{}/v1/tables/flights", s.http),
        Some(ANA),
        None,
    );
    assert_eq!(st, 403);
    let load = |table: &str, who: (&str, &str)| {
        let url = format!(
            "{}/v1/tables/{table}/load?format=ndjson&time_column=ts",
            s.http
        );
        let row = "{\"ts\":\"2024-01-01T00:00:00Z\",\"ORIGIN_AIRPORT\":\"ZZZ\",\"DISTANCE\":1}\n";
        call("POST", &url, Some(who), Some(row))
    };
    assert_eq!(load("births", ANA).0, 403);
    assert_eq!(sql(&s, ANA, "DROP TABLE births").0, 403);
    assert_eq!(sql(&s, ANA, "CREATE USER mallory WITH PASSWORD 'x'").0, 403);
    assert_eq!(sql(&s, ANA, "GRANT admin TO ana").0, 403);
    assert_eq!(
        call("GET", &format!("{}/v1/users", s.http), Some(ANA), None).0,
        403
    );
    // The refused writes changed nothing.
    assert_eq!(
        sql(&s, ADMIN, "SELECT COUNT(*) AS n FROM births"),
        (200, total.clone())
    );

    // wes writes flights and reads it, but not births.
    let (_, before) = sql(&s, WES, "SELECT COUNT(*) AS n FROM flights");
    let (st, _, body) = load("flights", WES);
    assert_eq!(st, 200, "{body}");
    let (_, after) = sql(&s, WES, "SELECT COUNT(*) AS n FROM flights");
    let count = |csv: &str| csv.lines().nth(1).unwrap().parse::<i64>().unwrap();
    assert_eq!(count(&after), count(&before) + 1);
    assert_eq!(sql(&s, WES, "SELECT COUNT(*) FROM births").0, 403);
    assert_eq!(load("births", WES).0, 403);

    // psql: the same grants, PostgreSQL's SQLSTATE texts, and a wrong password refused as PostgreSQL does.
    let out = psql_as(s.pg_port, ANA.0, ANA.1, "SELECT COUNT(*) FROM flights");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("permission denied for table flights"), "{err}");
    let out = psql_as(s.pg_port, ANA.0, "wrong", "SELECT 1");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("password authentication failed for user \"ana\""),
        "{err}"
    );
    let out = psql_as(s.pg_port, ANA.0, ANA.1, "SELECT COUNT(*) FROM births");
    assert_eq!(psql_stdout(&out).trim(), total.lines().nth(1).unwrap());

    // psycopg, pydruid and requests (tokens, revocation on an open connection, Druid's error shapes).
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/auth_clients.py");
    let port = s.http.rsplit(':').next().unwrap().to_string();
    let out = Command::new("python3")
        .args(["-W", "ignore"])
        .arg(script)
        .args([&port, &s.pg_port.to_string(), ADMIN_PW])
        .arg(dataset("birth_names2.json.gz"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Users and grants are in the catalog: a restarted server knows them; a dropped user is refused at once.
    let mut s = s;
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    drop(s);
    let s = serve_with_auth(dir);
    assert_eq!(
        sql(&s, ANA, "SELECT COUNT(*) AS n FROM births"),
        (200, total)
    );
    assert_eq!(sql(&s, ADMIN, "DROP USER ana").0, 200);
    assert_eq!(sql(&s, ANA, "SELECT 1").0, 401);
    // The last admin cannot be dropped or demoted: the server must stay manageable.
    assert_eq!(sql(&s, ADMIN, "REVOKE admin FROM basalt").0, 400);
}

#[test]
fn a_server_with_auth_on_and_no_admin_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = basalt(&[
        "serve",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--http",
        "127.0.0.1:0",
        "--pg",
        "",
        "--set",
        "auth=true",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth_admin_password"), "{err}");
}

/// TLS with a certificate made at test time: HTTPS and PostgreSQL over TLS work with the certificate verified
/// (verify-full against it as the CA); plain HTTP and a PostgreSQL connection without TLS are refused, so no
/// password crosses in the clear.
#[test]
fn tls_on_both_ports_and_nothing_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let conf = dir.path().join("basalt.toml");
    std::fs::write(
        &conf,
        format!(
            "auth = true\nauth_admin_password = \"{ADMIN_PW}\"\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap().to_string();
    let s = serve_dir(dir, &["--config", &conf]);
    assert!(s.http.starts_with("https://"), "{}", s.http);
    let port = s.http.rsplit(':').next().unwrap().to_string();
    let cert = s.dir.path().join("cert.pem");

    // HTTPS through Python's requests, verifying the certificate; plain HTTP to the same port gets no answer.
    let probe = format!(
        r#"
import requests, sys
r = requests.post("https://localhost:{port}/v1/sql", json={{"query": "SELECT COUNT(*) AS n FROM births", "format": "csv"}},
                  auth=("basalt", "{ADMIN_PW}"), verify=sys.argv[1])
print(r.status_code, r.text.splitlines()[-1])
try:
    requests.post("http://localhost:{port}/v1/sql", json={{"query": "SELECT 1"}}, auth=("basalt", "{ADMIN_PW}"), timeout=5)
    print("plain http answered")
except requests.exceptions.RequestException:
    print("plain http refused")
"#
    );
    let out = Command::new("python3")
        .args(["-c", &probe])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("200 75691"));
    assert_eq!(lines.next(), Some("plain http refused"));

    // psql: verify-full against the certificate works; without TLS the server refuses before any password.
    let psql_with = |sslmode: &str| {
        let conn = format!(
            "host=localhost port={} user=basalt dbname=basalt sslmode={sslmode} sslrootcert={}",
            s.pg_port,
            cert.display()
        );
        Command::new("psql")
            .args(["-X", "-A", "-t", "-c", "SELECT COUNT(*) FROM births", &conn])
            .env("PGPASSWORD", ADMIN_PW)
            .output()
            .unwrap()
    };
    let out = psql_with("verify-full");
    assert_eq!(psql_stdout(&out).trim(), "75691");
    let out = psql_with("disable");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only TLS connections"), "{err}");
}

/// `sys.queries` lists running queries (a user sees its own, an admin all), `KILL QUERY 'id'` cancels one (the
/// owner's or an admin's kill; another user's is "not found"), and `sys.query_log` keeps what finished, with
/// statements that may hold a password logged without their text.
#[test]
fn running_queries_are_listed_and_killed_only_by_their_owner_or_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let s = serve_with_auth(dir);
    for q in [
        "CREATE USER ana WITH PASSWORD 'ana-pw' IN ROLE reader",
        "CREATE USER wes WITH PASSWORD 'wes-pw'",
    ] {
        assert_eq!(sql(&s, ADMIN, q).0, 200, "{q}");
    }
    // ana holds a query open over psql.
    let sleeper = Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &s.pg_port.to_string(),
            "-U",
            "ana",
            "-d",
            "basalt",
        ])
        .args(["-c", "SELECT pg_sleep(60)"])
        .env("PGPASSWORD", ANA.1)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let running =
        "SELECT query_id, \"user\", api FROM sys.queries WHERE sql = 'SELECT pg_sleep(60)'";
    let mut id = String::new();
    for _ in 0..100 {
        let (_, csv) = sql(&s, ADMIN, running);
        if let Some(row) = csv.lines().nth(1) {
            let cells: Vec<&str> = row.split(',').collect();
            assert_eq!(cells[1..], ["ana", "pg"], "{csv}");
            id = cells[0].to_string();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !id.is_empty(),
        "the sleeping query never showed in sys.queries"
    );
    // ana sees it; wes neither sees nor kills it.
    assert_eq!(sql(&s, ANA, running).1.lines().count(), 2);
    assert_eq!(
        sql(&s, WES, running).1.lines().count(),
        1,
        "only the header"
    );
    let (st, body) = sql(&s, WES, &format!("KILL QUERY '{id}'"));
    assert_eq!(st, 404, "{body}");
    // The admin kills it; ana's psql ends with PostgreSQL's cancel error.
    assert_eq!(sql(&s, ADMIN, &format!("KILL QUERY '{id}'")).0, 200);
    let out = sleeper.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cancel"), "{err}");
    // The log: ana's killed query with its error, and no password anywhere in the admin's view.
    let (_, log) = sql(
        &s,
        ANA,
        &format!("SELECT \"user\", error IS NOT NULL AS failed FROM sys.query_log WHERE query_id = '{id}'"),
    );
    assert_eq!(log, "user,failed\nana,true\n");
    let (_, all) = sql(&s, ADMIN, "SELECT sql FROM sys.query_log");
    assert!(all.contains("CREATE ROLE (text not kept"), "{all}");
    assert!(!all.contains("ana-pw") && !all.contains("wes-pw"), "{all}");
    let (_, _, listed) = call("GET", &format!("{}/v1/queries", s.http), Some(WES), None);
    let finished = json(&listed)["finished"].as_array().unwrap().clone();
    assert!(finished.iter().all(|q| q["user"] == "wes"), "{listed}");
}

/// Users of the config file (`[users.NAME]`): made at start with their roles and own grants, and reset to what
/// the file says at every start; `\du` and `pg_roles` list the real users and roles; a password taken from an
/// environment variable that is not set stops the start with a message naming it.
#[test]
fn config_file_users_are_made_at_start_and_listed_like_postgresql_roles() {
    let dir = tempfile::tempdir().unwrap();
    load_births(dir.path());
    let conf = dir.path().join("basalt.toml");
    std::fs::write(
        &conf,
        format!(
            r#"auth = true
auth_admin_password = "{ADMIN_PW}"

[users.grafana]
password_env = "GRAFANA_PW"
roles = ["reader"]
select = ["births"]

[users.loader]
password = "loader-pw"
roles = ["writer"]
insert = ["births"]
"#
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap().to_string();
    let data = dir.path().to_str().unwrap().to_string();
    let env = [("GRAFANA_PW", "grafana-pw")];
    let s = serve_dir_env(dir, &["--config", &conf], &env);
    // 75,691 rows: DuckDB over the raw births file.
    let grafana_counts_births = |s: &Served| {
        let out = psql_as(
            s.pg_port,
            "grafana",
            "grafana-pw",
            "SELECT COUNT(*) FROM births",
        );
        assert_eq!(psql_stdout(&out).trim(), "75691");
    };
    grafana_counts_births(&s);
    let out = psql_as(s.pg_port, "grafana", "wrong", "SELECT 1");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("password authentication failed"), "{err}");
    // The writer may load but not read.
    let (st, body) = sql(&s, ("loader", "loader-pw"), "SELECT COUNT(*) FROM births");
    assert_eq!(st, 403, "{body}");

    // pg_roles as PostgreSQL lists roles: users log in, built-in roles do not; admins are superusers.
    let out = psql_as(
        s.pg_port,
        "grafana",
        "grafana-pw",
        "SELECT rolname, rolsuper, rolcanlogin FROM pg_roles ORDER BY rolname",
    );
    assert_eq!(
        psql_stdout(&out).trim(),
        "admin|t|f\nbasalt|t|t\ngrafana|f|t\nloader|f|t\nreader|f|f\nwriter|f|f"
    );
    let out = psql_as(s.pg_port, "basalt", ADMIN_PW, "\\du");
    let du = psql_stdout(&out);
    let line = |name: &str| {
        du.lines()
            .find(|l| l.starts_with(&format!("{name}|")))
            .unwrap_or_else(|| panic!("no {name} in {du}"))
            .to_string()
    };
    assert!(line("basalt").contains("Superuser"), "{du}");
    assert!(line("grafana").contains("reader"), "{du}");
    assert!(!line("grafana").contains("Superuser"), "{du}");
    assert!(line("writer").contains("Cannot login"), "{du}");

    // A change made at run time lasts until the next start, which resets the user to the file.
    let out = psql_as(s.pg_port, "basalt", ADMIN_PW, "GRANT admin TO grafana");
    psql_stdout(&out);
    let users = format!("{}/v1/users", s.http);
    assert_eq!(
        call("GET", &users, Some(("grafana", "grafana-pw")), None).0,
        200
    );
    let out = psql_as(
        s.pg_port,
        "basalt",
        ADMIN_PW,
        "ALTER USER loader WITH PASSWORD 'changed'",
    );
    psql_stdout(&out);
    let mut s = s;
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    drop(s);

    // Without the environment variable the server does not start, and says which variable is missing.
    let out = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args([
            "serve",
            "--data-dir",
            &data,
            "--config",
            &conf,
            "--http",
            "127.0.0.1:0",
            "--pg",
            "",
        ])
        .env_remove("GRAFANA_PW")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GRAFANA_PW") && err.contains("grafana"),
        "{err}"
    );

    let s = serve_dir_env(dir, &["--config", &conf], &env);
    let users = format!("{}/v1/users", s.http);
    assert_eq!(
        call("GET", &users, Some(("grafana", "grafana-pw")), None).0,
        403
    );
    let out = psql_as(s.pg_port, "loader", "loader-pw", "SELECT 1");
    assert_eq!(psql_stdout(&out).trim(), "1", "the file's password is back");
    let out = psql_as(s.pg_port, "loader", "changed", "SELECT 1");
    assert!(!out.status.success());
    grafana_counts_births(&s);
}
