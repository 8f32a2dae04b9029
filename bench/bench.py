#!/usr/bin/python3
"""connrt benchmarks: measures connrt side by side with curl, lua5.4 and Python's
requests-oauthlib in one run and writes bench/RESULTS.md.

Run by `make bench` (not by `make test`). BENCH_QUICK=1 runs every benchmark with small
counts, to check the suite itself quickly; its numbers are not the results.
BENCH_ONLY=postgres runs section 9 alone (the PostgreSQL store), BENCH_ONLY=proxy section 8
alone (connrt proxy), and each rewrites only its section and its target rows in the
existing RESULTS.md.

Every comparison runs A and B interleaved (A B, B A, A B, ...) so that drift in the
machine's speed falls on both; ratios are computed pair by pair, and every figure is
reported as the median with min and max.
"""
import json
import urllib.parse
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONNRT = os.path.join(ROOT, "build", "connrt")
TLS = os.path.join(ROOT, "spec", "fixtures", "tls")  # the specs' test CA; server.pem names localhost
QUICK = bool(os.environ.get("BENCH_QUICK"))
N_CALLS = 20 if QUICK else 200
N_THROUGHPUT = 500 if QUICK else 10000
N_STORM = 50
STORE_SIZES = (10, 1000, 10000) if QUICK else (10, 1000, 100000)
N_STARTUP = 20 if QUICK else 200
N_PROXY = 50 if QUICK else 500
WRK_SECONDS = 2 if QUICK else 5  # one wrk run; WRK_ROUNDS of each, interleaved
WRK_ROUNDS = 1 if QUICK else 3
N_PG_TOKEN = 20 if QUICK else 100
N_PG_STORM = 60  # three groups of 20, each its own CONNRT_HOME (a host)
N_PG_LIST = 10000 if QUICK else 100000
ONLY = os.environ.get("BENCH_ONLY", "")
if ONLY not in ("", "postgres", "proxy"):
    sys.exit(f"bench: BENCH_ONLY={ONLY}: the sections that run alone are postgres and proxy")
DEVNULL = os.open(os.devnull, os.O_RDWR)


def which(name):
    path = shutil.which(name)
    if not path:
        sys.exit(f"bench: {name} not found")
    return path


def run_measured(argv, env=None):
    """Runs argv once with output discarded: (seconds, peak RSS in KiB, exit code)."""
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env or os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, DEVNULL, 0),
                                       (os.POSIX_SPAWN_DUP2, DEVNULL, 1),
                                       (os.POSIX_SPAWN_DUP2, DEVNULL, 2)])
    _, status, usage = os.wait4(pid, 0)
    return time.perf_counter() - t0, usage.ru_maxrss, os.waitstatus_to_exitcode(status)


