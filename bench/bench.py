#!/usr/bin/env python3
"""The benchmark harness of issue 6; run it as `bench/run` (see --help).

Builds the release binary, starts a private PostgreSQL cluster in a temporary directory,
fills one database per size with `danbao demo`, starts `danbao serve` on it and measures:
  1. repayments over HTTP at 32 connections (wrk) against pgbench running the same SQL
     statements (captured from the server log for one request) with 32 clients;
  2. GET /v1/loans/{id} for a loan with 1 and with 500 repayments (wrk, one connection);
  3. the province summary grouped by city and the repayment rate, at both sizes;
  4. `danbao import-repayments` on a generated file: rows/s and peak RSS;
  5. 32 clerks approving applications against one fund: approvals/s, and the fund's headroom
     is never overdrawn (exact count approved, the rest refused);
  6. the server's peak RSS (VmHWM) over all of it.
Prints a table and writes it with the machine and the commands to docs/benchmarks.md.
"""
import argparse
import http.client
import json
import os
import platform
import pwd
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
DEMO_PASSWORD = "Demo password 2026"
DATA_KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
JWT_SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
TZ = ZoneInfo("Asia/Shanghai")
BANK = "JXRCU"
CLIENTS = 32


def log(msg):
    print(f"[bench {datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


def today():
    return datetime.now(TZ).date()


# ---------------------------------------------------------------- PostgreSQL cluster
class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1:port (as `postgres` when we are root)."""

    def __init__(self, workdir, port):
        self.bindir = Path(subprocess.check_output(["pg_config", "--bindir"], text=True).strip())
        if not (self.bindir / "initdb").exists():
            self.bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        self.dir = Path(workdir) / "pg"
        self.port = port
        self.log = Path(workdir) / "postgres.log"
        self.as_user = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.dir.mkdir(parents=True)
        self.log.touch()
        if self.as_user:
            pw = pwd.getpwnam("postgres")
            for p in (Path(workdir), self.dir, self.log):
                os.chown(p, pw.pw_uid, pw.pw_gid)

    def start(self):
        run(self.as_user + [str(self.bindir / "initdb"), "-D", str(self.dir), "-U", "postgres",
                            "--auth=trust", "-E", "UTF8", "--locale=C"], stdout=subprocess.DEVNULL)
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                "-c shared_buffers=512MB -c max_connections=200 "
                "-c shared_preload_libraries=pg_stat_statements")
        run(self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.dir), "-l", str(self.log),
                            "-o", opts, "-w", "start"], stdout=subprocess.DEVNULL)

    def stop(self):
        subprocess.run(self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.dir), "-m", "fast",
                                       "-w", "stop"], stdout=subprocess.DEVNULL)

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, db, *sqls):
        """Runs each statement in its own transaction (-c each); returns what they print."""
        cs = [x for sql in sqls for x in ("-c", sql)]
        return subprocess.check_output(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", self.url(db)] + cs,
                                       text=True).strip()

    def version(self):
        return self.psql("postgres", "SHOW server_version")


# ---------------------------------------------------------------- HTTP
class Api:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method, path, token=None, body=None, ok=(200, 201)):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=json.dumps(body) if body is not None else None,
                                  headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                break
            except (http.client.HTTPException, ConnectionError):
                # A keep-alive connection the server closed: reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                if attempt:
                    raise
        if ok and r.status not in ok:
            sys.exit(f"{method} {path}: {r.status} {data[:500]!r}")
        parsed = json.loads(data) if data and data[:1] in (b"{", b"[") else None
        return (r.status, parsed) if not ok else parsed

    def token(self, username, password=DEMO_PASSWORD):
        return self.call("POST", "/v1/auth/token", body={"username": username, "password": password})["access_token"]


class Server:
    """`danbao serve` on one database; remembers its peak RSS."""

    def __init__(self, binary, url, port, workdir):
        self.port = port
        self.logf = open(Path(workdir) / f"serve-{port}.log", "w")
        # The per-client rate limits protect the service from one client; here the clients
        # are the load generator, so they are off (32 clerks log in at once, wrk sends
        # thousands of repayments a second as one bank).
        env = dict(os.environ, DATABASE_URL=url, DANBAO_DATA_KEY=DATA_KEY, DANBAO_JWT_SECRET=JWT_SECRET,
                   RUST_LOG="warn", DANBAO_TOKEN_RATE_PER_MINUTE="0", DANBAO_BANK_RATE_PER_SECOND="0")
        self.proc = subprocess.Popen([str(binary), "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            sys.exit("danbao serve did not become ready; see " + self.logf.name)

    def hwm_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        hwm = self.hwm_kib()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.logf.close()
        return hwm


# ---------------------------------------------------------------- measuring helpers
def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))]


def wrk_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    x, unit = float(m.group(1)), m.group(2)
    return x * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(args, env=None):
    """Runs wrk --latency; returns requests/s, p50, p99 (ms), total and non-2xx counts."""
    out = subprocess.run(["wrk", "--latency"] + args, env=dict(os.environ, **(env or {})), check=True,
                         capture_output=True, text=True).stdout
    res = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": wrk_ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
        "p99": wrk_ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "errors": int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1]),
    }
    log(f"wrk: {res}")
    return res


def timed_gets(api, path, token, n):
    """Sequential GETs on one keep-alive connection: latencies in ms."""
    api.call("GET", path, token)  # warm
    out = []
    for _ in range(n):
        t = time.perf_counter()
        api.call("GET", path, token)
        out.append((time.perf_counter() - t) * 1000)
    return out


def time_v(cmd, env):
    """Runs cmd under /usr/bin/time -v: (seconds, peak RSS KiB, exit code, stdout)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-v", "-o", tf.name] + cmd, env=env, stdout=subprocess.PIPE,
                           text=True)
        elapsed = time.perf_counter() - t
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", tf.read()).group(1))
    return elapsed, rss, p.returncode, p.stdout


