#!/usr/bin/env python3
"""Growth benchmark (issue 10, items 13 and 14): how a page of calls and an agent create cost
as one org grows.

Starts `BIN dev` on a fresh data directory (simulated carrier), and measures over HTTP:
- agent creates with a 60 KB prompt (20,000 three-byte characters): latency of the first
  creates and of the last ones up to 60 agents, and the data directory's size after 1 and 60;
- `GET /v1/calls?limit=50` at 1,000 and at 20,000 calls of one org (busy calls, which end at
  once), p50/p90 of repeated reads;
- `GET /v1/agents` of another org of the same partition while four clients list those calls
  (a query of one org holding up the requests of others).

Usage: tests/bench/growth.py BIN [--calls 1000,20000] [--agents 60] [--reads 200]
Run it for two binaries in turn (a baseline built from the old sources, then the new one) on
the same machine, and compare the medians.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

TOKEN = "bench-admin-token-0123456789"


class Client:
    def __init__(self, base, token):
        self.base, self.token = base, token

    def call(self, method, path, body=None, token=None):
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", "Bearer " + (token or self.token))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = response.read()
                status = response.status
        except urllib.error.HTTPError as e:
            payload, status = e.read(), e.code
        elapsed = time.perf_counter() - started
        return status, (json.loads(payload) if payload else None), elapsed


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def ms(seconds):
    return f"{seconds * 1000:8.2f} ms"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin")
    parser.add_argument("--calls", default="1000,20000")
    parser.add_argument("--agents", type=int, default=60)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="sb-growth-")
    env = dict(os.environ, SWITCHBOARD_ADMIN_TOKEN=TOKEN, RUST_LOG="warn")
    server = subprocess.Popen(
        [args.bin, "dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--sim-ring-ms", "5",
         "--sim-talk-ms", "5"],
        stdout=subprocess.PIPE, env=env, text=True)
    try:
        # Other lines may come first (the secrets key a new data directory is given).
        line = ""
        while not line.startswith("switchboard listening on "):
            line = server.stdout.readline()
            if not line:
                raise SystemExit("the server exited before it listened")
        base = line.strip().rsplit(" ", 1)[-1]
        admin = Client(base, TOKEN)
        print(f"binary {args.bin}, data dir {data_dir}")
        agents_bench(admin, data_dir, args.agents)
        calls_bench(admin, [int(n) for n in args.calls.split(",")], args.reads, args.concurrency)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def new_org(admin, name):
    _, org, _ = admin.call("POST", "/admin/v1/orgs", {"name": name})
    _, key, _ = admin.call("POST", f"/admin/v1/orgs/{org['id']}/keys", {"name": "bench"})
    admin.call("PATCH", f"/admin/v1/orgs/{org['id']}", {"rate_limit_per_second": 100000})
    return org["id"], Client(admin.base, key["key"])


def agents_bench(admin, data_dir, agents):
    _, client = new_org(admin, "agents")
    prompt = "\u20ac" * 20_000  # 60,000 bytes of UTF-8
    before = dir_bytes(data_dir)
    latencies = []
    sizes = {}
    for i in range(agents):
        status, body, elapsed = client.call("POST", "/v1/agents", {"name": f"agent {i}", "prompt": prompt})
        assert status == 201, (status, body)
        latencies.append(elapsed)
        if i + 1 in (1, agents):
            sizes[i + 1] = dir_bytes(data_dir)
    first, last = latencies[:5], latencies[-5:]
    print(f"agent create, 60 KB prompt: p50 of creates 1-5 {ms(statistics.median(first))}, "
          f"of creates {agents - 4}-{agents} {ms(statistics.median(last))}")
    print(f"data dir: before {before / 1e6:.2f} MB, after 1 agent {sizes[1] / 1e6:.2f} MB, "
          f"after {agents} agents {sizes[agents] / 1e6:.2f} MB")
    status, body, elapsed = client.call("GET", f"/v1/agents/{body['id']}")
    reads = [client.call("GET", f"/v1/agents/{body['id']}")[2] for _ in range(50)]
    print(f"GET /v1/agents/{{id}} at {agents} agents: p50 {ms(statistics.median(reads))}")


def calls_bench(admin, stops, reads, concurrency):
    org, client = new_org(admin, "calls")
    # Org ids are numbered in turn and partitions are `org % 64`: this one shares the partition.
    neighbour = None
    for _ in range(64):
        other, other_client = new_org(admin, "neighbour")
        if other % 64 == org % 64:
            neighbour = other_client
            break
    # Funds for every call's reservation (busy calls are voided, not charged).
    admin.call("POST", f"/admin/v1/orgs/{org}/credits", {"amount_cents": 100_000_000, "reference": "bench"})
    _, agent, _ = client.call("POST", "/v1/agents", {"name": "caller"})
    _, conn, _ = client.call("POST", "/v1/voip-connections", {"provider": "sim"})
    client.call("POST", f"/v1/voip-connections/{conn['id']}/verify")
    client.call("POST", "/v1/phone-numbers", {"number": "+14155550100", "voip_connection_id": conn["id"],
                                              "outbound_agent_id": agent["id"]})

    def place(_):
        # A busy destination: the call is placed and ends at once, so calls pile up as history.
        status, _, _ = client.call("POST", "/v1/call", {"from_number": "+14155550100", "to_number": "+15550000486"})
        return status

    placed = 0
    for stop in stops:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            statuses = list(pool.map(place, range(stop - placed)))
        bad = [s for s in statuses if s != 201]
        assert not bad, f"{len(bad)} calls not placed: {bad[:5]}"
        print(f"placed {stop - placed} calls in {time.perf_counter() - started:.1f} s")
        placed = stop
        # Let the busy calls end, so the page reads a settled history.
        time.sleep(2)
        status, page, _ = client.call("GET", "/v1/calls?limit=50")
        assert status == 200 and page["total"] == stop, (status, page and page.get("total"))
        latencies = [client.call("GET", "/v1/calls?limit=50")[2] for _ in range(reads)]
        filtered = [client.call("GET", "/v1/calls?limit=50&status=failed")[2] for _ in range(reads // 4)]
        print(f"GET /v1/calls?limit=50 at {stop} calls: p50 {ms(statistics.median(latencies))}, "
              f"p90 {ms(pct(latencies, 0.9))}; ?status=failed p50 {ms(statistics.median(filtered))}")
        if neighbour is not None:
            done = []

            def lister(_):
                while not done:
                    client.call("GET", "/v1/calls?limit=50")

            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                for i in range(4):
                    pool.submit(lister, i)
                time.sleep(0.5)
                beside = [neighbour.call("GET", "/v1/agents")[2] for _ in range(max(10, reads // 4))]
                done.append(True)
            print(f"  GET /v1/agents of another org of the partition meanwhile: p50 {ms(statistics.median(beside))}, "
                  f"p90 {ms(pct(beside, 0.9))}")


if __name__ == "__main__":
    main()
