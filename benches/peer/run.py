#!/usr/bin/env python3
"""The peer benchmark (issue: benchmarks): one Parquet file loaded into basalt (bulk loader), DuckDB (native
table) and ClickHouse (chdb, a MergeTree table ordered by time with LowCardinality strings), the dashboard suite
(queries.py) run warm on each (one warm-up, then the median of --runs), the engines' answers compared, and one
table printed: median ms per query and engine, basalt's ratio to the best peer, the geometric mean, load time
and rows/s, size on disk and peak memory, with the machine it ran on.

    python3 benches/peer/run.py --parquet ev.parquet [--basalt target/release/basalt] [--runs 5]
        [--engines basalt,duckdb,clickhouse] [--baseline old/basalt] [--markdown] [--json results.json]

Each engine runs in its own child process (so peak memory is per engine), and the children load one after the
other (so no load competes with another for cores). Queries are then interleaved: for each query, every round
(one warm-up, then --runs timed ones) asks each engine in turn, in a rotating order, and only one engine works
at a time. On a shared machine whose speed drifts over minutes, this gives each engine the same conditions for
the same query; running one engine's whole suite after another's let a slow stretch of the machine land on one
engine only. basalt is queried through `basalt serve`'s HTTP API (`POST /v1/sql`, JSON rows), as a dashboard
would; DuckDB and chdb run in-process in their child, which times each query and answers over a pipe. No engine
has a result cache on (basalt's is turned off per query, `"context": {"cache": false}`; DuckDB has none;
ClickHouse's query cache is off unless asked for), except the opt-in engine `cached`: basalt with its result cache,
as a dashboard's refresh sees it (warm-up fills the cache, the timed runs are answered from it). Exit
status 1 when the engines disagree, so the test suite runs this on a small file as its check that the runner
works.

`--baseline BIN` adds another basalt build (say, the commit before a refactoring) as one more engine,
`baseline`, loaded and queried interleaved with the others, and a column `basalt / baseline`: a before/after
comparison measured in one run.
"""
import argparse
import datetime
import http.client
import json
import math
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from queries import EXACT, QUERIES  # noqa: E402

ENGINES = ["basalt", "duckdb", "clickhouse", "baseline", "cached"]
# What --engines names by default; `baseline` comes only with --baseline, `cached` only when named.
PEERS_AND_BASALT = ["basalt", "duckdb", "clickhouse"]
OPT_IN = ["cached"]
LOW_CARDINALITY = ["country", "city", "device", "os", "browser", "referrer", "event_type"]


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def self_peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------- engines ---


