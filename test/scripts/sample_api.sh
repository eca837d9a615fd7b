#!/usr/bin/env bash
# test/scripts/sample_api.sh — self-test of the sample case API
# (test/sample_api.py, reference in test/sample_api.md).
#
# Starts two servers on free ports (the default 250 cases, and 10001 cases
# for the wider id format), exercises every endpoint and every control knob
# with a small Python client (urllib/http.client/socket, standard library
# only), then stops them with SIGTERM and SIGINT.  Needs python3 only: no
# PostgreSQL, no curl.  Prints "ok N - ..." / "not ok N - ..." lines and
# "N passed, M failed"; exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
export LC_ALL=C
source test/lib.sh          # wait_until (its ok is replaced below; no psql is run)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wq-sample-api.XXXXXX")
pid_a=
pid_b=

cleanup() {
    [[ -n $pid_a ]] && kill "$pid_a" 2>/dev/null
    [[ -n $pid_b ]] && kill "$pid_b" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

n=0
passed=0
failed=0

ok() {                      # ok CONDITION-EXIT-STATUS DESCRIPTION
    n=$((n + 1))
    if [[ $1 == 0 ]]; then
        echo "ok $n - $2"
        passed=$((passed + 1))
    else
        echo "not ok $n - $2"
        failed=$((failed + 1))
        return 1
    fi
}

wait_for_file() {           # wait_for_file PATH PID: up to 30 s, while PID lives
    wait_until -i 0.05 30 "$1 to be written by process $2" written_or_gone "$1" "$2" && [[ -s $1 ]]
}
written_or_gone() { [[ -s $1 ]] || ! kill -0 "$2" 2>/dev/null; }   # written_or_gone PATH PID

# 1. Start the servers: --port 0, port read back from --port-file.
python3 test/sample_api.py --port 0 --port-file "$tmp/port_a" >"$tmp/out_a" 2>"$tmp/err_a" &
pid_a=$!
python3 test/sample_api.py --port 0 --cases 10001 --port-file "$tmp/port_b" >"$tmp/out_b" 2>"$tmp/err_b" &
pid_b=$!
wait_for_file "$tmp/port_a" "$pid_a"; ok $? "server starts and writes --port-file"
wait_for_file "$tmp/port_b" "$pid_b"; ok $? "server with --cases 10001 starts"
port_a=$(cat "$tmp/port_a" 2>/dev/null)
port_b=$(cat "$tmp/port_b" 2>/dev/null)
if [[ -z $port_a || -z $port_b ]]; then
    echo "# server did not start:"; sed 's/^/#   /' "$tmp/err_a" "$tmp/err_b"
    echo "$passed passed, $((failed + 1)) failed"
    exit 1
fi
wait_until -i 0.02 2 "the server to print its first line" test -s "$tmp/out_a"
[[ $(cat "$tmp/out_a") == "listening on 127.0.0.1:$port_a" ]]
ok $? "stdout is exactly one line 'listening on 127.0.0.1:$port_a'"

# 2. Any host but 127.0.0.1 is refused.
for h in 0.0.0.0 localhost ::1; do
    timeout 30 python3 test/sample_api.py --port 0 --host "$h" >"$tmp/out_h" 2>"$tmp/err_h"
    rc=$?
    [[ $rc != 0 && $rc != 124 && ! -s $tmp/out_h ]] && grep -q "only 127.0.0.1" "$tmp/err_h"
    ok $? "--host $h is refused" || { echo "#   exit status $rc"; sed 's/^/#   /' "$tmp/out_h" "$tmp/err_h"; }
done

# 3. Every endpoint and every control knob, from a Python client.
python3 - "$port_a" "$port_b" "$n" "$tmp/counts" <<'PY'
import base64, http.client, json, socket, sys, threading, time
import urllib.error, urllib.parse, urllib.request

PORT, PORT_B, N0, COUNTS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
n, passed, failed = N0, 0, 0


def ok(cond, desc, diag=None):
    global n, passed, failed
    n += 1
    if cond:
        passed += 1
        print("ok %d - %s" % (n, desc))
    else:
        failed += 1
        print("not ok %d - %s" % (n, desc))
        if diag is not None:
            for line in str(diag)[:2000].splitlines():
                print("#   " + line)
    sys.stdout.flush()
    return cond


class Resp:
    def __init__(self, status, headers, body, elapsed):
        self.status, self.headers, self.body, self.elapsed = status, headers, body, elapsed

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def h(self, name):
        return self.headers.get(name)

    def __repr__(self):
        return "HTTP %s %s %r" % (self.status, dict(self.headers), self.body[:300])


def req(path, method="GET", body=None, port=None, follow=False):
    """One request on a fresh connection; never raises on HTTP errors."""
    url = path if path.startswith("http") else "http://127.0.0.1:%d%s" % (port or PORT, path)
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    r = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        r.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener() if follow else NOREDIRECT
    t = time.time()
    try:
        f = opener.open(r, timeout=30)
    except urllib.error.HTTPError as e:
        f = e
    b = f.read()
    return Resp(f.status if hasattr(f, "status") else f.code, f.headers, b, time.time() - t)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


NOREDIRECT = urllib.request.build_opener(NoRedirect)


def get_json(path, **kw):
    r = req(path, **kw)
    return r.json() if r.status == 200 else None


def control(obj):
    r = req("/_control", "POST", obj)
    assert r.status == 200, r
    return r.json()


REGIONS = ["emea", "amer", "apac"]


def expected(i, cid=None, width=4):
    return {"id": cid if cid is not None else "C-%0*d" % (width, i), "name": "Case %d" % i,
            "severity": (i % 5) + 1, "status": "open", "version": 1,
            "details": {"customer": "cust-%d" % (i % 7), "region": REGIONS[i % 3]}}


ALL = ["C-%04d" % i for i in range(1, 251)]


def check(desc, fn):
    """Run fn() -> (bool, diag); an exception is a failure."""
    try:
        res = fn()
        cond, diag = res if isinstance(res, tuple) else (res, None)
    except Exception as e:
        cond, diag = False, repr(e)
    return ok(cond, desc, diag)


# ---------------------------------------------------------------- data
def t_ids():
    r = req("/cases/ids")
    ids = r.json()
    return (r.status == 200 and r.h("Content-Type") == "application/json"
            and r.h("Content-Length") == str(len(r.body)) and ids == ALL), (r, ids[:3])
check("GET /cases/ids: C-0001..C-0250 sorted, application/json, Content-Length", t_ids)

def t_record():
    got = [get_json("/cases/C-%04d" % i) for i in (1, 7, 15, 250)]
    want = [expected(i) for i in (1, 7, 15, 250)]
    return got == want, (got, want)
check("GET /cases/<id>: deterministic record shape (severity, customer, region)", t_record)

def t_wide():
    ids = get_json("/cases/ids", port=PORT_B)
    rec = get_json("/cases/C-10001", port=PORT_B)
    return (len(ids) == 10001 and ids[0] == "C-00001" and ids[-1] == "C-10001"
            and rec == expected(10001, width=5)), (ids[:2], ids[-2:], rec)
check("--cases 10001: ids are 5 digits wide (C-00001..C-10001)", t_wide)

def t_numeric():
    ids = get_json("/numeric/ids")
    recs = get_json("/numeric/details?ids=1,7,99")
    post = get_json("/numeric/details", method="POST", body=[2, "3"])
    return (ids == list(range(1, 21)) and recs == [expected(1, 1), expected(7, 7)]
            and post == {"records": [expected(2, 2), expected(3, 3)]}), (ids, recs, post)
check("numeric dataset: /numeric/ids is [1..20], /numeric/details has integer ids", t_numeric)

# ---------------------------------------------------------------- listings
def walk_next(first, key="ids"):
    out, url, pages = [], first, 0
    while url is not None and pages < 1000:
        body = get_json(url)
        out.extend(body[key]); url = body["next"]; pages += 1
        if url is not None and not url.startswith("/"):
            raise AssertionError("next is not relative: %r" % url)
    return out, pages

def t_next():
    ids, pages = walk_next("/cases/ids/next?page=1&per_page=50")
    ids7, pages7 = walk_next("/cases/ids/next?per_page=7")
    last = get_json("/cases/ids/next?page=5&per_page=50")
    first = get_json("/cases/ids/next")
    return (ids == ALL and pages == 5 and ids7 == ALL and pages7 == 36 and last["next"] is None
            and first["next"] == "/cases/ids/next?page=2&per_page=50"), (pages, pages7, last["next"])
check("next-URL pagination: relative next, null on the last page, pages cover all ids", t_next)

def parse_link(h):
    links = {}
    for part in (h or "").split(","):
        part = part.strip()
        if not part:
            continue
        url, _, params = part.partition(";")
        rel = params.split("rel=", 1)[1].strip().strip('"')
        links[rel] = url.strip()[1:-1]
    return links

def t_link():
    out, url, pages, headers = [], "/cases/ids/link?page=1&per_page=50", 0, []
    while url and pages < 100:
        r = req(url)
        out.extend(r.json()); headers.append(r.h("Link")); pages += 1
        url = parse_link(r.h("Link")).get("next")
        if url and not url.startswith("http://127.0.0.1:%d/" % PORT):
            raise AssertionError("next link not absolute: %r" % url)
    first = parse_link(headers[0])
    return (out == ALL and pages == 5 and headers[-1] is None and "first" in first
            and first["next"].endswith("page=2&per_page=50")), (pages, headers[:2], headers[-1])
check("Link-header pagination: absolute rel=next plus rel=first, no Link on the last page", t_link)

def t_cursor():
    out, cur, pages, cursors = [], None, 0, []
    while pages < 100:
        q = "/cases/ids/cursor?per_page=60" + ("&cursor=" + urllib.parse.quote(cur, safe="") if cur else "")
        body = get_json(q)
        out.extend(d["id"] for d in body["data"]); pages += 1
        cur = body.get("meta", {}).get("next_cursor")
        if cur is None:
            break
        cursors.append(cur)
    bad = req("/cases/ids/cursor?cursor=not-a-cursor")
    return (out == ALL and pages == 5 and all(not c.isdigit() for c in cursors)
            and bad.status == 400), (pages, cursors, bad)
check("cursor pagination: opaque next_cursor, null at the end, invalid cursor -> 400", t_cursor)

def t_offset():
    out, start, total, pages = [], 0, None, 0
    while pages < 100:
        body = get_json("/cases/ids/offset?startAt=%d&maxResults=100" % start)
        total = body["total"]; vals = [v["id"] for v in body["values"]]
        out.extend(vals); pages += 1; start += len(vals)
        if len(vals) < 100 or start >= total:
            break
    d = get_json("/cases/ids/offset")
    big = get_json("/cases/ids/offset?startAt=0&maxResults=1000")
    return (out == ALL and total == 250 and pages == 3 and d["startAt"] == 0 and d["maxResults"] == 50
            and len(d["values"]) == 50 and big["maxResults"] == 100 and len(big["values"]) == 100), (pages, d["maxResults"])
check("offset pagination (Jira style): total, default 50, max 100", t_offset)

def t_search():
    recs, pages = walk_next("/cases/search?page=1&per_page=100", key="issues")
    return ([r["id"] for r in recs] == ALL and pages == 3
            and recs[0] == expected(1) and recs[-1] == expected(250)), pages
check("GET /cases/search: whole records, next-URL pagination", t_search)

# ---------------------------------------------------------------- details
def t_details_get():
    a = get_json("/cases/details?ids=C-0001,C-0002")
    b = get_json("/cases/details?ids=" + ",".join(urllib.parse.quote(i, safe="") for i in ["C-0003", "nope", "C-0004"]))
    c = get_json("/cases/details?ids=C%2D0005")
    return (a == [expected(1), expected(2)] and b == [expected(3), expected(4)]
            and c == [expected(5)]), (a, b, c)
check("GET /cases/details?ids=: records, URL-decoded ids, unknown ids omitted", t_details_get)

def t_details_post():
    r = req("/cases/details", "POST", ["C-0010", "zzz", "C-0011"])
    bad = [req("/cases/details", "POST", {"ids": ["C-0001"]}).status,
           req("/cases/details", "POST", b"not json").status,
           req("/cases/details", "POST", "C-0001").status]
    return (r.status == 200 and r.json() == {"records": [expected(10), expected(11)]}
            and bad == [400, 400, 400]), (r, bad)
check("POST /cases/details: {records: [...]}; a body that is not a JSON array -> 400", t_details_post)

def t_one():
    r = req("/cases/C-9999")
    return r.status == 404 and r.json() == {"error": "not found"}, r
check("GET /cases/<unknown> -> 404 {error: not found}", t_one)

# ---------------------------------------------------------------- control: data
def t_open():
    odd = "A&B 1,x/é"
    st = control({"open": ["C-0005", "C-0002", "NEW-1", odd]})
    ids = get_json("/cases/ids")
    det = get_json("/cases/details?ids=C-0001,C-0002,NEW-1," + urllib.parse.quote(odd, safe=""))
    closed = get_json("/cases/C-0001")
    return (st["open_count"] == 4 and ids == sorted(["C-0002", "C-0005", "NEW-1", odd])
            and [d["id"] for d in det] == ["C-0002", "NEW-1", odd] and closed["status"] == "closed"
            and closed["id"] == "C-0001"), (st, ids, det, closed)
check("control open: replaces the open set, creates unknown ids, closed cases omitted from details", t_open)

def t_update():
    control({"update": {"C-0002": {"name": "x", "severity": 2}}})
    a = get_json("/cases/C-0002")
    control({"update": {"C-0002": {"details": {"region": "apac"}}}})
    b = get_json("/cases/details?ids=C-0002")[0]
    control({"update": {"C-0002": {"status": "closed"}}})
    c = get_json("/cases/ids")
    return (a["name"] == "x" and a["severity"] == 2 and a["version"] == 2 and b["version"] == 3
            and b["details"] == {"customer": "cust-2", "region": "apac"} and "C-0002" not in c), (a, b, c)
check("control update: merges fields and bumps version; status closed removes from the open set", t_update)

def t_no_id_bad_sev():
    control({"reset": True, "no_id": ["C-0001", 3], "bad_severity": ["C-0002"]})
    d = get_json("/cases/details?ids=C-0001,C-0002,C-0003")
    s = get_json("/cases/search?per_page=2")["issues"]
    n3 = get_json("/numeric/details?ids=3,4")
    return ("id" not in d[0] and d[1]["severity"] == 9 and d[2]["id"] == "C-0003" and "id" not in s[0]
            and "id" not in n3[0] and n3[1]["id"] == 4), (d, n3)
check("control no_id / bad_severity: records served without id / with severity 9", t_no_id_bad_sev)

# ---------------------------------------------------------------- control: faults
def t_fail_every():
    control({"reset": True, "fail_every": 3})
    paths = ["/cases/ids", "/cases/details?ids=C-0001", "/cases/ids/next", "/cases/C-0001",
             "/cases/ids/offset", "/cases/details?ids=C-0002", "/numeric/ids", "/status/200",
             "/cases/search", "/numeric/details?ids=1"]
    st = [req(p).status for p in paths]
    stats = get_json("/_stats")
    want = [200, 200, 500, 200, 200, 500, 200, 200, 200, 500]   # /status/200 is not counted
    return st == want and stats["failed"] == 3 and stats["injected"] == 3, (st, stats)
check("fail_every 3: every 3rd listing/details request fails (counted together)", t_fail_every)

def t_fail_first():
    control({"reset": True, "fail_first": 2, "fail_status": 429, "retry_after": 2})
    rs = [req("/cases/ids/next") for _ in range(3)]
    return ([r.status for r in rs] == [429, 429, 200] and rs[0].h("Retry-After") == "2"
            and rs[0].json().get("status") == 429), rs
check("fail_first 2 + fail_status 429 + retry_after 2: two 429s with Retry-After: 2, then success", t_fail_first)

def t_fail_503():
    control({"reset": True, "fail_first": 1, "fail_status": 503})
    a = req("/cases/details", "POST", ["C-0001"]); b = req("/cases/details", "POST", ["C-0001"])
    control({"reset": True, "fail_first": 1})
    c = req("/cases/ids")
    return (a.status == 503 and a.h("Retry-After") == "1" and b.status == 200
            and c.status == 500 and c.h("Retry-After") is None), (a, c)
check("fail_status 503 sets Retry-After (default 1); the default 500 does not", t_fail_503)

def t_slow_ms():
    control({"reset": True, "slow_ms": 250})
    a = req("/cases/ids/next?per_page=5"); b = req("/cases/details?ids=C-0001"); c = req("/status/200")
    return a.elapsed >= 0.25 and b.elapsed >= 0.25 and c.elapsed < 0.2, (a.elapsed, b.elapsed, c.elapsed)
check("slow_ms 250: listing and details responses are delayed, utilities are not", t_slow_ms)

def t_malformed():
    control({"reset": True, "malformed_details_after": 2})
    rs = [req("/cases/details?ids=C-0001"), req("/cases/details", "POST", ["C-0001"]),
          req("/cases/details?ids=C-0001"), req("/cases/C-0002")]
    good = []
    for r in rs:
        try:
            r.json(); good.append(True)
        except ValueError:
            good.append(False)
    lst = get_json("/cases/ids")
    return ([r.status for r in rs] == [200] * 4 and good == [True, True, False, False]
            and lst == ALL), good
check("malformed_details_after 2: further details responses are truncated JSON; listings unaffected", t_malformed)

def t_listing_down():
    control({"reset": True, "listing_down": True})
    paths = ["/cases/ids", "/cases/ids/next", "/cases/ids/link", "/cases/ids/cursor",
             "/cases/ids/offset", "/cases/search", "/numeric/ids"]
    rs = [req(p) for p in paths]
    d = req("/cases/details?ids=C-0001")
    return (all(r.status == 503 and r.h("Retry-After") for r in rs) and d.status == 200), [r.status for r in rs]
check("listing_down: every listing endpoint answers 503 (details still work)", t_listing_down)

def t_fail_after_pages():
    control({"reset": True, "listing_fail_after_pages": 2})
    nx = [req("/cases/ids/next?page=%d" % p).status for p in (1, 2, 3, 4)]
    ln = [req("/cases/ids/link?page=%d" % p).status for p in (2, 3)]
    c2 = get_json("/cases/ids/cursor?per_page=50")["meta"]["next_cursor"]
    c3 = get_json("/cases/ids/cursor?per_page=50&cursor=" + urllib.parse.quote(c2, safe=""))["meta"]["next_cursor"]
    cr = req("/cases/ids/cursor?per_page=50&cursor=" + urllib.parse.quote(c3, safe="")).status
    off = [req("/cases/ids/offset?startAt=%d&maxResults=100" % s).status for s in (100, 200)]
    whole = req("/cases/ids").status
    return (nx == [200, 200, 500, 500] and ln == [200, 500] and cr == 500 and off == [200, 500]
            and whole == 200), (nx, ln, cr, off, whole)
check("listing_fail_after_pages 2: pages beyond the 2nd return 500 (next, link, cursor, offset)", t_fail_after_pages)

def t_forever():
    control({"reset": True, "pages_forever": True})
    last = get_json("/cases/ids/next?page=5&per_page=50")
    beyond = get_json("/cases/ids/next?page=99&per_page=50")
    link = req("/cases/ids/link?page=42&per_page=50")
    cur = base64.b64encode(b"offset:5000").decode()
    c = get_json("/cases/ids/cursor?per_page=50&cursor=" + urllib.parse.quote(cur, safe=""))
    return (last["next"] and beyond["next"] == "/cases/ids/next?page=100&per_page=50"
            and beyond["ids"] == ALL[200:] and link.json() == ALL[200:]
            and "page=43" in parse_link(link.h("Link")).get("next", "")
            and [d["id"] for d in c["data"]] == ALL[200:] and c["meta"]["next_cursor"]), (beyond["next"], link.h("Link"))
check("pages_forever: next/link/cursor always announce another page, repeating the last page", t_forever)

def t_fault_paths():
    control({"reset": True, "fault_paths": ["/cases/details"], "fail_first": 1})
    a = req("/cases/ids").status; b = req("/cases/details?ids=C-0001").status; c = req("/cases/details?ids=C-0001").status
    return [a, b, c] == [200, 500, 200], [a, b, c]
check("fault_paths: restricts fault injection to the named endpoints", t_fault_paths)

def t_control_errors():
    a = req("/_control", "POST", {"bogus": 1}); b = req("/_control", "POST", [1])
    c = req("/_control", "POST", {"fail_every": "x"}); d = req("/_control", "POST", {"update": {"C-0001": {"id": "y"}}})
    st = get_json("/_control")
    return ([r.status for r in (a, b, c, d)] == [400] * 4 and "bogus" in a.json()["error"]
            and st["fail_every"] == 0), [a, b, c, d]
check("control: unknown keys, wrong types -> 400, state untouched; GET /_control shows the state", t_control_errors)

def t_reset():
    control({"open": ["C-0001"], "update": {"C-0002": {"name": "q"}}, "fail_every": 2, "slow_ms": 10,
             "listing_down": True, "pages_forever": True, "no_id": ["C-0003"]})
    req("/cases/ids")
    st = control({"reset": True})
    stats = get_json("/_stats")
    r2 = get_json("/cases/C-0002"); r3 = get_json("/cases/C-0003")
    return (st["open_count"] == 250 and st["fail_every"] == 0 and st["slow_ms"] == 0 and not st["listing_down"]
            and not st["pages_forever"] and st["no_id"] == [] and stats["requests"] == 0
            and r2 == expected(2) and r3 == expected(3) and get_json("/cases/ids") == ALL), (st, stats)
check("control reset: back to the initial state, counters zeroed", t_reset)

# ---------------------------------------------------------------- utilities
def t_status():
    rs = {c: req("/status/%d" % c) for c in (200, 404, 418, 429, 500, 503)}
    e = req("/status/204")
    return (all(r.status == c and r.json() == {"status": c} for c, r in rs.items())
            and rs[429].h("Retry-After") == "1" and rs[503].h("Retry-After") == "1"
            and rs[500].h("Retry-After") is None and e.status == 204 and e.body == b""), rs
check("GET /status/<code>: that status, {status: code}, Retry-After on 429/503", t_status)

def t_slow():
    r = req("/slow?ms=300")
    return r.status == 200 and r.json() == {"slept": 300} and r.elapsed >= 0.3, r.elapsed
check("GET /slow?ms=300 sleeps, then {slept: 300}", t_slow)

def t_big():
    r = req("/big?bytes=1000000"); c = req("/big?bytes=300000&chunked=1")
    return (r.status == 200 and len(r.body) == 1000000 and len(r.json()["pad"]) > 999000
            and r.h("Content-Length") == "1000000" and len(c.body) == 300000 and c.json()
            and c.h("Transfer-Encoding") == "chunked"), (len(r.body), len(c.body))
check("GET /big?bytes=N: a JSON body of N bytes (also chunked=1, no Content-Length)", t_big)

def t_redirect():
    a = req("/redirect?n=3")
    b = req("/redirect?n=3", follow=True)
    return (a.status == 302 and a.h("Location") == "/redirect?n=2" and b.status == 200
            and b.json() == {"redirected": True}), (a, b)
check("GET /redirect?n=3: 302 to n=2 ... and {redirected: true} at 0", t_redirect)

def t_redirect_to():
    a = req("/redirect?to=http%3A%2F%2F127.0.0.1%3A9%2Fx%3Fa%3D1")
    b = req("/redirect?to=%2Fcases%2FC-0001", follow=True)
    c = req("/redirect?to=")
    return (a.status == 302 and a.h("Location") == "http://127.0.0.1:9/x?a=1" and b.status == 200
            and b.json()["id"] == "C-0001" and c.status == 400), (a, b, c)
check("GET /redirect?to=URL: 302 to exactly that URL (absolute or relative); empty is a 400", t_redirect_to)

def t_binary():
    r = req("/binary")
    try:
        r.body.decode("utf-8"); bad = False
    except UnicodeDecodeError:
        bad = True
    return r.status == 200 and bad and r.h("Content-Type") == "application/octet-stream", r
check("GET /binary: bytes that are not UTF-8, application/octet-stream", t_binary)

def t_invalid():
    r = req("/invalid-json")
    try:
        r.json(); bad = False
    except ValueError:
        bad = True
    return r.status == 200 and bad and r.h("Content-Type") == "application/json", r
check("GET /invalid-json: 200 with truncated JSON", t_invalid)

# ---------------------------------------------------------------- robustness
def t_unknown():
    a = req("/nope"); b = req("/cases/ids", "HEAD"); c = req("/cases/ids", "PUT", b"x"); d = req("/cases/a/b")
    return (a.status == 404 and a.json() == {"error": "not found"} and b.status == 404 and b.body == b""
            and c.status == 405 and c.json()["error"] and d.status == 404), (a, b, c, d)
check("unknown path -> 404 JSON, HEAD -> 404, wrong method -> 405 JSON", t_unknown)

def t_exception():
    a = req("/_error"); b = req("/cases/ids")
    return a.status == 500 and a.json()["error"] == "internal error" and b.status == 200, a
check("an exception in a handler -> 500 JSON, the server lives on", t_exception)

def t_garbage():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
    data = b""
    while True:
        x = s.recv(65536)
        if not x:
            break
        data += x
    s.close()
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.close()                       # connect and hang up at once
    head, _, body = data.partition(b"\r\n\r\n")
    return (head.startswith(b"HTTP/1.1 400") and json.loads(body)["error"]
            and req("/cases/ids").status == 200), data[:200]
check("garbage request -> 400 JSON, a client hanging up is harmless", t_garbage)

def t_keepalive():
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    c.connect(); sock = c.sock; statuses = []
    for p in ["/cases/ids", "/status/404", "/cases/details?ids=C-0001", "/nope", "/status/204",
              "/cases/ids/next"] * 5:
        c.request("GET", p); r = c.getresponse(); r.read(); statuses.append(r.status)
    c.request("POST", "/cases/details", body=json.dumps(["C-0001"]), headers={"Content-Type": "application/json"})
    r = c.getresponse(); body = json.loads(r.read())
    c.request("HEAD", "/cases/ids"); h = c.getresponse(); h.read()
    c.request("GET", "/cases/C-0001"); last = c.getresponse(); last.read()
    same = c.sock is sock
    c.close()
    return same and r.version == 11 and body["records"][0]["id"] == "C-0001" and last.status == 200, (statuses, same)
check("HTTP/1.1 keep-alive: 33 requests (errors, 204, POST, HEAD) on one connection", t_keepalive)

def t_stats():
    req("/_stats/reset", "POST")
    ts = [threading.Thread(target=req, args=("/slow?ms=1500",)) for _ in range(6)]
    [t.start() for t in ts]
    deadline = time.time() + 1.2
    while True:                     # until all six are in (a loaded box starts threads slowly)
        mid = get_json("/_stats")
        if mid["in_flight"] >= 6 or time.time() > deadline:
            break
        time.sleep(0.05)
    [t.join() for t in ts]
    req("/cases/details?ids=C-0001"); req("/status/503")
    s = get_json("/_stats")
    r = req("/_stats/reset", "POST").json()
    return (mid["in_flight"] == 6 and s["max_in_flight"] == 6 and s["max_in_flight_by_endpoint"]["/slow"] == 6
            and s["in_flight"] == 0 and s["requests"] == 8 and s["by_endpoint"] == {"/slow": 6, "/cases/details": 1, "/status/{code}": 1}
            and s["failed"] == 1 and r["requests"] == 0 and r["max_in_flight"] == 0), (mid, s, r)
check("/_stats: requests, by_endpoint, failed, in_flight, max_in_flight(_by_endpoint); reset", t_stats)

def t_concurrent_connections():
    results = []
    def one():
        results.append(req("/slow?ms=200").status)
    ts = [threading.Thread(target=one) for _ in range(40)]
    t0 = time.time(); [t.start() for t in ts]; [t.join() for t in ts]; el = time.time() - t0
    return results == [200] * 40 and el < 3, (len(results), el)
check("40 simultaneous connections to /slow?ms=200 are served concurrently", t_concurrent_connections)

def t_throughput():
    T, N = 8, 300
    errors = []
    def worker():
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
        for i in range(N):
            c.request("GET", "/cases/details?ids=C-%04d,C-0002" % (i % 250 + 1) if i % 2 else "/cases/C-0003")
            r = c.getresponse(); r.read()
            if r.status != 200:
                errors.append(r.status)
        c.close()
    ts = [threading.Thread(target=worker) for _ in range(T)]
    t0 = time.time(); [t.start() for t in ts]; [t.join() for t in ts]; el = time.time() - t0
    rate = T * N / el
    global THROUGHPUT
    THROUGHPUT = rate
    return not errors, (rate, errors[:5])
THROUGHPUT = 0
check("throughput: 2400 keep-alive requests from 8 threads, all 200", t_throughput)
print("# keep-alive throughput %.0f requests/s (the client shares the CPU)" % THROUGHPUT)

def t_latency():
    # A response written in two segments meets Nagle + delayed ACK: ~40 ms a
    # request on a kept-alive connection.  The median must stay far below.
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    times = []
    for i in range(200):
        t0 = time.time()
        if i % 2:
            c.request("POST", "/cases/details", body=b'["C-0001"]', headers={"Content-Type": "application/json"})
        else:
            c.request("GET", "/cases/C-0002")
        r = c.getresponse(); r.read()
        times.append(time.time() - t0)
    c.close()
    med = sorted(times)[len(times) // 2]
    return med < 0.02, "median %.1f ms" % (med * 1000)
check("keep-alive latency: median of 200 sequential requests < 20 ms (no Nagle stalls)", t_latency)

with open(COUNTS, "w") as f:
    f.write("%d %d %d\n" % (n, passed, failed))
PY
if read -r n p f <"$tmp/counts" 2>/dev/null; then
    passed=$((passed + p)); failed=$((failed + f))
else
    ok 1 "python client ran to the end"
fi

# 4. Alive after all that, then a clean stop on SIGTERM / SIGINT.
kill -0 "$pid_a" 2>/dev/null; ok $? "server still running after every test"
[[ ! -s $tmp/err_a ]]; ok $? "server wrote nothing to stderr"
stop() {                    # stop PID SIGNAL: exits 0 within 10 s
    kill -s "$2" "$1" 2>/dev/null || return 1
    wait_until -i 0.05 10 "process $1 to exit on SIG$2" gone "$1" || return 1
    wait "$1"
}
gone() { ! kill -0 "$1" 2>/dev/null; }     # gone PID: the process has exited
stop "$pid_a" TERM; ok $? "SIGTERM stops the server cleanly (exit 0)"
pid_a=
stop "$pid_b" INT; ok $? "SIGINT stops the server cleanly (exit 0)"
pid_b=
python3 - "$port_a" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    sys.exit(1)
except OSError:
    sys.exit(0)
PY
ok $? "nothing listens on the port afterwards"

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