def run_json(argv, **kw):
    """Runs a helper that prints one JSON object; stops the suite with its stderr if it fails."""
    out = subprocess.run(argv, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        sys.exit(f"bench: {' '.join(argv[:3])} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def interleaved(commands, n, env=None):
    """Runs each command n times, interleaved and alternating order. Returns per command
    lists of seconds and RSS, and checks every run succeeded."""
    times = {k: [] for k in commands}
    rss = {k: [] for k in commands}
    keys = list(commands)
    for i in range(n):
        order = keys if i % 2 == 0 else list(reversed(keys))
        for k in order:
            dt, kb, code = run_measured(commands[k], env)
            if code != 0:
                sys.exit(f"bench: {k} failed with exit {code}: {' '.join(commands[k])}")
            times[k].append(dt)
            rss[k].append(kb)
    return times, rss


def pair_ratios(a, b):
    return [x / y for x, y in zip(a, b)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


class Services:
    """The authorization server (oidc-provider, as the specs run it) and nginx."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.redirect = f"http://127.0.0.1:{free_port()}/callback"

    def oidc(self, *args):
        p = subprocess.Popen(["node", "spec/support/oidc-server.mjs", "--port", "0", "--redirect", self.redirect, *args],
                             cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return json.loads(p.stdout.readline())["issuer"]

    def nginx(self):
        www = os.path.join(self.tmp, "www")
        os.makedirs(www)
        os.chmod(self.tmp, 0o755)
        with open(os.path.join(www, "data.json"), "w") as f:
            json.dump({"id": 1, "name": "benchmark", "items": list(range(20))}, f)
        port, tls_port, rp_port = free_port(), free_port(), free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1; daemon off; pid {self.tmp}/nginx.pid; error_log {self.tmp}/nginx.err;
user root;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 100000;
  client_body_temp_path {self.tmp}/nginx-body; proxy_temp_path {self.tmp}/nginx-proxy;
  fastcgi_temp_path {self.tmp}/nginx-fastcgi; uwsgi_temp_path {self.tmp}/nginx-uwsgi; scgi_temp_path {self.tmp}/nginx-scgi;
  server {{ listen 127.0.0.1:{port}; listen unix:{self.tmp}/nginx.sock;
    location / {{ root {www}; default_type application/json; }} }}
  server {{ listen 127.0.0.1:{tls_port} ssl; ssl_certificate {TLS}/server.pem; ssl_certificate_key {TLS}/server.key;
    location / {{ root {www}; default_type application/json; }} }}
  upstream tls_api {{ server 127.0.0.1:{tls_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{rp_port};
    location / {{ proxy_pass https://tls_api; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_name localhost; proxy_ssl_server_name on; proxy_ssl_verify on;
      proxy_ssl_trusted_certificate {TLS}/ca.pem; proxy_ssl_session_reuse on; }} }} }}
""")
        # the peer for the proxy's throughput: nginx itself as a keep-alive reverse proxy
        # to the same TLS server, on the same cores
        self.reverse_proxy = f"http://127.0.0.1:{rp_port}"
        self.tls_base = f"https://localhost:{tls_port}"
        self.unix_sock = os.path.join(self.tmp, "nginx.sock")
        p = subprocess.Popen([which("nginx"), "-c", conf, "-p", self.tmp], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                http_json(base + "/data.json")
                return base
            except OSError:
                time.sleep(0.05)
        sys.exit("bench: nginx did not start")

    def stop(self):
        for p in self.procs:
            p.terminate()
            p.wait()


def connect(home, issuer, api, extra=None):
    env = dict(os.environ, CONNRT_HOME=home, CONNRT_REDIRECT_URL=SERVICES.redirect,
               CONNRT_BROWSER=f"{CONNRT} script {ROOT}/spec/support/browser.lua", SIGNIN_USER="john",
               CONNRT_CLIENT_SECRET="basic-secret", **(extra or {}))
    out = subprocess.run([CONNRT, "run", "bench/connector.lua", "--client-id", "connrt-basic", "--json",
                          "--field", f"server={issuer}", "--field", f"api={api}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["id"]


def fmt(s, unit="ms", scale=1000.0):
    return f"{s['median'] * scale:.2f} {unit} (min {s['min'] * scale:.2f}, max {s['max'] * scale:.2f})"


def main():
    global SERVICES
    tmp = tempfile.mkdtemp(prefix="connrt-bench-")
    SERVICES = Services(tmp)
    results = {}
    try:
        issuer = SERVICES.oidc()
        api = SERVICES.nginx()
        url = api + "/data.json"
        home = os.path.join(tmp, "home")
        conn = connect(home, issuer, api)
        env = dict(os.environ, CONNRT_HOME=home)
        if ONLY == "postgres":
            print("bench: PostgreSQL store", flush=True)
            write_section(bench_postgres(tmp, issuer, api))
            return
        if ONLY == "proxy":
            print("bench: connrt proxy", flush=True)
            write_proxy_section(bench_proxy(tmp, issuer, url, which("curl")))
            return
        token = subprocess.run([CONNRT, "token", conn], env=env, capture_output=True, text=True, check=True).stdout.strip()
        curl = which("curl")

        # 1. per-call overhead: whole processes
        print("bench: per-call overhead", flush=True)
        times, rss = interleaved({
            "connrt": [CONNRT, "request", conn, "GET", url],
            "curl": [curl, "-s", "-H", f"Authorization: Bearer {token}", url],
        }, N_CALLS, env)
        results["per_call"] = {
            "connrt": stats(times["connrt"]), "curl": stats(times["curl"]),
            "ratio": stats(pair_ratios(times["connrt"], times["curl"])),
            "rss_connrt": stats(rss["connrt"]), "rss_curl": stats(rss["curl"]),
            "rss_ratio": stats(pair_ratios(rss["connrt"], rss["curl"])),
        }

        # 2. throughput in one process
        print("bench: throughput", flush=True)
        cfg = os.path.join(tmp, "curl.cfg")
        with open(cfg, "w") as f:
            f.write(f'header = "Authorization: Bearer {token}"\nsilent\n')
            for _ in range(N_THROUGHPUT):
                f.write(f'url = "{url}"\noutput = "/dev/null"\n')
        py = os.path.join(tmp, "peer_requests_oauthlib.py")
        with open(py, "w") as f:
            f.write(f"""import os, sys, time
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the upstream is plain http on loopback
from requests_oauthlib import OAuth2Session
s = OAuth2Session(token={{"access_token": sys.argv[1], "token_type": "Bearer"}})
s.trust_env = False  # no proxy from the environment, as for the others
s.get(sys.argv[2]).raise_for_status()
t0 = time.perf_counter()
for _ in range(int(sys.argv[3])):
    s.get(sys.argv[2]).raise_for_status()
print('{{"seconds": %.6f}}' % (time.perf_counter() - t0))
""")
        rounds = 1 if QUICK else 5  # the figures move by a tenth between runs here: five rounds steady the median
        tp = {"lua": [], "c": [], "curl": [], "requests_oauthlib": []}
        for _ in range(rounds):
            for k in tp:
                if k == "lua":
                    secs = run_json([CONNRT, "script", "bench/throughput.lua", conn, url, str(N_THROUGHPUT)],
                                    cwd=ROOT, env=env)["seconds"]
                elif k == "c":
                    secs = run_json([os.path.join(ROOT, "build", "bench", "throughput"), conn, url, str(N_THROUGHPUT)],
                                    env=env)["seconds"]
                elif k == "curl":
                    secs, _, code = run_measured([curl, "--config", cfg])
                    assert code == 0
                else:
                    secs = run_json(["/usr/bin/python3", py, token, url, str(N_THROUGHPUT)])["seconds"]
                tp[k].append(N_THROUGHPUT / secs)
        results["throughput"] = {k: stats(v) for k, v in tp.items()}

        # 3. refresh storm
        print("bench: refresh storm", flush=True)
        short = SERVICES.oidc("--access-ttl", "2")
        storm_home = os.path.join(tmp, "storm")
        storm_conn = connect(storm_home, short, api)
        time.sleep(2.5)
        before = http_json(short + "/test/stats")["grants"].get("refresh_token", 0)
        storm_env = dict(os.environ, CONNRT_HOME=storm_home, CONNRT_REFRESH_MARGIN="0")
        t0 = time.perf_counter()
        procs = [subprocess.Popen([CONNRT, "request", storm_conn, "/me"], env=storm_env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(N_STORM)]
        codes = [p.wait() for p in procs]
        storm_secs = time.perf_counter() - t0
        after = http_json(short + "/test/stats")["grants"].get("refresh_token", 0)
        results["storm"] = {"processes": N_STORM, "answered": sum(1 for c in codes if c == 0),
                            "refreshes": after - before, "seconds": storm_secs}

        # 4. store scale
        print("bench: store scale", flush=True)
        homes = {}
        for n in STORE_SIZES:
            h = os.path.join(tmp, f"store{n}")
            out = subprocess.run([CONNRT, "script", "bench/populate.lua", str(n), issuer, api], cwd=ROOT,
                                 env=dict(os.environ, CONNRT_HOME=h), capture_output=True, text=True, check=True)
            homes[n] = (h, out.stdout.strip())
        token_runs = 10 if QUICK else 30
        tok_times = {n: [] for n in STORE_SIZES}
        for i in range(token_runs):
            for n in (STORE_SIZES if i % 2 == 0 else tuple(reversed(STORE_SIZES))):
                h, cid = homes[n]
                dt, _, code = run_measured([CONNRT, "token", cid], dict(os.environ, CONNRT_HOME=h))
                assert code == 0
                tok_times[n].append(dt)
        biggest = STORE_SIZES[-1]
        list_times = []
        for _ in range(3 if QUICK else 5):
            dt, _, code = run_measured([CONNRT, "list", "--json"], dict(os.environ, CONNRT_HOME=homes[biggest][0]))
            assert code == 0
            list_times.append(dt)
        per_conn = {}
        for n in STORE_SIZES:
            st = os.stat(os.path.join(homes[n][0], "data.mdb"))
            per_conn[n] = st.st_blocks * 512 / n
        results["store"] = {
            "token": {n: stats(v) for n, v in tok_times.items()},
            "token_ratio": stats(pair_ratios(tok_times[biggest], tok_times[STORE_SIZES[0]])),
            "list": stats(list_times), "list_size": biggest, "bytes_per_connection": per_conn,
        }

        # 5. start-up
        print("bench: start-up", flush=True)
        times, _ = interleaved({"connrt": [CONNRT, "--version"], "lua": [which("lua5.4"), "-e", ""],
                                "curl": [curl, "--version"]}, N_STARTUP)
        results["startup"] = {k: stats(v) for k, v in times.items()}
        results["startup"]["ratio_lua"] = stats(pair_ratios(times["connrt"], times["lua"]))

        # 6. instruction counts
        print("bench: instruction counts", flush=True)
        counts, profile = {}, {}
        valgrind = shutil.which("valgrind")
        if valgrind:
            for name, argv in (("token", [CONNRT, "token", conn]), ("request", [CONNRT, "request", conn, "GET", url]),
                               ("--version", [CONNRT, "--version"])):
                cg = os.path.join(tmp, f"callgrind.{len(counts)}")
                out = subprocess.run([valgrind, "--tool=callgrind", f"--callgrind-out-file={cg}", *argv],
                                     env=env, capture_output=True, text=True)
                m = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
                counts[name] = int(m.group(1)) if m else None
                profile[name] = where_instructions_go(cg)
        results["instructions"] = counts
        results["profile"] = profile

        # 8. connrt proxy against a fresh curl per call
        print("bench: connrt proxy", flush=True)
        results["proxy"] = bench_proxy(tmp, issuer, url, curl)

        # 7. parsers of provider and connector text on a megabyte, ordinary and hostile
        print("bench: parsers on hostile text", flush=True)
        results["linear"] = run_json([CONNRT, "script", "bench/linear.lua", "3" if QUICK else "9"], cwd=ROOT, env=env)

        # 9. the PostgreSQL store
        print("bench: PostgreSQL store", flush=True)
        results["postgres"] = bench_postgres(tmp, issuer, api)
    finally:
        SERVICES.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    write_results(results)


def bench_postgres(tmp, issuer, api):
    """Section 9: the store on PostgreSQL (the specs' private server, bench/pg.lua).
    `connrt token` with a fresh token on PostgreSQL over loopback against LMDB (interleaved),
    the fleet storm (N_PG_STORM processes in three groups, each its own empty CONNRT_HOME
    with only the URL and the key in common, on a token due for refresh: bench/due.lua), and `connrt list --json`
    at N_PG_LIST connections (wall time and peak RSS)."""
    server = subprocess.Popen([CONNRT, "script", "bench/pg.lua"], cwd=ROOT, env=dict(os.environ, PWD=ROOT),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = server.stdout.readline()
        if not line:
            sys.exit("bench: the PostgreSQL server did not start (bench/pg.lua)")
        n_db = [0]

        def new_db():
            n_db[0] += 1
            server.stdin.write(f"bench{n_db[0]}\n".encode())
            server.stdin.flush()
            line = server.stdout.readline()
            if not line:
                sys.exit("bench: creating a database failed (bench/pg.lua)")
            return line.decode().strip()

        key = os.urandom(32).hex()
        r = {"load_before": os.getloadavg()[0]}
        # token: one connection in LMDB, copied to PostgreSQL
        home = os.path.join(tmp, "pg-lmdb")
        lenv = dict(os.environ, CONNRT_HOME=home, CONNRT_KEY=key)
        cid = connect(home, issuer, api, {"CONNRT_KEY": key})
        url = new_db()
        subprocess.run([CONNRT, "store", "copy", "--to", url], env=lenv, check=True, capture_output=True)
        penv = dict(os.environ, CONNRT_HOME=os.path.join(tmp, "pg-host"), CONNRT_STORE=url, CONNRT_KEY=key)
        # the floors: a process that only logs in to PostgreSQL and runs one query, and
        # connrt's own start-up; and the same call through a running proxy (which keeps its
        # database connection open), the way to pay neither a login nor libpq's loading
        floor = os.path.join(tmp, "pg_floor")
        subprocess.run(["cc", "-O2", "-o", floor, os.path.join(ROOT, "bench", "pg_floor.c"),
                        *subprocess.run(["pkg-config", "--cflags", "--libs", "libpq"], capture_output=True, text=True,
                                        check=True).stdout.split()], check=True)
        sock = os.path.join(tmp, "pg-proxy.sock")
        proxy = subprocess.Popen([CONNRT, "proxy", "--socket", sock, "--workers", "2", "--connection", cid], env=penv,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            json.loads(proxy.stdout.readline())
            commands = {
                "lmdb": ([CONNRT, "token", cid], lenv),
                "pg": ([CONNRT, "token", cid], penv),
                "pg_proxy": ([CONNRT, "token", cid], dict(penv, CONNRT_PROXY=sock)),
                "pg_floor": ([floor, url], penv),
                "start": ([CONNRT, "--version"], lenv),
            }
            times = {k: [] for k in commands}
            for i in range(N_PG_TOKEN):
                keys = list(commands)
                for k in (keys if i % 2 == 0 else reversed(keys)):
                    dt, _, code = run_measured(*commands[k])
                    if code != 0:
                        sys.exit(f"bench: {k} ({' '.join(commands[k][0][:2])}) failed with exit {code}")
                    times[k].append(dt)
        finally:
            proxy.terminate()
            proxy.wait()
        r["token"] = {k: stats(v) for k, v in times.items()}
        r["token_ratio"] = stats(pair_ratios(times["pg"], times["lmdb"]))
        r["token_over_floor"] = stats(pair_ratios(times["pg"], times["pg_floor"]))

        # the fleet storm: an expired token, three hosts of 20 processes each
        # (a due token, not a 2 s one waited out: the new token would be due again at once)
        short = SERVICES.oidc("--rotate")
        shome = os.path.join(tmp, "pg-storm-lmdb")
        scid = connect(shome, short, api, {"CONNRT_KEY": key})
        surl = new_db()
        subprocess.run([CONNRT, "store", "copy", "--to", surl], env=dict(os.environ, CONNRT_HOME=shome, CONNRT_KEY=key),
                       check=True, capture_output=True)
        envs = [dict(os.environ, CONNRT_HOME=os.path.join(tmp, f"pg-storm-host{g}"), CONNRT_STORE=surl, CONNRT_KEY=key)
                for g in range(3)]
        subprocess.run([CONNRT, "script", "bench/due.lua", scid], cwd=ROOT, env=envs[0], check=True, capture_output=True)
        before = http_json(short + "/test/stats")["grants"].get("refresh_token", 0)
        t0 = time.perf_counter()
        procs = [subprocess.Popen([CONNRT, "token", scid], env=envs[i % 3], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL) for i in range(N_PG_STORM)]
        outs = [p.communicate()[0] for p in procs]
        storm_secs = time.perf_counter() - t0
        after = http_json(short + "/test/stats")["grants"].get("refresh_token", 0)
        answered = sum(1 for p in procs if p.returncode == 0)
        # the rotated refresh token is the one stored: one more refresh works
        again = subprocess.run([CONNRT, "refresh", scid], env=envs[0], capture_output=True)
        r["storm"] = {"processes": N_PG_STORM, "answered": answered, "refreshes": after - before,
                      "tokens": len(set(outs)), "seconds": storm_secs, "refresh_after": again.returncode == 0}

        # list --json at N_PG_LIST connections
        lurl = new_db()
        fenv = dict(os.environ, CONNRT_HOME=os.path.join(tmp, "pg-list-host"), CONNRT_STORE=lurl, CONNRT_KEY=key)
        subprocess.run([CONNRT, "script", "bench/populate.lua", str(N_PG_LIST), issuer, api], cwd=ROOT, env=fenv,
                       capture_output=True, text=True, check=True)
        list_times, list_rss = [], []
        for _ in range(3 if QUICK else 5):
            dt, kb, code = run_measured([CONNRT, "list", "--json"], fenv)
            if code != 0:
                sys.exit(f"bench: connrt list --json on PostgreSQL failed with exit {code}")
            list_times.append(dt)
            list_rss.append(kb)
        r["list"] = {"n": N_PG_LIST, "time": stats(list_times), "rss_kb": stats(list_rss)}
        r["load_after"] = os.getloadavg()[0]
        return r
    finally:
        server.stdin.close()
        server.wait()


def postgres_lines(pg):
    t, s, li = pg["token"], pg["storm"], pg["list"]
    return [
        "",
        "## 9. The PostgreSQL store (a private server on loopback)",
        "",
        f"Load average (1 min) {pg.get('load_before', 0):.2f} at the start of this section, "
        f"{pg.get('load_after', 0):.2f} at its end (2 cores).",
        "",
        f"`connrt token ID` with a fresh token, {t['lmdb']['n']} runs each, interleaved:",
        "",
        "| store | wall time |",
        "|---|---|",
        f"| LMDB | {fmt(t['lmdb'])} |",
        f"| PostgreSQL over loopback | {fmt(t['pg'])} |",
        f"| ratio PostgreSQL / LMDB | {pg['token_ratio']['median']:.2f}× (min {pg['token_ratio']['min']:.2f}, "
        f"max {pg['token_ratio']['max']:.2f}) |",
        f"| PostgreSQL through a running `connrt proxy` (CONNRT_PROXY) | {fmt(t['pg_proxy'])} |",
        f"| floor: a process that only logs in with libpq and runs one query (bench/pg_floor.c) | {fmt(t['pg_floor'])} |",
        f"| floor: `connrt --version` (start-up alone) | {fmt(t['start'])} |",
        f"| ratio PostgreSQL / libpq floor | {pg['token_over_floor']['median']:.2f}× |",
        "",
        "The 3 ms target is below both floors on this machine: a new database login (SCRAM) alone takes "
        f"{t['pg_floor']['median'] * 1000:.1f} ms, and a connrt process that does nothing {t['start']['median'] * 1000:.1f} ms. "
        "A pipeline that calls `connrt token` in a loop on a PostgreSQL store runs a proxy and sets CONNRT_PROXY.",
        "",
        f"Fleet storm: {s['processes']} `connrt token` processes in three groups, each its own empty CONNRT_HOME with only "
        f"the URL and the key in common, on a token due for refresh: {s['refreshes']} refresh grant(s) counted by the "
        f"authorization server, {s['answered']} of {s['processes']} answered with {s['tokens']} distinct token(s), the "
        f"last answer after {s['seconds']:.2f} s; a refresh afterwards with the stored (rotated) refresh token "
        f"{'worked' if s['refresh_after'] else '**failed**'}.",
        "",
        f"`connrt list --json` at {li['n']} connections on PostgreSQL: {fmt(li['time'], 's', 1)}, peak RSS "
        f"{li['rss_kb']['median'] / 1024:.1f} MiB (max {li['rss_kb']['max'] / 1024:.1f}).",
    ]


def postgres_targets(pg):
    s, li = pg["storm"], pg["list"]
    return [
        f"| PostgreSQL: `connrt token` ≤ 3 ms median | {pg['token']['pg']['median'] * 1000:.2f} ms "
        f"({pg['token_ratio']['median']:.2f}× LMDB, {pg['token_over_floor']['median']:.2f}× a bare libpq login; "
        f"through the proxy {pg['token']['pg_proxy']['median'] * 1000:.2f} ms) | "
        f"{verdict(pg['token']['pg']['median'] <= 0.003)} |",
        f"| PostgreSQL: one refresh in the 60-process storm, all answered | {s['refreshes']}, "
        f"{s['answered']}/{s['processes']} | {verdict(s['refreshes'] == 1 and s['answered'] == s['processes'])} |",
        f"| PostgreSQL: list at {li['n']} ≤ 2 s | {li['time']['median']:.2f} s "
        f"| {verdict(li['time']['median'] <= 2)} |",
    ]


def rewrite_section(number, section, targets, target_prefix, how):
    """BENCH_ONLY: replaces section `number` of the existing RESULTS.md with the lines
    `section` (where it was; else before the first later section, or the targets), its
    target rows (those starting with target_prefix) with `targets` (at the end of the
    targets), and notes under the stamp that it was rewritten, and when."""
    out = os.path.join(ROOT, "bench", "RESULTS.md" if not QUICK else "RESULTS.quick.md")
    if not os.path.exists(out):  # BENCH_QUICK before any quick run: say it, write nothing
        print("\n".join(section + [""] + targets))
        return
    with open(out) as f:
        lines = f.read().split("\n")
    start = next((i for i, l in enumerate(lines) if l.startswith(f"## {number}. ")), None)
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        del lines[start - 1:end - 1]  # with the blank line before the heading
        at = start - 1
    else:
        def later(line):
            m = re.match(r"## (\d+)\. ", line)
            return line == "## Targets" or (m is not None and int(m.group(1)) > number)
        at = next(i for i, l in enumerate(lines) if later(l)) - 1
    lines[at:at] = section
    lines = [l for l in lines if not l.startswith(target_prefix)]
    last = max(i for i, l in enumerate(lines) if l.startswith("| "))
    lines[last + 1:last + 1] = targets
    stamp = next(i for i, l in enumerate(lines) if l.startswith("Written by `make bench`"))
    tag = f"Section {number} rewritten"
    note = f"{tag} by `{how}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    i = stamp + 1
    while i < len(lines) and lines[i].startswith("Section ") and not lines[i].startswith(tag):
        i += 1
    if i < len(lines) and lines[i].startswith(tag):
        lines[i] = note
    else:
        lines[i:i] = [note]
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(section + [""] + targets))
    print(f"bench: wrote section {number} of {out}")


def write_section(pg):
    """BENCH_ONLY=postgres: section 9 and its target rows."""
    rewrite_section(9, postgres_lines(pg), postgres_targets(pg), "| PostgreSQL: ", "BENCH_ONLY=postgres make bench")


def write_proxy_section(px):
    """BENCH_ONLY=proxy: section 8 and its target rows."""
    rewrite_section(8, proxy_lines(px), proxy_targets(px), "| proxy: ", "BENCH_ONLY=proxy make bench")


def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _children(pid):
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == pid]


def start_proxy(args, env):
    """Starts `connrt proxy ARGS` (its standard error, a line per request, discarded);
    returns the process and its ready line (decoded)."""
    p = subprocess.Popen([CONNRT, "proxy", *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    line = p.stdout.readline()
    if not line:
        p.wait()
        sys.exit(f"bench: connrt proxy {' '.join(args)} did not start (exit {p.returncode})")
    return p, json.loads(line)


def stop_proxy(p):
    """SIGTERM; SIGKILL to the master and its workers if they are not done within 30 s."""
    kids = _children(p.pid)
    p.terminate()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        for pid in kids + [p.pid]:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        p.wait()


def proxy_rss(p):
    """The proxy's processes' peak RSS (VmHWM): (sum, largest) in KiB, how many processes,
    and the sum of their proportional set sizes now (shared pages divided among the
    processes that share them; NaN where the kernel does not say)."""
    sizes, pss = [], 0
    for pid in [p.pid] + _children(p.pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                sizes.append(int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)))
        except (OSError, AttributeError):
            pass
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss += int(re.search(r"^Pss:\s+(\d+)", f.read(), re.M).group(1))
        except (OSError, AttributeError):
            pss = float("nan")
    return sum(sizes), max(sizes or [0]), len(sizes), pss


def wrk_script(tmp, name, headers):
    """A wrk script that sends `headers` ({name: file}): each value is read from its file
    (the first line), so no token or key is on wrk's command line."""
    path = os.path.join(tmp, name + ".lua")
    with open(path, "w") as f:
        for header, file in headers.items():
            f.write(f'do local f = assert(io.open("{file}")); wrk.headers["{header}"] = f:read("*l"); f:close() end\n')
    return path


def wrk(url, conns, script):
    """One wrk run (2 threads, keep-alive): requests per second, p50 and p99 latency in
    seconds, requests, and errors (non-2xx answers and socket errors)."""
    argv = [which("wrk"), "-t2", f"-c{conns}", f"-d{WRK_SECONDS}s", "--latency", "--timeout", "10s", "-s", script, url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=WRK_SECONDS + 120)
    text = out.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    lat = {pct: float(v) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[u]
           for pct, v, u in re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
    if out.returncode != 0 or not rps or not total or set(lat) != {"50", "99"}:
        sys.exit(f"bench: wrk {url} failed ({out.returncode}): {out.stderr.strip()} {text.strip()}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return {"rps": float(rps.group(1)), "p50": lat["50"], "p99": lat["99"], "requests": int(total.group(1)),
            "errors": errors}


def bench_proxy(tmp, issuer, plain_url, curl):
    """Section 8: connrt proxy in front of nginx over TLS on loopback (the specs' test CA).
    N_PROXY sequential calls each, interleaved: a fresh curl with the token over TLS (what a
    shell pipeline does today) and over plain http, curl through a warm `connrt proxy` on
    its unix socket, `connrt request` with CONNRT_PROXY and without it, and the floor: curl
    fetching the same file from nginx over a unix socket. Then keep-alive throughput with
    wrk at 64 connections, through the proxy (on TCP, with its key) against straight to
    nginx, WRK_ROUNDS runs each, interleaved; and the proxy's peak RSS, after the calls and
    (a fresh proxy) at 256 concurrent clients. Every call must succeed (curl -f)."""
    ca = os.path.join(TLS, "ca.pem")
    home = os.path.join(tmp, "proxy-home")
    conn = connect(home, issuer, SERVICES.tls_base, {"CONNRT_CA_BUNDLE": ca})
    env = dict(os.environ, CONNRT_HOME=home, CONNRT_CA_BUNDLE=ca)
    url = SERVICES.tls_base + "/data.json"
    token = subprocess.run([CONNRT, "token", conn], env=env, capture_output=True, text=True, check=True).stdout.strip()
    # the token in files (0600), for curl -H @FILE and wrk's script: not on command lines
    token_header, bearer_file = os.path.join(tmp, "authorization.header"), os.path.join(tmp, "bearer")
    for path, text in ((token_header, f"Authorization: Bearer {token}\n"), (bearer_file, f"Bearer {token}\n")):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, text.encode())
        os.close(fd)
    with open(os.path.join(tmp, "www", "data.json"), "rb") as f:
        expected = f.read()
    out = {"load_before": os.getloadavg()[0]}
    sock = os.path.join(tmp, "proxy.sock")
    proxy, _ = start_proxy(["--socket", sock], env)
    try:
        via_env = dict(env, CONNRT_PROXY=sock)
        commands = {
            "curl_fresh": ([curl, "-sf", "--cacert", ca, "-H", "@" + token_header, url], env),
            "curl_plain": ([curl, "-sf", "-H", "@" + token_header, plain_url], env),
            "curl_proxy": ([curl, "-sf", "--unix-socket", sock, "-H", "Connrt-Target: " + url, f"http://proxy/{conn}"], env),
            "connrt_proxy": ([CONNRT, "request", conn, "GET", url], via_env),
            "connrt_direct": ([CONNRT, "request", conn, "GET", url], env),
            "floor": ([curl, "-sf", "--unix-socket", SERVICES.unix_sock, "http://nginx/data.json"], env),
        }
        got = subprocess.run(commands["curl_proxy"][0], env=env, capture_output=True)
        if got.returncode != 0 or got.stdout != expected:
            sys.exit(f"bench: curl through the proxy did not get nginx's file ({got.returncode}): {got.stdout[:200]!r}")
        for _ in range(3):  # warm every command, and (several calls) the proxy's workers' upstream connections
            for argv, e in commands.values():
                run_measured(argv, e)
        for _ in range(30):
            run_measured(*commands["curl_proxy"])
        times = {k: [] for k in commands}
        keys = list(commands)
        for i in range(N_PROXY):
            for k in (keys if i % 2 == 0 else list(reversed(keys))):
                dt, _, code = run_measured(*commands[k])
                if code != 0:
                    sys.exit(f"bench: {k} failed with exit {code}")
                times[k].append(dt)
        out.update({k: stats(v) for k, v in times.items()})
        for a, b in (("curl_proxy", "curl_fresh"), ("curl_proxy", "floor"), ("connrt_proxy", "curl_fresh"),
                     ("connrt_proxy", "curl_plain"), ("connrt_proxy", "connrt_direct")):
            out[f"{a}/{b}"] = stats(pair_ratios(times[a], times[b]))
        out["rss_kb"], _, out["processes"], _ = proxy_rss(proxy)
    finally:
        stop_proxy(proxy)

    # keep-alive throughput: wrk through the proxy on TCP, and straight to nginx
    print("bench: connrt proxy: throughput (wrk)", flush=True)
    key_file = os.path.join(tmp, "proxy.key")
    target_header = os.path.join(tmp, "target.header")
    with open(target_header, "w") as f:
        f.write(url + "\n")
    proxy, ready = start_proxy(["--listen", "127.0.0.1:0", "--key-file", key_file], env)
    # beside it, a proxy with 8 workers (the default before it was one per CPU), so the
    # default is measured against more workers than CPUs in the same run
    key8 = os.path.join(tmp, "proxy8.key")
    proxy8, ready8 = start_proxy(["--listen", "127.0.0.1:0", "--key-file", key8, "--workers", "8"], env)
    try:
        via = wrk_script(tmp, "via", {"Connrt-Key": key_file, "Connrt-Target": target_header})
        via8 = wrk_script(tmp, "via8", {"Connrt-Key": key8, "Connrt-Target": target_header})
        direct = wrk_script(tmp, "direct", {"Authorization": bearer_file})
        proxy_url = f"http://{ready['listen']}/{conn}"
        runs = {"proxy": [], "proxy8": [], "direct": [], "nginx_proxy": []}
        targets = {"proxy": (proxy_url, via), "proxy8": (f"http://{ready8['listen']}/{conn}", via8),
                   "direct": (url, direct),
                   "nginx_proxy": (SERVICES.reverse_proxy + urllib.parse.urlsplit(url).path, direct)}
        for i in range(WRK_ROUNDS):
            for k in (list(runs) if i % 2 == 0 else reversed(list(runs))):
                runs[k].append(wrk(*((targets[k][0], 64, targets[k][1]))))
        out["wrk"] = {k: {m: stats([r[m] for r in v]) for m in ("rps", "p50", "p99")} for k, v in runs.items()}
        out["wrk_errors"] = {k: sum(r["errors"] for r in v) for k, v in runs.items()}
        out["wrk_requests"] = {k: sum(r["requests"] for r in v) for k, v in runs.items()}
        out["wrk_ratio"] = stats([a["rps"] / b["rps"] for a, b in zip(runs["proxy"], runs["direct"])])
        out["wrk_nginx_ratio"] = stats([a["rps"] / b["rps"] for a, b in zip(runs["nginx_proxy"], runs["direct"])])
        out["wrk_w8_ratio"] = stats([a["rps"] / b["rps"] for a, b in zip(runs["proxy"], runs["proxy8"])])
        out["workers"] = len(_children(proxy.pid))
    finally:
        stop_proxy(proxy)
        stop_proxy(proxy8)

    # peak RSS at 256 concurrent clients, on a fresh proxy
    print("bench: connrt proxy: 256 concurrent clients", flush=True)
    proxy, ready = start_proxy(["--listen", "127.0.0.1:0", "--key-file", key_file], env)
    try:
        r = wrk(f"http://{ready['listen']}/{conn}", 256, via)
        rss_sum, rss_max, n, pss = proxy_rss(proxy)
        out["c256"] = {"requests": r["requests"], "errors": r["errors"], "rps": r["rps"], "p99": r["p99"],
                       "rss_sum_kb": rss_sum, "rss_max_kb": rss_max, "processes": n, "pss_kb": pss}
    finally:
        stop_proxy(proxy)
    out["load_after"] = os.getloadavg()[0]
    return out


def proxy_lines(px):
    r = lambda k: f"{px[k]['median']:.2f}× (min {px[k]['min']:.2f}, max {px[k]['max']:.2f})"
    w, c = px["wrk"], px["c256"]

    def wrk_row(label, k):
        return (f"| {label} | {w[k]['rps']['median']:.0f} (min {w[k]['rps']['min']:.0f}, max {w[k]['rps']['max']:.0f}) "
                f"| {w[k]['p50']['median'] * 1000:.2f} ms | {w[k]['p99']['median'] * 1000:.2f} ms "
                f"| {px['wrk_errors'][k]} of {px['wrk_requests'][k]} |")
    return [
        "",
        f"## 8. connrt proxy ({px['curl_fresh']['n']} sequential calls each, interleaved)",
        "",
        "The upstream is nginx over TLS on loopback (certificates of the specs' test CA) serving the",
        "static JSON file of sections 1 and 2; the proxy runs with its default workers. Load average",
        f"(1 min) at the start of this section: {px['load_before']:.2f}, at its end: {px['load_after']:.2f} (2 cores; other",
        "sessions share the machine).",
        "",
        "| call | wall time |",
        "|---|---|",
        f"| fresh `curl` with the token, over TLS (a shell pipeline today) | {fmt(px['curl_fresh'])} |",
        f"| fresh `curl` with the token, plain http | {fmt(px['curl_plain'])} |",
        f"| `curl --unix-socket` through a warm `connrt proxy` | {fmt(px['curl_proxy'])} |",
        f"| `connrt request` with `CONNRT_PROXY` | {fmt(px['connrt_proxy'])} |",
        f"| `connrt request` without it (TLS) | {fmt(px['connrt_direct'])} |",
        f"| floor: `curl --unix-socket` to nginx's static file | {fmt(px['floor'])} |",
        "",
        f"Through the proxy / fresh curl over TLS: {r('curl_proxy/curl_fresh')}; through the proxy / floor: "
        f"{r('curl_proxy/floor')}; `connrt request` with CONNRT_PROXY / fresh curl over TLS: "
        f"{r('connrt_proxy/curl_fresh')}, / fresh curl over plain http: {r('connrt_proxy/curl_plain')}, "
        f"/ `connrt request` without it: {r('connrt_proxy/connrt_direct')}.",
        "",
        f"Keep-alive throughput (`wrk -t2 -c64`, {WRK_SECONDS} s a run, {w['proxy']['rps']['n']} runs each, "
        "interleaved; medians):",
        "",
        "| | requests per second | p50 latency | p99 latency | errors |",
        "|---|---|---|---|---|",
        wrk_row(f"wrk → `connrt proxy` on TCP (with its key; default: {px['workers']} workers) → nginx over TLS",
                "proxy"),
        wrk_row("the same with `--workers 8`", "proxy8"),
        wrk_row("wrk → nginx over TLS", "direct"),
        wrk_row("peer: wrk → nginx as a keep-alive reverse proxy → nginx over TLS", "nginx_proxy"),
        "",
        f"Through the proxy / direct: {r('wrk_ratio')}; through nginx's own reverse proxy / direct: "
        f"{r('wrk_nginx_ratio')} (a proxy hop on the same two cores as the server and wrk: what any proxy pays here); "
        f"the default workers / 8 workers: {r('wrk_w8_ratio')}.",
        "",
        f"Proxy memory: after the sequential calls {px['rss_kb'] / 1024:.1f} MiB, the peak RSS summed over its "
        f"{px['processes']} processes (pages they share counted in each). At 256 concurrent "
        f"clients (`wrk -t2 -c256`, {WRK_SECONDS} s, a fresh proxy): {c['rss_sum_kb'] / 1024:.1f} MiB summed over "
        f"{c['processes']} processes, {c['rss_max_kb'] / 1024:.1f} MiB the largest"
        + (f", {c['pss_kb'] / 1024:.1f} MiB proportional set size summed right after (shared pages divided among "
           "the processes)" if c["pss_kb"] == c["pss_kb"] else "")
        + f"; {c['requests']} requests at {c['rps']:.0f}/s, p99 {c['p99'] * 1000:.1f} ms, {c['errors']} errors.",
    ]


def proxy_targets(px):
    m = lambda k: px[k]["median"]
    tp_ok = m("wrk_ratio") >= 0.8 and px["wrk_errors"]["proxy"] == 0
    return [
        f"| proxy: curl through it ≤ 0.65× a fresh curl over TLS | {m('curl_proxy/curl_fresh'):.2f}× "
        f"| {verdict(m('curl_proxy/curl_fresh') <= 0.65)} |",
        f"| proxy: curl through it ≤ 1.15× the unix-socket floor | {m('curl_proxy/floor'):.2f}× "
        f"| {verdict(m('curl_proxy/floor') <= 1.15)} |",
        f"| proxy: `connrt request` with CONNRT_PROXY ≤ 0.6× a fresh curl over TLS | {m('connrt_proxy/curl_fresh'):.2f}× "
        f"| {verdict(m('connrt_proxy/curl_fresh') <= 0.6)} |",
        f"| proxy: `connrt request` with CONNRT_PROXY ≤ 1.0× a fresh plain-http curl | {m('connrt_proxy/curl_plain'):.2f}× "
        f"| {verdict(m('connrt_proxy/curl_plain') <= 1.0)} |",
        f"| proxy: keep-alive throughput ≥ 0.8× direct at 64 connections, no errors | {m('wrk_ratio'):.2f}×, "
        f"{px['wrk_errors']['proxy']} errors (nginx as a reverse proxy: {m('wrk_nginx_ratio'):.2f}×) | {verdict(tp_ok)} |",
    ]


# Inclusive shares of a few functions that bound a command's cost, from callgrind.
PROFILE_POINTS = (
    ("dl_main", "dynamic loader: loading and relocating the shared libraries at start"),
    ("dl_open_worker", "loading the modules a command needs on demand (dlopen: libcurl, OpenSSL, LMDB)"),
    ("curl_global_init", "libcurl and OpenSSL start-up (curl_global_init)"),
    ("EVP_CIPHER_fetch", "OpenSSL 3 fetching AES-256-GCM (provider start-up, first use)"),
    ("lua_load", "loading the Lua layer's bytecode and the connector"),
    ("mdb_env_open", "opening the LMDB store"),
    ("curl_easy_perform", "the HTTP request itself"),
)


def where_instructions_go(cg_file):
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", cg_file], capture_output=True, text=True).stdout
    shares = {}
    for fn, _ in PROFILE_POINTS:
        m = re.search(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+\S*:" + re.escape(fn) + r"\b", out, re.M)
        if m:
            shares[fn] = float(m.group(2))
    return shares


def versions():
    def first_line(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "?"
    nginx = subprocess.run([which("nginx"), "-v"], capture_output=True, text=True).stderr.strip()
    oauthlib = subprocess.run(["/usr/bin/python3", "-c", "import requests_oauthlib; print(requests_oauthlib.__version__)"],
                              capture_output=True, text=True).stdout.strip()
    return {"connrt": first_line([CONNRT, "--version"]), "curl": first_line(["curl", "--version"]),
            "lua": first_line(["lua5.4", "-v"]), "nginx": nginx, "node": first_line(["node", "--version"]),
            "python": first_line(["/usr/bin/python3", "--version"]), "requests-oauthlib": oauthlib}


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except OSError:
        mem = 0
    return f"{platform.machine()}, {os.cpu_count()} cores ({model}), {mem} MiB, {platform.system()} {platform.release()}"


def verdict(ok):
    return "met" if ok else "**missed**"


def write_results(r):
    pc, tp, st, su = r["per_call"], r["throughput"], r["store"], r["startup"]
    lines = [
        "# connrt benchmark results",
        "",
        f"Written by `make bench`{' (BENCH_QUICK: small counts, not results)' if QUICK else ''} on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"- machine: {machine()}",
    ]
    for k, v in versions().items():
        lines.append(f"- {k}: {v}")
    lines += [
        "",
        "Each figure: median (min, max) over the runs; ratios are computed pair by pair on",
        "interleaved runs, then their median is taken.",
        "",
        f"## 1. Per-call overhead ({pc['connrt']['n']} whole processes each)",
        "",
        "| | wall time | peak RSS |",
        "|---|---|---|",
        f"| `connrt request ID GET URL` | {fmt(pc['connrt'])} | {pc['rss_connrt']['median'] / 1024:.1f} MiB |",
        f"| `curl -s -H 'Authorization: Bearer …' URL` | {fmt(pc['curl'])} | {pc['rss_curl']['median'] / 1024:.1f} MiB |",
        f"| ratio connrt / curl | {pc['ratio']['median']:.2f}× (min {pc['ratio']['min']:.2f}, max {pc['ratio']['max']:.2f}) "
        f"| {pc['rss_ratio']['median']:.2f}× |",
        "",
        f"## 2. Throughput in one process ({N_THROUGHPUT} GETs through one connection)",
        "",
        "| client | requests per second |",
        "|---|---|",
    ]
    for k, label in (("lua", "Lua pipeline (`connrt run`)"), ("c", "C library (libconnrt)"),
                     ("curl", "one curl process, reused connection"), ("requests_oauthlib", "Python requests-oauthlib")):
        s = tp[k]
        lines.append(f"| {label} | {s['median']:.0f} (min {s['min']:.0f}, max {s['max']:.0f}) |")
    ratio = lambda a, b: tp[a]["median"] / tp[b]["median"]
    lines += [
        "",
        f"Ratios: Lua/curl {ratio('lua', 'curl'):.2f}, C/curl {ratio('c', 'curl'):.2f}, "
        f"Lua/requests-oauthlib {ratio('lua', 'requests_oauthlib'):.1f}, C/requests-oauthlib {ratio('c', 'requests_oauthlib'):.1f}.",
        "",
        "## 3. Refresh storm",
        "",
        f"{r['storm']['processes']} concurrent `connrt request` processes on an expired token: "
        f"{r['storm']['refreshes']} refresh grant(s) counted by the authorization server, "
        f"{r['storm']['answered']} of {r['storm']['processes']} answered, all within {r['storm']['seconds']:.2f} s.",
        "",
        "## 4. Store scale",
        "",
        "| connections | `connrt token ID` | bytes on disk per connection |",
        "|---|---|---|",
    ]
    for n, s in st["token"].items():
        lines.append(f"| {n} | {fmt(s)} | {st['bytes_per_connection'][n]:.0f} |")
    lines += [
        "",
        f"`connrt token` at {st['list_size']} against 10: {st['token_ratio']['median']:.2f}×. "
        f"`connrt list --json` at {st['list_size']}: {fmt(st['list'], 's', 1)}.",
        "",
        "## 5. Start-up",
        "",
        "| command | wall time |",
        "|---|---|",
        f"| `connrt --version` | {fmt(su['connrt'])} |",
        f"| `lua5.4 -e ''` | {fmt(su['lua'])} |",
        f"| `curl --version` | {fmt(su['curl'])} |",
        "",
        f"connrt / lua5.4: {su['ratio_lua']['median']:.2f}×.",
        "",
        "## 6. Instruction counts (callgrind)",
        "",
    ]
    for k, v in r["instructions"].items():
        lines.append(f"- `connrt {k}`: {v:,} instructions" if v else f"- `connrt {k}`: not measured")
    lines += ["", "Where they go (inclusive share of each command's instructions, from the same callgrind runs):", "",
              "| | " + " | ".join(f"`connrt {k}`" for k in r["profile"]) + " |",
              "|---|" + "---|" * len(r["profile"])]
    for fn, what in PROFILE_POINTS:
        cells = [f"{r['profile'][k][fn]:.0f}%" if fn in r["profile"][k] else "–" for k in r["profile"]]
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    lines += ["", "## 7. Parsers of provider and connector text (bench/linear.lua)", "",
              "A megabyte of ordinary text beside a megabyte made to make patterns backtrack (runs of",
              "spaces, unclosed openers, runs of escapes); median seconds. Linear parsers keep both near",
              "each other; a backtracking one took hours on the hostile megabyte.", "",
              "| parser | ordinary | hostile | hostile / ordinary |", "|---|---|---|---|"]
    for name, v in r["linear"].items():
        rel = v["hostile"] / v["plain"] if v["plain"] > 0 else float("nan")
        lines.append(f"| {name} | {v['plain'] * 1000:.2f} ms | {v['hostile'] * 1000:.2f} ms | {rel:.1f}× |")
    lines += proxy_lines(r["proxy"])
    lines += postgres_lines(r["postgres"])
    worst = max(v["hostile"] for v in r["linear"].values())
    storm = r["storm"]
    lines += [
        "",
        "## Targets",
        "",
        "| target | figure | |",
        "|---|---|---|",
        f"| per-call wall ≤ 1.15× curl | {pc['ratio']['median']:.2f}× | {verdict(pc['ratio']['median'] <= 1.15)} |",
        f"| per-call peak memory ≤ 1.25× curl | {pc['rss_ratio']['median']:.2f}× | {verdict(pc['rss_ratio']['median'] <= 1.25)} |",
        f"| Lua throughput ≥ 0.9× curl | {ratio('lua', 'curl'):.2f}× | {verdict(ratio('lua', 'curl') >= 0.9)} |",
        f"| C throughput ≥ 0.9× curl | {ratio('c', 'curl'):.2f}× | {verdict(ratio('c', 'curl') >= 0.9)} |",
        f"| Lua and C ≥ 5× requests-oauthlib | {ratio('lua', 'requests_oauthlib'):.1f}×, {ratio('c', 'requests_oauthlib'):.1f}× "
        f"| {verdict(min(ratio('lua', 'requests_oauthlib'), ratio('c', 'requests_oauthlib')) >= 5)} |",
        f"| one refresh in the storm, all answered | {storm['refreshes']}, {storm['answered']}/{storm['processes']} "
        f"| {verdict(storm['refreshes'] == 1 and storm['answered'] == storm['processes'])} |",
        f"| token at {st['list_size']} ≤ 1.1× at 10 | {st['token_ratio']['median']:.2f}× | {verdict(st['token_ratio']['median'] <= 1.1)} |",
        f"| list at {st['list_size']} < 1 s | {st['list']['median']:.2f} s | {verdict(st['list']['median'] < 1)} |",
        f"| start-up ≤ 1.5× lua5.4 | {su['ratio_lua']['median']:.2f}× | {verdict(su['ratio_lua']['median'] <= 1.5)} |",
        f"| every parser < 1 s on a hostile megabyte | {worst:.2f} s | {verdict(worst < 1)} |",
        *proxy_targets(r["proxy"]),
        *postgres_targets(r["postgres"]),
        "",
    ]
    out = os.path.join(ROOT, "bench", "RESULTS.md" if not QUICK else "RESULTS.quick.md")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    print(f"bench: wrote {out}")


if __name__ == "__main__":
    main()
