#!/usr/bin/env python3
"""Cold and warm deep storage against local segments (issue: deep storage): the dashboard suite (queries.py)
over one Parquet file loaded twice, into a plain data directory and into one whose segments live in deep
storage. For each query: the median of --runs on the local directory; then, on the deep-storage directory with
its local segment files wiped and the server restarted, the first run (cold: every segment the query needs is
downloaded and checked) and the median of --runs after it (warm: the local cache holds them). Answers are
compared with the local directory's. Prints per-query milliseconds, the ratios cold/local and warm/local, and
their geometric means.

    python3 benches/peer/cold.py --parquet ev.parquet [--basalt target/release/basalt] [--runs 5]
        [--store file|s3]

`--store file` (default) keeps the objects in a local directory through object_store's file system store: the
download and verification path without a network. `--store s3` starts moto's S3 server on loopback
(`pip install 'moto[server]'`): a real S3 API over HTTP, though moto itself (Python) is far slower than S3.
"""
import argparse
import http.client
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from queries import QUERIES  # noqa: E402

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, basalt, data, env):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [basalt, "serve", "--data-dir", data, "--http", f"127.0.0.1:{self.port}", "--pg", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        for _ in range(300):
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                self.conn.request("GET", "/v1/ready")
                self.conn.getresponse().read()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("basalt serve did not answer on /v1/ready")

    def query(self, sql):
        t = time.perf_counter()
        self.conn.request("POST", "/v1/sql", json.dumps({"query": sql, "context": {"cache": False}}), {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        body = resp.read()
        ms = (time.perf_counter() - t) * 1000
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status} for {sql!r}: {body[:300]!r}")
        return ms, json.loads(body)["rows"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parquet", required=True)
    ap.add_argument("--basalt", default="target/release/basalt")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--store", choices=["file", "s3"], default="file")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="basalt-cold-")
    env = dict(os.environ, **CREDENTIALS)
    moto = None
    try:
        local, deep = os.path.join(work, "local"), os.path.join(work, "deep")
        if a.store == "s3":
            port = free_port()
            moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            endpoint = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/bench", method="PUT"))
                    break
                except OSError:
                    time.sleep(0.2)
            store = ["--deep-storage", "s3://bench/cold", "--deep-storage-endpoint", endpoint]
        else:
            store = ["--deep-storage", "file://" + os.path.join(work, "store")]
        load = ["load", "--table", "events", "--time-column", "ts", "--max-bytes-in-memory", str(1 << 30)]
        for data, extra in [(local, []), (deep, store)]:
            t = time.perf_counter()
            subprocess.run([a.basalt, load[0], "--data-dir", data, *extra, *load[1:], a.parquet],
                           check=True, stdout=subprocess.DEVNULL, env=env)
            print(f"loaded {os.path.basename(data)} in {time.perf_counter() - t:.1f} s", file=sys.stderr)

        results = {}
        server = Server(a.basalt, local, env)
        for q in QUERIES:
            server.query(q["sql"])
            times = [server.query(q["sql"])[0] for _ in range(a.runs)]
            results[q["name"]] = {"local": statistics.median(times), "rows": server.query(q["sql"])[1]}
        server.stop()

        for q in QUERIES:
            shutil.rmtree(os.path.join(deep, "tables"), ignore_errors=True)
            server = Server(a.basalt, deep, env)
            cold, rows = server.query(q["sql"])
            warm = [server.query(q["sql"])[0] for _ in range(a.runs)]
            server.stop()
            r = results[q["name"]]
            if rows != r["rows"]:
                raise SystemExit(f"{q['name']}: deep storage answered {rows[:3]!r}, local {r['rows'][:3]!r}")
            r["cold"], r["warm"] = cold, statistics.median(warm)

        print(f"| query | local ms | cold ms | warm ms | cold / local | warm / local |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in results.items():
            print(f"| {name} | {r['local']:.1f} | {r['cold']:.1f} | {r['warm']:.1f} | "
                  f"{r['cold'] / r['local']:.2f} | {r['warm'] / r['local']:.2f} |")
        cold = geomean([r["cold"] / r["local"] for r in results.values()])
        warm = geomean([r["warm"] / r["local"] for r in results.values()])
        print(f"\ngeometric mean ({a.store} store, {a.runs} runs): cold / local {cold:.2f}, warm / local {warm:.2f}")
    finally:
        if moto:
            moto.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
