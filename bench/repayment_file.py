#!/usr/bin/env python3
"""Seeds active loans through a running `danbao serve` and writes a daily repayment file.

    python3 bench/repayment_file.py seed  --base http://127.0.0.1:8080 --admin-password PW --loans 3000 --out /tmp/loans.csv
    python3 bench/repayment_file.py file  --loans-csv /tmp/loans.csv --rows 100000 --out /tmp/repayments.csv

The world: Jiangxi/Nanchang, one centre, bank JXRCU with user `teller`, the policy presets,
one fund with 10,000,000.00, and N loans of 12,000.00 over 12 months disbursed on
2025-01-15 with account numbers ACC-<n>. The file spreads its rows over the loans (10.00 each,
value dates in March 2025 or --month), half by loan_id and half by bank_account_no. `--loans-csv`
may also come from a `danbao demo` database (`loan_id,bank_account_no` of one bank's active loans).
"""
import argparse
import http.client
import json
import sys
import urllib.parse
from datetime import date, timedelta

PASSWORD = "Bench password 1"


class Api:
    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port or 80)

    def call(self, method, path, token=None, body=None, ok=(200, 201)):
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status not in ok:
            sys.exit(f"{method} {path}: {r.status} {data[:500]!r}")
        return json.loads(data) if data else None

    def token(self, username, password):
        return self.call("POST", "/v1/auth/token", body={"username": username, "password": password})["access_token"]


def national_id(i):
    birth = date(1975, 1, 1) + timedelta(days=i // 1000)
    body = f"360102{birth:%Y%m%d}{i % 1000:03}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    s = sum(int(c) * w for c, w in zip(body, weights))
    return body + "10X98765432"[s % 11]


def seed(a):
    api = Api(a.base)
    admin = api.token("admin", a.admin_password)
    for code, name in [("360000", "江西省"), ("360100", "南昌市")]:
        api.call("POST", "/v1/regions", admin, {"code": code, "name": name})
    centre = api.call("POST", "/v1/centres", admin, {"name": "南昌市担保中心", "region_code": "360100"})
    bank = api.call("POST", "/v1/banks", admin, {"code": "JXRCU", "name": "江西农信"})
    api.call("POST", "/v1/policies/presets", admin, {})
    for u, role, scope in [("wang", "clerk", {"centre_id": centre["id"]}), ("lihua", "clerk", {"centre_id": centre["id"]}),
                           ("teller", "bank", {"bank_id": bank["id"]})]:
        api.call("POST", "/v1/users", admin, {"username": u, "display_name": u, "role": role, "password": PASSWORD, **scope})
    tokens = {u: api.token(u, PASSWORD) for u in ("wang", "lihua", "teller")}
    fund = api.call("POST", "/v1/funds", tokens["wang"], {"name": "南昌基金"})
    api.call("POST", f"/v1/funds/{fund['id']}/contributions", tokens["wang"],
             {"value_date": "2024-01-02", "amount": "10000000.00", "source": "city_finance"})
    with open(a.out, "w") as out:
        out.write("loan_id,bank_account_no\n")
        for i in range(a.loans):
            if i % 500 == 0:  # tokens live 15 minutes
                tokens = {u: api.token(u, PASSWORD) for u in ("wang", "lihua", "teller")}
                print(f"{i} loans", file=sys.stderr)
            b = api.call("POST", "/v1/borrowers", tokens["wang"], {
                "kind": "individual", "category": "laid_off", "name": f"张{i}", "national_id": national_id(i),
                "employment_certificate_no": f"JX{i:06}"})
            loan = api.call("POST", "/v1/loans", tokens["wang"], {
                "borrower_id": b["id"], "bank_id": bank["id"], "fund_id": fund["id"], "principal": "12000.00",
                "term_months": 12, "annual_rate": "0.0435", "schedule_method": "equal_principal", "purpose": "早餐店",
                "micro_profit": True, "jobs_declared": 2, "applied_on": "2025-01-05",
                "counter_guarantee": {"kind": "mortgage", "description": "房产抵押"}})
            api.call("POST", f"/v1/loans/{loan['id']}/approval", tokens["lihua"], {"decided_on": "2025-01-10"})
            acc = f"ACC-{i + 1}"
            api.call("POST", f"/v1/loans/{loan['id']}/disbursement", tokens["teller"],
                     {"value_date": "2025-01-15", "bank_account_no": acc})
            out.write(f"{loan['id']},{acc}\n")


def file(a):
    with open(a.loans_csv) as f:
        loans = [line.strip().split(",") for line in f.readlines()[1:] if line.strip()]
    n = len(loans)
    with open(a.out, "w", newline="") as out:
        out.write("bank_reference,value_date,amount,loan_id,bank_account_no\r\n")
        for i in range(a.rows):
            loan_id, acc = loans[i % n]
            day = 1 + (i // n) % 28
            if i % 2 == 0:
                out.write(f"{a.prefix}-{i:06},{a.month}-{day:02},10.00,{loan_id},\r\n")
            else:
                out.write(f"{a.prefix}-{i:06},{a.month}-{day:02},10.00,,{acc}\r\n")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--base", default="http://127.0.0.1:8080")
    s.add_argument("--admin-password", required=True)
    s.add_argument("--loans", type=int, default=3000)
    s.add_argument("--out", required=True)
    f = sub.add_parser("file")
    f.add_argument("--loans-csv", required=True)
    f.add_argument("--rows", type=int, default=100000)
    f.add_argument("--prefix", default="B")
    f.add_argument("--month", default="2025-03", help="value dates: days 1 to 28 of this month (YYYY-MM)")
    f.add_argument("--out", required=True)
    a = p.parse_args()
    seed(a) if a.cmd == "seed" else file(a)


if __name__ == "__main__":
    main()