def national_id(i):
    """Valid ids in Beijing (110101): no clash with the demo's Jiangxi borrowers."""
    birth = date(1980, 1, 1) + timedelta(days=i // 1000)
    body = f"110101{birth:%Y%m%d}{i % 1000:03}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    s = sum(int(c) * w for c, w in zip(body, weights))
    return body + "10X98765432"[s % 11]


# ---------------------------------------------------------------- the benchmarks
class Bench:
    def __init__(self, a):
        self.a = a
        self.rows = []  # the result table
        self.notes = []
        self.hwm = 0
        self.commands = []
        self.sizes = {}  # label -> [(table, rows, total bytes, heap bytes)]
        self.load = [os.getloadavg()[1]]  # 5-minute load average at the start and the end

    def row(self, name, size, median="", p99="", throughput="", ratio="", target="", met=""):
        self.rows.append([name, size, median, p99, throughput, ratio, target, met])
        log("result: " + " | ".join(str(x) for x in self.rows[-1]))

    def demo(self, db, loans):
        self.cl.psql("postgres", f"CREATE DATABASE {db}")
        env = dict(os.environ, DATABASE_URL=self.cl.url(db), DANBAO_DATA_KEY=DATA_KEY)
        cmd = [str(self.bin), "demo", "--seed", "1", "--loans", str(loans), "--from-year", str(self.a.from_year)]
        self.commands.append(f"DATABASE_URL=... danbao demo --seed 1 --loans {loans} --from-year {self.a.from_year}")
        log(f"demo: {loans} loans into {db}")
        secs, rss, rc, out = time_v(cmd, env)
        if rc != 0:
            sys.exit(f"danbao demo failed ({rc}):\n{out}")
        m = re.search(r"verify ok in ([\d.]+) s", out)
        self.row("demo: generate, load and verify", f"{loans:,} loans", throughput=f"{loans / secs:,.0f} loans/s",
                 ratio=f"{secs:,.0f} s in all (its verify {m.group(1) if m else '?'} s), peak RSS {rss / 1024:.0f} MiB",
                 target="1,000,000 in < 15 min" if loans >= 1_000_000 else "",
                 met=("yes" if secs < 900 else "no") if loans >= 1_000_000 else "")

    def table_sizes(self, db, label):
        """Rows and bytes of the largest tables (after ANALYZE), for docs/scaling.md."""
        self.cl.psql(db, "ANALYZE")
        out = self.cl.psql(db, "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid), "
                               "pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                               "WHERE n.nspname = 'public' AND c.relkind = 'r' "
                               "ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 12")
        self.sizes[label] = [(t, int(r), int(b), int(h)) for t, r, b, h in (l.split("|") for l in out.splitlines())]

    def stats(self, api, loans, size_label):
        token = api.token("sup.jx")
        year = today().year - 1
        q = f"region=360000&from={year}-01-01&to={year}-12-31&as_of={year}-12-31"
        out = {}
        for name, path in [("summary by city", f"/v1/stats/summary?{q}&group_by=region"),
                           ("repayment rate", f"/v1/stats/repayment-rate?{q}")]:
            t = time.perf_counter()
            api.call("GET", path, token)
            first = time.perf_counter() - t
            n = max(3, min(self.a.stats_requests, int(self.a.stats_budget / max(first, 0.001))))
            lat = timed_gets(api, path, token, n)
            out[name] = statistics.median(lat)
            self.row(f"3. `GET {path.split('?')[0]}` ({name}, province, {year})", size_label,
                     f"{statistics.median(lat):.1f} ms", f"{pct(lat, 99):.1f} ms", f"n = {n}", "",
                     "< 200 ms at 1,000,000 loans" if loans >= 1_000_000 else "",
                     ("yes" if statistics.median(lat) < 200 else "no") if loans >= 1_000_000 else "")
        return out

    def setup_world(self, api):
        """Tokens, the Nanchang centre, the bank, and the IDs the benchmarks need."""
        self.admin = api.token("admin")
        self.entrant = api.token("clerk.nanchang.1")
        self.teller = api.token(f"bank.{BANK.lower()}")
        centres = api.call("GET", "/v1/centres?limit=100", self.admin)
        items = centres["items"] if isinstance(centres, dict) else centres
        self.centre = next(c for c in items if c.get("region_code") == "360100")
        banks = api.call("GET", "/v1/banks?limit=100", self.admin)
        items = banks["items"] if isinstance(banks, dict) else banks
        self.bank = next(b for b in items if b["code"] == BANK)

    def approvals(self, api, n_loans):
        """Benchmark 5: 32 clerks approve n_loans applications of one fund that has room for half."""
        principal = 12000
        fund = api.call("POST", "/v1/funds", self.entrant, {"name": f"压测基金 {int(time.time())}"})
        pos = api.call("GET", f"/v1/funds/{fund['id']}", self.entrant)
        leverage = float(pos["leverage_multiple"])
        fits = n_loans // 2
        contribution = fits * principal / leverage
        # Whole cents that still leave room for exactly `fits` loans (and not one more).
        contribution = round(contribution + 0.5 * principal / leverage, 2)
        fits = int(contribution * leverage // principal)
        api.call("POST", f"/v1/funds/{fund['id']}/contributions", self.entrant,
                 {"value_date": str(today()), "amount": f"{contribution:.2f}", "source": "city_finance"})
        log(f"approvals: {n_loans} applications against fund {fund['id']} with room for {fits}")
        loan_ids = []
        base = int(time.time()) % 100 * 10000
        for i in range(n_loans):
            b = api.call("POST", "/v1/borrowers", self.entrant, {
                "kind": "individual", "category": "laid_off", "name": f"压测{i}",
                "national_id": national_id(base + i), "employment_certificate_no": f"BJ{base + i:07}"})
            loan = api.call("POST", "/v1/loans", self.entrant, {
                "borrower_id": b["id"], "bank_id": self.bank["id"], "fund_id": fund["id"],
                "principal": f"{principal}.00", "term_months": 12, "annual_rate": "0.0435",
                "schedule_method": "equal_principal", "purpose": "早餐店", "micro_profit": True,
                "jobs_declared": 2, "counter_guarantee": {"kind": "mortgage", "description": "房产抵押"}})
            loan_ids.append(loan["id"])
        clerks = []
        for k in range(CLIENTS):
            name = f"bench.clerk.{base}.{k}"
            api.call("POST", "/v1/users", self.admin, {"username": name, "display_name": name, "role": "clerk",
                                                      "centre_id": self.centre["id"], "password": DEMO_PASSWORD})
            clerks.append(api.token(name))
        results = [None] * n_loans
        barrier = threading.Barrier(CLIENTS)

        def clerk(k):
            c = Api(self.port)
            barrier.wait()
            for i in range(k, n_loans, CLIENTS):
                t = time.perf_counter()
                status, body = c.call("POST", f"/v1/loans/{loan_ids[i]}/approval", clerks[k], {}, ok=None)
                results[i] = (status, (body or {}).get("code"), (time.perf_counter() - t) * 1000)

        threads = [threading.Thread(target=clerk, args=(k,)) for k in range(CLIENTS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        approved = sum(1 for r in results if r[0] == 200)
        refused = sum(1 for r in results if r[0] == 409 and r[1] == "fund_capacity_exceeded")
        other = n_loans - approved - refused
        after = api.call("GET", f"/v1/funds/{fund['id']}", self.entrant)
        outstanding = float(after["outstanding_guaranteed"])
        capacity = float(after["balance"]) * leverage
        ok = approved == fits and other == 0 and outstanding == approved * principal and outstanding <= capacity
        lat = [r[2] for r in results]
        self.row("5. 32 clerks approving against one fund", f"{n_loans} applications, room for {fits}",
                 f"{statistics.median(lat):.1f} ms", f"{pct(lat, 99):.1f} ms", f"{n_loans / elapsed:,.0f} decisions/s",
                 f"{approved} approved, {refused} refused (fund_capacity_exceeded), {other} other; "
                 f"guaranteed {outstanding:,.2f} of capacity {capacity:,.2f}",
                 "never overdrawn", "yes" if ok else "NO")
        return [loan_ids[i] for i, r in enumerate(results) if r[0] == 200]

    def loan_reads(self, api, approved):
        """Benchmark 2: GET /v1/loans/{id} with 1 and with 500 repayments."""
        day = str(today())
        one, many = approved[0], approved[1]
        for k, lid in enumerate((one, many)):
            api.call("POST", f"/v1/loans/{lid}/disbursement", self.teller,
                     {"value_date": day, "bank_account_no": f"BENCH-{int(time.time())}-{k}"})
        run_id = f"R{int(time.time())}"
        api.call("POST", f"/v1/loans/{one}/repayments", self.teller,
                 {"bank_reference": f"{run_id}-one", "value_date": day, "amount": "1.00"})
        for i in range(500):
            api.call("POST", f"/v1/loans/{many}/repayments", self.teller,
                     {"bank_reference": f"{run_id}-many-{i}", "value_date": day, "amount": "1.00"})
        res = {}
        for label, lid in (("1 repayment", one), ("500 repayments", many)):
            r = wrk(["-t1", "-c1", f"-d{self.a.duration}s", "-H", f"authorization: Bearer {self.teller}",
                     f"http://127.0.0.1:{self.port}/v1/loans/{lid}"])
            res[label] = r
        a, b = res["1 repayment"], res["500 repayments"]
        for label, r in res.items():
            self.row(f"2. `GET /v1/loans/{{id}}`, loan with {label}", "1 connection", f"{r['p50']:.2f} ms",
                     f"{r['p99']:.2f} ms", f"{r['rps']:,.0f} req/s",
                     f"{b['p50'] / a['p50']:.2f}× the 1-repayment p50" if label.startswith("500") else "",
                     "p50 < 5 ms" + ("; ≤ 1.5× the 1-repayment read" if label.startswith("500") else ""),
                     "yes" if r["p50"] < 5 and r["errors"] == 0 and (
                         not label.startswith("500") or b["p50"] <= 1.5 * a["p50"]) else "no")

    def repayments(self, api, db):
        """Benchmark 1: POST repayments over HTTP (wrk, 32 connections) against pgbench."""
        loans = self.cl.psql(db, f"SELECT l.id FROM loans l JOIN banks b ON b.id = l.bank_id WHERE b.code = '{BANK}' "
                                 "AND l.status = 'active' ORDER BY l.id LIMIT 5000").split()
        lf = Path(self.work) / "loans.txt"
        lf.write_text("\n".join(loans) + "\n")
        env = {"BENCH_LOANS": str(lf), "BENCH_TOKEN": self.teller, "BENCH_DAY": str(today()),
               "BENCH_RUN": f"W{int(time.time())}"}
        r = wrk(["-t2", f"-c{CLIENTS}", f"-d{self.a.duration}s", "-s", str(ROOT / "bench/repay.lua"),
                 f"http://127.0.0.1:{self.port}"], env)
        # The same on the loans of one fund: every repayment locks its fund's row first.
        fund = self.cl.psql(db, f"SELECT l.fund_id FROM loans l JOIN banks b ON b.id = l.bank_id WHERE b.code = '{BANK}' "
                                "AND l.status = 'active' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        one = self.cl.psql(db, f"SELECT id FROM loans WHERE fund_id = '{fund}' AND status = 'active' "
                               f"AND bank_id = (SELECT id FROM banks WHERE code = '{BANK}') ORDER BY id LIMIT 5000").split()
        of = Path(self.work) / "loans-one-fund.txt"
        of.write_text("\n".join(one) + "\n")
        r1 = wrk(["-t2", f"-c{CLIENTS}", f"-d{self.a.duration}s", "-s", str(ROOT / "bench/repay.lua"),
                  f"http://127.0.0.1:{self.port}"], dict(env, BENCH_LOANS=str(of), BENCH_RUN=env["BENCH_RUN"] + "F"))
        script, statements = self.capture_repayment_sql(api, db, loans)
        self.http_repayments = (r, r1, len(one), loans, script, statements)

    def pgbench(self, db):
        """Benchmark 1, second half: pgbench replays the captured statements on random loans of
        the same set. Run after `verify`: the replayed statements write the captured loan's
        statistics facts onto other loans, so the database is not fit to verify afterwards."""
        r, r1, n_one, loans, script, statements = self.http_repayments
        self.cl.psql(db, "DROP TABLE IF EXISTS bench_loans",
                     "CREATE TABLE bench_loans AS SELECT (row_number() OVER (ORDER BY id) - 1)::int AS k, "
                     "id, fund_id, centre_id, policy_id, borrower_id FROM loans "
                     f"WHERE id IN ({','.join(repr(x) for x in loans)})",
                     "ALTER TABLE bench_loans ADD PRIMARY KEY (k)")
        sf = Path(self.work) / "repayment.pgbench"
        sf.write_text(script)
        out = subprocess.run(["pgbench", "-n", "-M", "prepared", f"-c{CLIENTS}", "-j2", f"-T{self.a.duration}",
                              "-D", f"nloans={len(loans)}", "-f", str(sf), self.cl.url(db)],
                             capture_output=True, text=True)
        if out.returncode != 0 or "tps =" not in out.stdout:
            log(out.stdout + out.stderr[-3000:])
            self.row("1. pgbench on the captured SQL", f"{CLIENTS} clients", "", "", "failed (see the log)", "", "", "no")
            return
        tps = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
        failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
        lat = re.search(r"latency average = ([\d.]+) ms", out.stdout)
        self.cl.psql(db, "DROP TABLE bench_loans")
        self.row("1. `POST /v1/loans/{id}/repayments` over HTTP (wrk)", f"{CLIENTS} connections, {len(loans):,} loans",
                 f"{r['p50']:.1f} ms", f"{r['p99']:.1f} ms", f"{r['rps']:,.0f} req/s ({r['errors']} non-2xx)",
                 f"{r['rps'] / tps:.2f} of pgbench", "≥ 0.5 of pgbench", "yes" if r["rps"] / tps >= 0.5 else "no")
        self.row(f"1. the same {statements} SQL statements with pgbench", f"{CLIENTS} clients", "", "",
                 f"{tps:,.0f} tps (latency avg {lat.group(1) if lat else '?'} ms; "
                 f"{failed.group(1) if failed else '0'} failed)", "1.00", "", "")
        self.row("1. HTTP repayments, all on loans of one fund", f"{CLIENTS} connections, {n_one:,} loans",
                 f"{r1['p50']:.1f} ms", f"{r1['p99']:.1f} ms", f"{r1['rps']:,.0f} req/s ({r1['errors']} non-2xx)",
                 f"{r1['rps'] / r['rps']:.2f} of the spread run", "", "")
        self.commands.append(f"wrk -t2 -c{CLIENTS} -d{self.a.duration}s -s bench/repay.lua http://127.0.0.1:PORT")
        self.commands.append(f"pgbench -n -M prepared -c{CLIENTS} -j2 -T{self.a.duration} -D nloans=N "
                             "-f repayment.pgbench (generated, see bench/bench.py capture_repayment_sql)")

    def capture_repayment_sql(self, api, db, loans):
        """Logs every statement of one repayment request and turns them into a pgbench script."""
        loan = loans[len(loans) // 2]
        ref = f"CAPTURE-{int(time.time())}"
        day = str(today())
        api.call("POST", f"/v1/loans/{loan}/repayments", self.teller,
                 {"bank_reference": ref + "-warm", "value_date": day, "amount": "1.00"})
        start = self.cl.log.stat().st_size
        self.cl.psql("postgres", "ALTER SYSTEM SET log_statement = 'all'", "SELECT pg_reload_conf()")
        time.sleep(5)  # requests of wrk still in flight finish
        api.call("POST", f"/v1/loans/{loan}/repayments", self.teller,
                 {"bank_reference": ref, "value_date": day, "amount": "1.00"})
        time.sleep(0.5)
        self.cl.psql("postgres", "ALTER SYSTEM RESET log_statement", "SELECT pg_reload_conf()")
        with open(self.cl.log, errors="replace") as f:
            f.seek(start)
            text = f.read()
        prefix = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[(\d+)\] (\w+):  (.*)$")
        records = []
        for line in text.splitlines():
            m = prefix.match(line)
            if m:
                records.append([m.group(1), m.group(2), m.group(3)])
            elif records:
                records[-1][2] += "\n" + line
        # Only the backend that served our request (requests still in flight from wrk may log too).
        ours = {pid for pid, kind, msg in records if ref in msg and "warm" not in msg}
        records = [r for r in records if r[0] in ours]
        stmts = []
        for pid, kind, msg in records:
            if kind == "LOG" and (msg.startswith("execute ") or msg.startswith("statement: ")):
                sql = msg.split(": ", 1)[1]
                if "pg_reload_conf" in sql or "log_statement" in sql:
                    continue
                stmts.append([sql, {}])
            elif kind == "DETAIL" and msg.startswith("parameters:") and stmts:
                for n, v in re.findall(r"\$(\d+) = (NULL|'(?:[^']|'')*')", msg):
                    stmts[-1][1][int(n)] = None if v == "NULL" else v[1:-1].replace("''", "'")
        uuid_re = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        # Ids that belong to the captured loan follow the loan pgbench picks (bench_loans has them).
        cols = ("fund_id", "centre_id", "policy_id", "borrower_id")
        own = dict(zip(self.cl.psql(db, f"SELECT {', '.join(cols)} FROM loans WHERE id = '{loan}'").split("|"),
                       ("p_" + c for c in cols)))
        # Ids that existed before: users, banks (the same for every request of this bank user).
        seen = set(self.cl.psql(db, "SELECT id FROM users UNION ALL SELECT id FROM banks").split())
        fresh = {}  # UUIDs the request made (first seen in an INSERT) -> pgbench variable
        body = []
        for sql, params in stmts:
            is_insert = sql.lstrip().upper().startswith("INSERT")
            for v in params.values():
                if v and uuid_re.match(v) and v not in seen and v != loan and v not in own and is_insert:
                    fresh.setdefault(v, f"u{len(fresh)}")
                if v:
                    seen.add(v)

            def sub(m):
                v = params.get(int(m.group(1)))
                if v is None:
                    return "NULL"
                if v == loan:
                    return ":loan_id"
                if v == "{" + loan + "}":
                    return "ARRAY[:loan_id::uuid]"
                if v in own:
                    return ":" + own[v]
                if v in fresh:
                    return ":" + fresh[v]
                # An id the request made, as a one-element array (the allocations' unnest).
                if v.startswith("{") and v.endswith("}") and v[1:-1] in fresh:
                    return f"ARRAY[:{fresh[v[1:-1]]}::uuid]"
                if v == ref:
                    return ":ref"
                return "'" + v.replace("'", "''") + "'"

            line = re.sub(r"\$(\d+)", sub, sql) if params else sql
            body.append(" ".join(line.split()) + ";")
        head = ["\\set k random(0, :nloans - 1)",
                "SELECT id AS loan_id, " + ", ".join(f"{c} AS p_{c}" for c in cols) +
                " FROM bench_loans WHERE k = :k \\gset",
                "SELECT " + ", ".join(f"gen_random_uuid() AS {v}" for v in list(fresh.values()) + ["ref"]) + " \\gset"]
        log(f"captured {len(body)} statements of one repayment request ({len(fresh)} new ids)")
        return "\n".join(head + body) + "\n", len(body)

    def settle(self, db):
        """Lets the database finish what the benchmarks before left it (autovacuum of the rows
        they wrote, a checkpoint), so that the next one measures itself, not their tail."""
        t = time.time()
        self.cl.psql(db, "CHECKPOINT")
        while time.time() - t < 120 and int(self.cl.psql(
                db, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")):
            time.sleep(1)
        log(f"settled in {time.time() - t:.1f} s")
        return time.time() - t

    def import_file(self, db):
        """Benchmark 4: danbao import-repayments on a generated file."""
        settled = self.settle(db)
        rows = self.a.import_rows
        loans = self.cl.psql(db, f"SELECT l.id FROM loans l JOIN banks b ON b.id = l.bank_id WHERE b.code = '{BANK}' "
                                 "AND l.status = 'active' ORDER BY l.id DESC LIMIT 5000").split()
        path = Path(self.work) / "repayments.csv"
        day = str(today())
        run_id = f"F{int(time.time())}"
        with open(path, "w", newline="") as f:
            f.write("bank_reference,value_date,amount,loan_id,bank_account_no\r\n")
            for i in range(rows):
                f.write(f"{run_id}-{i:07},{day},1.00,{loans[i % len(loans)]},\r\n")
        env = dict(os.environ, DATABASE_URL=self.cl.url(db), DANBAO_DATA_KEY=DATA_KEY)
        secs, rss, rc, out = time_v([str(self.bin), "import-repayments", "--bank", BANK, str(path)], env)
        self.commands.append(f"/usr/bin/time -v danbao import-repayments --bank {BANK} repayments.csv "
                             f"({rows:,} rows over {len(loans):,} active loans, value date today)")
        tail = " ".join(out.strip().splitlines()[-3:])[:300]
        self.row("4. `danbao import-repayments`", f"{rows:,} rows", "", "", f"{rows / secs:,.0f} rows/s",
                 f"{secs:,.1f} s, peak RSS {rss / 1024:.0f} MiB, exit {rc}", "≥ 20,000 rows/s",
                 "yes" if rows / secs >= 20000 and rc == 0 else "no")
        self.notes.append(f"import-repayments said: {tail}")
        self.notes.append(f"before the import, the database was left to settle after the HTTP benchmarks "
                          f"(CHECKPOINT, then until no autovacuum worker ran): {settled:.1f} s")

    def verify(self, db, label):
        env = dict(os.environ, DATABASE_URL=self.cl.url(db), DANBAO_DATA_KEY=DATA_KEY)
        secs, rss, rc, out = time_v([str(self.bin), "verify"], env)
        fails = [l for l in out.splitlines() if l.startswith("FAIL")]
        self.row("`danbao verify` after the benchmarks", label, "", "", "", f"{secs:,.0f} s, exit {rc}",
                 "passes", "yes" if rc == 0 else "NO: " + "; ".join(fails)[:200])

    # ------------------------------------------------------------ driver
    def main(self):
        a = self.a
        if not a.no_build:
            env = dict(os.environ)
            run(["nice", "-n", "10", "cargo", "build", "--release", "--bin", "danbao"], cwd=ROOT, env=env)
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        self.bin = Path(a.binary) if a.binary else target / "release" / "danbao"
        if not shutil.which("wrk"):
            if os.geteuid() != 0:
                sys.exit("wrk is missing: apt-get install wrk")
            run(["apt-get", "install", "-y", "-qq", "wrk"])
        self.work = tempfile.mkdtemp(prefix="danbao-bench-")
        os.chmod(self.work, 0o755)
        self.cl = Cluster(self.work, a.pg_port)
        self.cl.start()
        # Read now: write() runs after the cluster is stopped.
        self.pg_version = self.cl.version()
        self.port = a.http_port
        try:
            self.run_all()
        finally:
            self.cl.stop()
            if not a.keep:
                shutil.rmtree(self.work, ignore_errors=True)
            else:
                log(f"kept {self.work}")
        self.write()

    def run_all(self):
        a = self.a
        small, large = a.loans_small, a.loans_large
        stats = {}
        self.demo("bench_small", small)
        self.table_sizes("bench_small", f"{small:,} loans")
        srv = Server(self.bin, self.cl.url("bench_small"), self.port, self.work)
        try:
            api = Api(self.port)
            self.setup_world(api)
            stats[small] = self.stats(api, small, f"{small:,} loans")
            approved = self.approvals(api, a.applications)
            self.loan_reads(api, approved)
            self.repayments(api, "bench_small")
            self.import_file("bench_small")
        finally:
            self.hwm = max(self.hwm, srv.stop())
        if not a.no_verify:
            self.verify("bench_small", f"{small:,}-loan database")
        self.pgbench("bench_small")
        self.cl.psql("postgres", "DROP DATABASE bench_small")
        if large and large != small:
            self.demo("bench_large", large)
            self.table_sizes("bench_large", f"{large:,} loans")
            srv = Server(self.bin, self.cl.url("bench_large"), self.port, self.work)
            try:
                stats[large] = self.stats(Api(self.port), large, f"{large:,} loans")
            finally:
                self.hwm = max(self.hwm, srv.stop())
            for name in stats[small]:
                g = stats[large][name] / stats[small][name]
                self.row(f"3. growth of the {name} p50", f"{small:,} → {large:,} loans", "", "", "", f"{g:.2f}×",
                         "< 3× from 100,000 to 1,000,000", "yes" if g < 3 else "no")
        self.row("6. server peak RSS (VmHWM) over all of it", "", "", "", "", f"{self.hwm / 1024:.0f} MiB",
                 "< 150 MiB", "yes" if self.hwm < 150 * 1024 else "no")

    def sizes_md(self):
        out = []
        for label, rows in self.sizes.items():
            out += [f"{label}:", "", "| table | rows | total MiB | heap MiB | bytes per row (total) |",
                    "| --- | ---: | ---: | ---: | ---: |"]
            out += [f"| {t} | {r:,} | {b / 2**20:,.1f} | {h / 2**20:,.1f} | {b / r:,.0f} |" if r > 0 else
                    f"| {t} | {r:,} | {b / 2**20:,.1f} | {h / 2**20:,.1f} | |" for t, r, b, h in rows]
            out.append("")
        return "\n".join(out)

    def write(self):
        self.load.append(os.getloadavg()[1])
        header = ["benchmark", "size", "median", "p99", "throughput", "ratio / result", "target", "met"]
        table = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        table += ["| " + " | ".join(str(c) for c in r) + " |" for r in self.rows]
        print("\n".join(table))
        if self.a.no_write:
            return
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        args = " ".join(sys.argv[1:])
        doc = f"""# Benchmarks

Written by `bench/run {args}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit `{commit}`.
Do not edit by hand: run `bench/run` again (`bench/run --help` for the sizes).

## Machine
- {os.cpu_count()} CPUs (`nproc`), {cpu}; {mem / 1024 / 1024:.1f} GiB memory; {platform.platform()}
- PostgreSQL {self.pg_version} on the same machine: a private cluster started by the harness
  (initdb defaults, `shared_buffers=512MB`, fsync and synchronous commit on), on 127.0.0.1
- 5-minute load average {self.load[0]:.1f} at the start, {self.load[1]:.1f} at the end (other work on the
  machine shares the cores: compare runs made at similar load)
- `danbao serve` release build, 2 workers, pool of 16 (the defaults); wrk and pgbench on the same
  machine too, so client, server and database share the cores

## Results
{chr(10).join(table)}

## How each figure is made
1. wrk (`bench/repay.lua`, 2 threads, {CLIENTS} connections, {self.a.duration} s) posts repayments of 1.00
   with unique `bank_reference`s on random active loans of one bank as its bank user. The SQL of one
   such request is captured from PostgreSQL's log (`log_statement = all`) and replayed by pgbench with
   {CLIENTS} clients on random loans of the same set (new ids from `gen_random_uuid()`; one extra
   statement per transaction picks the loan). The ratio is HTTP requests/s over pgbench tps.
2. wrk, one connection, {self.a.duration} s each, on two loans the harness disburses today and repays once and
   500 times (as the bank).
3. Sequential GETs as `sup.jx` (province supervisor) on one keep-alive connection, period last year;
   as many requests as fit in {self.a.stats_budget} s, between 3 and {self.a.stats_requests}.
4. A CSV of {self.a.import_rows:,} rows (1.00 each, value date today) over the bank's active loans;
   elapsed wall time and `Maximum resident set size` from `/usr/bin/time -v`. It starts once the
   database has settled after the HTTP benchmarks (`CHECKPOINT`, then no autovacuum worker
   running): their tail made the same file about 10 % slower.
5. A new fund of the Nanchang centre with room for half of {self.a.applications} applications (12,000.00 each,
   entered by `clerk.nanchang.1`); 32 new clerks of that centre, one thread and connection each,
   approve them all at once. Met when exactly the room's worth is approved, the rest get 409
   `fund_capacity_exceeded`, and the fund's guaranteed total equals the approved principal.
6. `VmHWM` of the `danbao serve` process(es) from `/proc/PID/status`, the largest of them.

## The largest tables after `danbao demo`
Rows (`reltuples` after `ANALYZE`), total bytes with indexes and TOAST (`pg_total_relation_size`)
and bytes per row; docs/scaling.md extrapolates from these.

{self.sizes_md()}

## Commands
```
{chr(10).join(self.commands)}
```

## Notes
{chr(10).join("- " + n for n in self.notes) or "-"}
"""
        (ROOT / "docs").mkdir(exist_ok=True)
        (ROOT / "docs" / "benchmarks.md").write_text(doc)
        log("wrote docs/benchmarks.md")


def main():
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loans-small", type=int, default=100_000)
    p.add_argument("--loans-large", type=int, default=1_000_000, help="0 to skip the large database")
    p.add_argument("--quick", action="store_true",
                   help="small sizes to try the harness in a few minutes: 5,000 and 20,000 loans, "
                        "10,000-row file, 10 s runs")
    p.add_argument("--from-year", type=int, default=2006)
    p.add_argument("--duration", type=int, default=30, help="seconds of each wrk/pgbench run")
    p.add_argument("--import-rows", type=int, default=100_000)
    p.add_argument("--applications", type=int, default=640)
    p.add_argument("--stats-requests", type=int, default=50)
    p.add_argument("--stats-budget", type=float, default=60, help="seconds per statistics endpoint")
    p.add_argument("--pg-port", type=int, default=55432)
    p.add_argument("--http-port", type=int, default=18280)
    p.add_argument("--no-build", action="store_true", help="use the release binary as it is")
    p.add_argument("--binary", help="this danbao binary instead of the release build (implies --no-build)")
    p.add_argument("--no-verify", action="store_true", help="skip `danbao verify` after the benchmarks")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--keep", action="store_true", help="keep the cluster's directory")
    a = p.parse_args()
    a.no_build = a.no_build or bool(a.binary)
    if a.quick:
        a.loans_small, a.loans_large = min(a.loans_small, 5_000), min(a.loans_large, 20_000)
        a.import_rows, a.duration, a.applications = min(a.import_rows, 10_000), min(a.duration, 10), min(
            a.applications, 128)
        a.stats_budget = min(a.stats_budget, 15)
    Bench(a).main()


if __name__ == "__main__":
    main()