def open_duckdb(a, work):
    """Loads the file; returns (load info, run(query) -> rows, finish() -> info at the end)."""
    import duckdb

    con = duckdb.connect(os.path.join(work, "bench.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    t = time.perf_counter()
    con.execute(
        "CREATE TABLE events AS SELECT * REPLACE (CAST(ts AS TIMESTAMP) AS ts) "
        f"FROM read_parquet('{a.parquet}')"
    )
    con.execute("CHECKPOINT")
    load_s = time.perf_counter() - t
    info = {"load_s": load_s, "disk_bytes": os.path.getsize(os.path.join(work, "bench.duckdb"))}

    def finish():
        return {
            "peak_mib": self_peak_mib(),
            # The exact answers that approximate queries are checked against (untimed).
            "exact": {
                q["name"]: [[norm(v) for v in r] for r in con.execute(q["exact"]).fetchall()]
                for q in QUERIES
                if "exact" in q
            },
            "version": duckdb.__version__,
        }

    return info, lambda q: con.execute(q["sql"]).fetchall(), finish


def open_clickhouse(a, work):
    import chdb
    from chdb import session

    s = session.Session(os.path.join(work, "chdb"))

    def q(sql, fmt="JSONCompact"):
        r = s.query(sql + " SETTINGS output_format_json_quote_64bit_integers = 0, use_query_cache = 0", fmt)
        return json.loads(r.bytes() or b"{}") if fmt == "JSONCompact" else r

    cols = ", ".join(
        f"{c} LowCardinality(String)" if c in LOW_CARDINALITY else f"{c} String"
        for c in ["country", "city", "device", "os", "browser", "path", "referrer", "user_id", "event_type"]
    )
    s.query("CREATE DATABASE IF NOT EXISTS bench")
    s.query("USE bench")
    s.query(
        f"CREATE TABLE events (ts DateTime64(3, 'UTC'), {cols}, status Int64, latency_ms Float64, bytes Int64, "
        "revenue Float64, is_bot Int64) ENGINE = MergeTree ORDER BY ts"
    )
    t = time.perf_counter()
    s.query(f"INSERT INTO events SELECT * FROM file('{a.parquet}', Parquet)")
    s.query("OPTIMIZE TABLE events FINAL")
    load_s = time.perf_counter() - t
    disk = q("SELECT sum(bytes_on_disk) FROM system.parts WHERE table = 'events' AND active")["data"][0][0]
    info = {"load_s": load_s, "disk_bytes": int(disk)}

    def finish():
        version = q("SELECT version()")["data"][0][0]
        return {"peak_mib": self_peak_mib(), "version": f"{chdb.__version__} (ClickHouse {version})"}

    return info, lambda query: q(query.get("clickhouse", query["sql"]))["data"], finish


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def open_basalt(a, work):
    data = os.path.join(work, "basalt")
    t = time.perf_counter()
    subprocess.run(
        # A 1 GiB loader budget (DuckDB and ClickHouse use most of the machine's memory when they load): with the
        # default 256 MiB the loader writes segments of ~400K rows of this schema, with 1 GiB one per day.
        [a.basalt, "load", "--data-dir", data, "--table", "events", "--time-column", "ts",
         "--max-bytes-in-memory", str(1 << 30), a.parquet],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    load_s = time.perf_counter() - t
    load_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    port = free_port()
    server = subprocess.Popen(
        [a.basalt, "serve", "--data-dir", data, "--http", f"127.0.0.1:{port}", "--pg", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        conn = None
        for _ in range(300):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                conn.request("GET", "/v1/ready")
                if conn.getresponse().read() and True:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("basalt serve did not answer on /v1/ready")
    except BaseException:
        server.terminate()
        raise

    cache = a.worker == "cached"

    def query(q):
        sql = q["sql"]
        body = {"query": sql, "format": "json", "context": {"cache": cache}}
        conn.request("POST", "/v1/sql", json.dumps(body),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"basalt: HTTP {resp.status} for {sql!r}: {body[:500]!r}")
        return json.loads(body)["rows"]

    def finish():
        try:
            with open(f"/proc/{server.pid}/status") as f:
                hwm = next(line for line in f if line.startswith("VmHWM:"))
            version = subprocess.run([a.basalt, "--version"], capture_output=True, text=True).stdout.strip()
            return {"peak_mib": int(hwm.split()[1]) / 1024, "load_peak_mib": load_peak, "version": version}
        finally:
            server.terminate()
            server.wait()

    info = {"load_s": load_s, "disk_bytes": dir_bytes(data)}
    return info, query, finish


def worker(a, work, proto_out):
    """A child's side of the pipe: load, say so, then answer one command per line until `finish`."""
    info, run, finish = OPENERS[a.worker](a, work)
    by_name = {q["name"]: q for q in QUERIES}

    def say(obj):
        proto_out.write(json.dumps(obj) + "\n")
        proto_out.flush()

    say(info)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "query":
            q = by_name[cmd["name"]]
            t = time.perf_counter()
            rows = run(q)
            ms = (time.perf_counter() - t) * 1000
            say({"ms": ms, "rows": [[norm(v) for v in r] for r in rows]})
        elif cmd["cmd"] == "finish":
            say(finish())
            return
    # The runner went away without `finish` (it failed): stop the engine all the same.
    finish()


OPENERS = {
    "basalt": open_basalt,
    "duckdb": open_duckdb,
    "clickhouse": open_clickhouse,
    "baseline": open_basalt,
    "cached": open_basalt,
}

# ------------------------------------------------------------------------------------------- comparing ---

TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|\+00:00)?$")


def norm(v):
    """A value in a form every engine's answer reduces to: numbers as float, times as epoch milliseconds."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return v.timestamp() * 1000
    if isinstance(v, datetime.date):
        return norm(datetime.datetime(v.year, v.month, v.day))
    if hasattr(v, "as_integer_ratio"):  # Decimal
        return float(v)
    if isinstance(v, str) and TIME_RE.match(v):
        s = v.replace("Z", "+00:00").replace(" ", "T")
        return norm(datetime.datetime.fromisoformat(s))
    return v


def close(x, y, tol):
    if isinstance(x, float) and isinstance(y, float):
        if math.isnan(x) or math.isnan(y):
            return math.isnan(x) and math.isnan(y)
        return abs(x - y) <= tol * max(abs(x), abs(y), 1e-300) or x == y
    return x == y


def disagreement(rows, ref, tol):
    """None when `rows` equals `ref` (same order, numbers within `tol`), else what differs first."""
    if len(rows) != len(ref):
        return f"{len(rows)} rows, expected {len(ref)}"
    for i, (r, e) in enumerate(zip(rows, ref)):
        if len(r) != len(e) or not all(close(x, y, tol) for x, y in zip(r, e)):
            return f"row {i}: {r} vs {e}"
    return None


# --------------------------------------------------------------------------------------------- reporting ---


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {mem:.0f} GiB, {cpu}"


def report(results, rows, parquet, markdown):
    engines = [e for e in ENGINES if e in results]
    peers = [e for e in engines if e not in ("basalt", "baseline", "cached")]
    versus_base = "basalt" in results and "baseline" in results
    versus_cached = "basalt" in results and "cached" in results
    lines = []
    sep = " | " if markdown else "  "
    head = ["query"] + [f"{e} ms" for e in engines]
    if "basalt" in results and peers:
        head.append("basalt / best peer")
    if versus_base:
        head.append("basalt / baseline")
    if versus_cached:
        head.append("cached / basalt")
    lines.append(sep.join(head))
    if markdown:
        lines[0] = f"| {lines[0]} |"
        lines.append("|---" + "|---:" * (len(head) - 1) + "|")
    ratios = []
    base_ratios = []
    cached_ratios = []
    for q in QUERIES:
        cells = [q["name"]] + [f"{results[e]['queries'][q['name']]['ms']:.1f}" for e in engines]
        if "basalt" in results and peers:
            best = min(results[e]["queries"][q["name"]]["ms"] for e in peers)
            ratio = results["basalt"]["queries"][q["name"]]["ms"] / best
            ratios.append(ratio)
            cells.append(f"{ratio:.2f}")
        if versus_base:
            ratio = results["basalt"]["queries"][q["name"]]["ms"] / results["baseline"]["queries"][q["name"]]["ms"]
            base_ratios.append(ratio)
            cells.append(f"{ratio:.2f}")
        if versus_cached:
            ratio = results["cached"]["queries"][q["name"]]["ms"] / results["basalt"]["queries"][q["name"]]["ms"]
            cached_ratios.append(ratio)
            cells.append(f"{ratio:.2f}")
        lines.append(f"| {sep.join(cells)} |" if markdown else sep.join(cells))
    if ratios or base_ratios or cached_ratios:
        cells = ["**geometric mean**" if markdown else "geometric mean"] + [""] * len(engines)
        cells += [f"{statistics.geometric_mean(r):.2f}" for r in (ratios, base_ratios, cached_ratios) if r]
        lines.append(f"| {sep.join(cells)} |" if markdown else sep.join(cells))
    lines.append("")
    mb = os.path.getsize(parquet) / 2**20
    lines.append(f"rows {rows:,}; input {mb:.1f} MiB of zstd Parquet; machine: {machine()}")
    for e in engines:
        r = results[e]
        extra = f", loader peak {r['load_peak_mib']:.0f} MiB" if "load_peak_mib" in r else ""
        lines.append(
            f"- {e} {r['version']}: load {r['load_s']:.2f} s ({rows / r['load_s']:,.0f} rows/s), "
            f"on disk {r['disk_bytes'] / 2**20:.1f} MiB, peak RSS {r['peak_mib']:.0f} MiB{extra}"
        )
    return "\n".join(lines)


def ask(child, cmd):
    """Sends `cmd` (None: only reads) to a worker and returns its one-line answer."""
    if cmd is not None:
        child.stdin.write(json.dumps(cmd) + "\n")
        child.stdin.flush()
    line = child.stdout.readline()
    if not line:
        raise RuntimeError(f"a benchmark worker ended (exit status {child.wait()}); its stderr is above")
    return json.loads(line)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parquet", required=True)
    ap.add_argument("--basalt", default="target/release/basalt")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--engines", default=",".join(PEERS_AND_BASALT))
    ap.add_argument("--baseline", help="another basalt binary, queried as the engine `baseline`")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", help="also write every engine's timings and answers here")
    ap.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.parquet = os.path.abspath(a.parquet)
    a.basalt = os.path.abspath(a.basalt)
    if a.baseline:
        a.baseline = os.path.abspath(a.baseline)

    if a.worker:
        # The protocol keeps the original stdout; anything the engines print goes to stderr.
        proto_out = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        work = tempfile.mkdtemp(prefix=f"bench-{a.worker}-")
        try:
            worker(a, work, proto_out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0

    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    unknown = set(engines) - set(PEERS_AND_BASALT) - set(OPT_IN)
    if a.baseline:
        engines.append("baseline")
    if unknown:
        ap.error(f"unknown engines {sorted(unknown)} (basalt, duckdb, clickhouse, cached; baseline via --baseline)")
    results = {}
    children = {}
    try:
        for e in engines:
            print(f"loading {e} ...", file=sys.stderr, flush=True)
            child = subprocess.Popen(
                [sys.executable, __file__, "--worker", e, "--parquet", a.parquet,
                 "--basalt", a.baseline if e == "baseline" else a.basalt],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            children[e] = child
            results[e] = dict(ask(child, None), queries={})

        print(f"querying {', '.join(engines)}, interleaved ...", file=sys.stderr, flush=True)
        for q in QUERIES:
            times = {e: [] for e in engines}
            for round_no in range(a.runs + 1):
                shift = round_no % len(engines)
                for e in engines[shift:] + engines[:shift]:
                    answer = ask(children[e], {"cmd": "query", "name": q["name"]})
                    if round_no > 0:  # round 0 is the warm-up
                        times[e].append(answer["ms"])
                    results[e]["queries"][q["name"]] = {"rows": answer["rows"]}
            for e in engines:
                results[e]["queries"][q["name"]]["ms"] = statistics.median(times[e])
        for e in engines:
            results[e].update(ask(children[e], {"cmd": "finish"}))
    finally:
        for child in children.values():
            # A finished worker removes its engine's files on the way out: give it the time (killing it at
            # once left DuckDB's and ClickHouse's copies of the data behind in the temporary directory).
            if child.stdin:
                child.stdin.close()
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    import duckdb

    rows = duckdb.connect().execute(f"SELECT COUNT(*) FROM read_parquet('{a.parquet}')").fetchone()[0]
    print(report(results, rows, a.parquet, a.markdown))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)

    failures = []
    ref = engines[0] if "duckdb" not in engines else "duckdb"
    for q in QUERIES:
        exact = results[ref].get("exact", {}).get(q["name"])
        for e in engines:
            if exact is not None:
                want, what = exact, "the exact answer"
            elif e == ref:
                continue
            else:
                want, what = results[ref]["queries"][q["name"]]["rows"], ref
            why = disagreement(results[e]["queries"][q["name"]]["rows"], want, q.get("tol", EXACT))
            if why:
                failures.append(f"{q['name']}: {e} disagrees with {what}: {why}")
    for f in failures:
        print("DISAGREE", f)
    if not failures and len(engines) > 1:
        print(f"all {len(QUERIES)} answers agree across {', '.join(engines)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
