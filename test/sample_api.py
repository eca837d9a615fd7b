#!/usr/bin/env python3
"""test/sample_api.py - the sample case API that workqueue syncs from in tests.

A deterministic, in-memory "open cases" HTTP API (SPEC §4 and §7) with every
pagination style the sync engine supports, details endpoints, utility
endpoints for HTTP-client tests and a control endpoint for fault injection.
Python 3 standard library only.  Endpoint reference: test/sample_api.md.

    python3 test/sample_api.py --port 0 --port-file /tmp/port [--cases 250]

Binds 127.0.0.1 only.  Prints one line "listening on 127.0.0.1:PORT" once
ready, logs nothing per request, stops cleanly on SIGTERM/SIGINT.
"""

import argparse
import base64
import json
import os
import queue
import re
import signal
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, unquote_plus

HOST = "127.0.0.1"
JSON_TYPE = "application/json"
REGIONS = ("emea", "amer", "apac")
NUMERIC_COUNT = 20
MAX_BODY = 64 * 1024 * 1024          # request bodies
MAX_BIG = 2 * 1024 * 1024 * 1024     # /big
MAX_SLEEP_MS = 600000                # /slow, slow_ms
MAX_PER_PAGE = 10000                 # next/link/cursor/search listings
MAX_RESULTS = 100                    # offset (Jira style) listing

CONTROL_KEYS = (
    "open", "numeric_open", "update", "no_id", "bad_severity", "fail_every",
    "fail_status", "retry_after", "fail_first", "slow_ms",
    "malformed_details_after", "listing_down", "listing_fail_after_pages",
    "pages_forever", "fault_paths", "invalid_utf8", "reset",
)
LISTING_ENDPOINTS = (
    "/cases/ids", "/cases/ids/next", "/cases/ids/link", "/cases/ids/cursor",
    "/cases/ids/offset", "/cases/search", "/numeric/ids",
)
DETAILS_ENDPOINTS = (
    "/cases/details", "/cases/{id}", "/numeric/details", "/numeric/{id}",
)


class HTTPError(Exception):
    """Raised by a handler to answer with a JSON error."""

    def __init__(self, status, message, headers=(), extra=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = tuple(headers)
        self.extra = extra or {}


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def break_utf8(body):
    """Valid JSON that is not valid UTF-8: every record name starts with the
    bytes c3 28, or (a listing of ids) the first "C-..." id gets the byte ff."""
    if b'"name":"' in body:
        return body.replace(b'"name":"', b'"name":"\xc3\x28')
    return body.replace(b'"C-', b'"C-\xff', 1)


def encode_cursor(offset):
    return base64.b64encode(b"offset:%d" % offset).decode("ascii")


def decode_cursor(cursor):
    c = cursor.strip().replace(" ", "+")      # a raw '+' decoded as a space
    c = c.replace("-", "+").replace("_", "/")  # accept the URL-safe alphabet too
    c += "=" * (-len(c) % 4)
    try:
        text = base64.b64decode(c, validate=True).decode("ascii")
    except Exception:
        text = ""
    m = re.fullmatch(r"offset:(\d+)", text)
    if not m:
        raise HTTPError(400, "invalid cursor")
    return int(m.group(1))


def deep_merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = v


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


# --------------------------------------------------------------------------
# State: the cases, the fault knobs and the counters, guarded by one lock.
# --------------------------------------------------------------------------

class State:
    def __init__(self, ncases):
        self.ncases = ncases
        self.width = max(4, len(str(ncases)))
        self.id_re = re.compile(r"C-(\d{%d})" % self.width)
        self.lock = threading.Lock()
        self.reset()

    # -- data ---------------------------------------------------------------

    def case_id(self, i):
        return "C-%0*d" % (self.width, i)

    def default_record(self, cid, i=None):
        if i is None:
            m = re.fullmatch(r"C-(\d+)", cid) if isinstance(cid, str) else None
            i = int(m.group(1)) if m else 0
        rec = {"id": cid, "name": "Case %s" % (i if i or is_int(cid) else cid),
               "severity": (i % 5) + 1, "status": "open", "version": 1,
               "details": {"customer": "cust-%d" % (i % 7), "region": REGIONS[i % 3]}}
        if i == 0 and not is_int(cid):
            rec["severity"] = 3
        return rec

    def base_index(self, cid):
        """i if cid is one of the generated cases C-0001..C-NNNN, else None."""
        m = self.id_re.fullmatch(cid)
        if m:
            i = int(m.group(1))
            if 1 <= i <= self.ncases:
                return i
        return None

    def reset(self, keep_in_flight=False):
        """Back to the initial state (caller holds the lock or is __init__)."""
        self.records = {}            # string id -> record overriding the default
        self.num_records = {}        # int id -> record overriding the default
        self.open = set(self.case_id(i) for i in range(1, self.ncases + 1))
        self.num_open = set(range(1, NUMERIC_COUNT + 1))
        self._resort()
        self.no_id = set()           # string or int ids
        self.bad_severity = set()
        self.fail_every = 0
        self.fail_status = 500
        self.retry_after = 1
        self.fail_first = 0
        self.slow_ms = 0
        self.malformed_details_after = None
        self.listing_down = False
        self.listing_fail_after_pages = None
        self.pages_forever = False
        self.fault_paths = None
        self.invalid_utf8 = False
        self.fault_count = 0         # listing/details requests since fail_every was set
        self.details_ok = 0          # successful details responses since malformed_* was set
        self.reset_stats(keep_in_flight)

    def reset_stats(self, keep_in_flight=False):
        inf = self.in_flight if keep_in_flight else 0
        inf_ep = dict(self.in_flight_by_endpoint) if keep_in_flight else {}
        self.requests = 0
        self.by_endpoint = {}
        self.failed = 0
        self.failed_by_endpoint = {}
        self.injected = 0
        self.in_flight = inf
        self.in_flight_by_endpoint = inf_ep
        self.max_in_flight = inf
        self.max_in_flight_by_endpoint = {k: v for k, v in inf_ep.items() if v}

    def _resort(self):
        self.open_sorted = tuple(sorted(self.open))
        self.num_open_sorted = tuple(sorted(self.num_open))
        self.ids_body = None         # cached body of GET /cases/ids

    def exists(self, cid):
        return cid in self.records or self.base_index(cid) is not None

    def num_exists(self, n):
        return n in self.num_records or 1 <= n <= NUMERIC_COUNT

    def record(self, cid):
        """The record as served (a fresh dict), or None if unknown."""
        rec = self.records.get(cid)
        if rec is None:
            i = self.base_index(cid)
            if i is None:
                return None
            rec = self.default_record(cid, i)
        else:
            rec = json.loads(json.dumps(rec))
        return self._serve(rec, cid, cid in self.open)

    def num_record(self, n):
        rec = self.num_records.get(n)
        if rec is None:
            if not 1 <= n <= NUMERIC_COUNT:
                return None
            rec = self.default_record(n, n)
        else:
            rec = json.loads(json.dumps(rec))
        return self._serve(rec, n, n in self.num_open)

    def _serve(self, rec, key, is_open):
        rec["status"] = "open" if is_open else "closed"
        if key in self.bad_severity:
            rec["severity"] = 9
        if key in self.no_id:
            rec.pop("id", None)
        return rec

    # -- control --------------------------------------------------------------

    def snapshot(self):
        return {
            "cases": self.ncases,
            "open_count": len(self.open),
            "numeric_open_count": len(self.num_open),
            "no_id": sorted(self.no_id, key=lambda x: (not is_int(x), str(x) if not is_int(x) else x)),
            "bad_severity": sorted(self.bad_severity, key=lambda x: (not is_int(x), str(x) if not is_int(x) else x)),
            "fail_every": self.fail_every,
            "fail_status": self.fail_status,
            "retry_after": self.retry_after,
            "fail_first": self.fail_first,
            "slow_ms": self.slow_ms,
            "malformed_details_after": self.malformed_details_after,
            "details_ok": self.details_ok,
            "listing_down": self.listing_down,
            "listing_fail_after_pages": self.listing_fail_after_pages,
            "pages_forever": self.pages_forever,
            "fault_paths": self.fault_paths,
            "invalid_utf8": self.invalid_utf8,
        }

    def control(self, req):
        """Validate all of req, then apply it atomically.  Returns the snapshot."""
        if not isinstance(req, dict):
            raise HTTPError(400, "body must be a JSON object")
        for k in req:
            if k not in CONTROL_KEYS:
                raise HTTPError(400, "unknown control key %r (known: %s)" % (k, ", ".join(CONTROL_KEYS)))

        def int_or_null(key, lo, hi=None):
            v = req[key]
            if v is None:
                return None
            if not is_int(v) or v < lo or (hi is not None and v > hi):
                raise HTTPError(400, "%s must be an integer >= %d%s or null"
                                % (key, lo, "" if hi is None else " and <= %d" % hi))
            return v

        def boolean(key):
            v = req[key]
            if not isinstance(v, bool):
                raise HTTPError(400, "%s must be true or false" % key)
            return v

        def id_list(key, allow_int=True, allow_str=True):
            v = req[key]
            if v is None:
                return []
            if not isinstance(v, list):
                raise HTTPError(400, "%s must be a list of ids" % key)
            for x in v:
                ok = (allow_str and isinstance(x, str) and x != "") or (allow_int and is_int(x))
                if not ok:
                    raise HTTPError(400, "%s: invalid id %r" % (key, x))
            return v

        new = {}
        if "reset" in req:
            new["reset"] = boolean("reset")
        if "open" in req:
            new["open"] = id_list("open", allow_int=False)
        if "numeric_open" in req:
            new["numeric_open"] = id_list("numeric_open", allow_str=False)
            if any(x < 1 for x in new["numeric_open"]):
                raise HTTPError(400, "numeric_open: ids must be >= 1")
        if "update" in req:
            upd = req["update"]
            if not isinstance(upd, dict):
                raise HTTPError(400, "update must be an object {id: {field: value}}")
            for cid, fields in upd.items():
                if not isinstance(fields, dict):
                    raise HTTPError(400, "update[%r] must be an object" % cid)
                if "id" in fields:
                    raise HTTPError(400, "update[%r]: the id cannot be changed" % cid)
                if "status" in fields and fields["status"] not in ("open", "closed"):
                    raise HTTPError(400, "update[%r]: status must be \"open\" or \"closed\"" % cid)
                if cid == "":
                    raise HTTPError(400, "update: empty id")
            new["update"] = upd
        for key in ("no_id", "bad_severity"):
            if key in req:
                new[key] = id_list(key)
        if "fail_every" in req:
            new["fail_every"] = int_or_null("fail_every", 0) or 0
        if "fail_status" in req:
            new["fail_status"] = int_or_null("fail_status", 400, 599) or 500
        if "retry_after" in req:
            v = int_or_null("retry_after", 0)
            new["retry_after"] = 1 if v is None else v
        if "fail_first" in req:
            new["fail_first"] = int_or_null("fail_first", 0) or 0
        if "slow_ms" in req:
            new["slow_ms"] = int_or_null("slow_ms", 0, MAX_SLEEP_MS) or 0
        if "malformed_details_after" in req:
            new["malformed_details_after"] = int_or_null("malformed_details_after", 0)
        if "listing_down" in req:
            new["listing_down"] = boolean("listing_down")
        if "listing_fail_after_pages" in req:
            new["listing_fail_after_pages"] = int_or_null("listing_fail_after_pages", 0)
        if "pages_forever" in req:
            new["pages_forever"] = boolean("pages_forever")
        if "invalid_utf8" in req:
            new["invalid_utf8"] = boolean("invalid_utf8")
        if "fault_paths" in req:
            v = req["fault_paths"]
            known = LISTING_ENDPOINTS + DETAILS_ENDPOINTS
            if v is not None and (not isinstance(v, list) or any(x not in known for x in v)):
                raise HTTPError(400, "fault_paths must be null or a list of: %s" % ", ".join(known))
            new["fault_paths"] = v

        with self.lock:
            if new.get("reset"):
                self.reset(keep_in_flight=True)
            if "open" in new:
                self.open = set(new["open"])
                for cid in self.open:
                    if not self.exists(cid):
                        self.records[cid] = self.default_record(cid)
            if "numeric_open" in new:
                self.num_open = set(new["numeric_open"])
                for n in self.num_open:
                    if not self.num_exists(n):
                        self.num_records[n] = self.default_record(n, n)
            for cid, fields in new.get("update", {}).items():
                self._update(cid, fields)
            if "no_id" in new:
                self.no_id = set(new["no_id"])
            if "bad_severity" in new:
                self.bad_severity = set(new["bad_severity"])
            if "fail_every" in new:
                self.fail_every = new["fail_every"]
                self.fault_count = 0
            for key in ("fail_status", "retry_after", "fail_first", "slow_ms",
                        "listing_down", "listing_fail_after_pages", "pages_forever",
                        "fault_paths", "invalid_utf8"):
                if key in new:
                    setattr(self, key, new[key])
            if "malformed_details_after" in new:
                self.malformed_details_after = new["malformed_details_after"]
                self.details_ok = 0
            self._resort()
            return self.snapshot()

    def _update(self, key, fields):
        if re.fullmatch(r"[0-9]+", key) and not key.startswith("C-"):
            n = int(key)
            store, opened = self.num_records, self.num_open
            ident = n
        else:
            store, opened = self.records, self.open
            ident = key
        rec = store.get(ident)
        if rec is None:
            if store is self.num_records:
                rec = self.default_record(n, n)
            else:
                i = self.base_index(key)
                rec = self.default_record(key, i)
            store[ident] = rec
        fields = json.loads(json.dumps(fields))
        status = fields.pop("status", None)
        version = fields.pop("version", None)
        deep_merge(rec, fields)
        rec["version"] = rec.get("version", 1) + 1 if version is None else version
        if status == "open":
            opened.add(ident)
        elif status == "closed":
            opened.discard(ident)

    # -- faults ---------------------------------------------------------------

    def fault(self, kind, endpoint, page):
        """Decide the injected fault for one listing/details request.

        Returns (slow_ms, failure) where failure is None or (status, headers).
        """
        with self.lock:
            if self.fault_paths is not None and endpoint not in self.fault_paths:
                return 0, None
            self.fault_count += 1
            status = None
            if kind == "listing" and self.listing_down:
                status = 503
            elif self.fail_first > 0:
                self.fail_first -= 1
                status = self.fail_status
            elif self.fail_every and self.fault_count % self.fail_every == 0:
                status = self.fail_status
            elif (kind == "listing" and self.listing_fail_after_pages is not None
                  and page > self.listing_fail_after_pages):
                status = 500
            if status is None:
                return self.slow_ms, None
            self.injected += 1
            headers = [("Retry-After", str(self.retry_after))] if status in (429, 503) else []
            return self.slow_ms, (status, headers)

    def utf8_broken(self, endpoint):
        """True if a successful response of this listing/details endpoint must carry invalid UTF-8."""
        with self.lock:
            if not self.invalid_utf8 or endpoint not in LISTING_ENDPOINTS + DETAILS_ENDPOINTS:
                return False
            if self.fault_paths is not None and endpoint not in self.fault_paths:
                return False
            self.injected += 1
            return True

    def details_malformed(self, endpoint):
        """Called for each successful details response: True if it must be truncated."""
        with self.lock:
            if self.malformed_details_after is None:
                return False
            if self.fault_paths is not None and endpoint not in self.fault_paths:
                return False
            if self.details_ok >= self.malformed_details_after:
                self.injected += 1
                return True
            self.details_ok += 1
            return False

    # -- stats ----------------------------------------------------------------

    def begin(self, endpoint):
        with self.lock:
            self.requests += 1
            self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
            self.in_flight += 1
            if self.in_flight > self.max_in_flight:
                self.max_in_flight = self.in_flight
            n = self.in_flight_by_endpoint.get(endpoint, 0) + 1
            self.in_flight_by_endpoint[endpoint] = n
            if n > self.max_in_flight_by_endpoint.get(endpoint, 0):
                self.max_in_flight_by_endpoint[endpoint] = n

    def end(self, endpoint, status):
        with self.lock:
            self.in_flight = max(0, self.in_flight - 1)
            self.in_flight_by_endpoint[endpoint] = max(0, self.in_flight_by_endpoint.get(endpoint, 0) - 1)
            if status is None or status >= 400:
                self.failed += 1
                self.failed_by_endpoint[endpoint] = self.failed_by_endpoint.get(endpoint, 0) + 1

    def stats(self):
        with self.lock:
            return {
                "requests": self.requests,
                "by_endpoint": dict(self.by_endpoint),
                "failed": self.failed,
                "failed_by_endpoint": dict(self.failed_by_endpoint),
                "injected": self.injected,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "max_in_flight_by_endpoint": dict(self.max_in_flight_by_endpoint),
            }


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

def q_int(params, name, default, lo=None, hi=None, clamp_hi=False):
    v = params.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        raise HTTPError(400, "%s must be an integer" % name)
    if lo is not None and n < lo:
        raise HTTPError(400, "%s must be >= %d" % (name, lo))
    if hi is not None and n > hi:
        if clamp_hi:
            return hi
        raise HTTPError(400, "%s must be <= %d" % (name, hi))
    return n


def page_slice(ids, start, per, forever):
    """(page ids, has_next) for the page starting at offset start."""
    n = len(ids)
    chunk = ids[start:start + per]
    has_next = start + per < n
    if forever:
        if not chunk and n and per:
            last = ((n - 1) // per) * per
            chunk = ids[last:last + per]
        has_next = True
    return list(chunk), has_next


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "workqueue-sample-api/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120                # idle keep-alive connections are closed after this

    def version_string(self):
        return self.server_version

    # quiet
    def log_message(self, format, *args):
        pass

    def log_request(self, code="-", size="-"):
        pass

    @property
    def state(self):
        return self.server.state

    # -- responses ------------------------------------------------------------

    def _send(self, status, body=b"", ctype=JSON_TYPE, headers=()):
        """One write: status line, headers, Content-Length and body."""
        self._status = status
        ep = getattr(self, "_stats_endpoint", None)
        if status == 200 and ep is not None and self.state.utf8_broken(ep):
            body = break_utf8(body)
        self._end_stats()
        # (HTTP/0.9 is not worth supporting: a status line is always sent.)
        self.send_response(status)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        if status not in (204, 304) and not (100 <= status < 200):
            self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self._headers_buffer.append(b"\r\n")
        if getattr(self, "command", None) != "HEAD" and status not in (204, 304):
            self._headers_buffer.append(body)
        self.flush_headers()

    def _json(self, status, obj, headers=()):
        self._send(status, dumps(obj), JSON_TYPE, headers)

    def send_error(self, code, message=None, explain=None):
        # Called by the base class for malformed requests (400, 414, 431, 501 ...).
        self.close_connection = True
        try:
            reason = message or HTTPStatus(code).phrase
        except ValueError:
            reason = message or "error"
        if not hasattr(self, "_headers_buffer"):
            self._headers_buffer = []
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.1"    # so that headers are sent
        self._json(code, {"error": reason})

    # -- request handling -----------------------------------------------------

    def do_GET(self):
        self._handle()

    do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            parts, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise HTTPError(400, "truncated chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise HTTPError(400, "bad chunk size")
                if size == 0:
                    while True:            # trailers
                        line = self.rfile.readline(65537)
                        if line in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > MAX_BODY:
                    raise HTTPError(413, "request body too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(parts)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl)
            if n < 0:
                raise ValueError
        except ValueError:
            raise HTTPError(400, "bad Content-Length")
        if n > MAX_BODY:
            raise HTTPError(413, "request body too large")
        data = self.rfile.read(n) if n else b""
        if len(data) != n:
            raise HTTPError(400, "truncated body")
        return data

    def _handle(self):
        self._status = None
        self._stats_endpoint = None
        path = self.path
        if path.startswith(("http://", "https://")):      # absolute-form target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        path = path.partition("#")[0]
        raw_path, _, self.query = path.partition("?")
        method = self.command
        endpoint, handlers, kind, arg = route(raw_path)
        if method == "HEAD":
            endpoint, handlers, kind = "(unknown)", None, None
        if endpoint not in ("/_control", "/_stats", "/_stats/reset"):
            self.state.begin(endpoint)
            self._stats_endpoint = endpoint
        try:
            try:
                self.body = self._read_body()
            except HTTPError:
                self.close_connection = True
                raise
            if handlers is None:
                raise HTTPError(404, "not found")
            fn = handlers.get(method)
            if fn is None:
                raise HTTPError(405, "method not allowed",
                                [("Allow", ", ".join(sorted(handlers)))])
            self._params = None
            fn(self, arg) if arg is not None else fn(self)
        except HTTPError as e:
            self._safe_send(e.status, dict({"error": e.message}, **e.extra), e.headers)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception as e:   # never a dead server
            self.close_connection = True
            self._safe_send(500, {"error": "internal error", "detail": repr(e)})
        finally:
            self._end_stats()

    def _end_stats(self):
        # Called just before the response is written, so that a client that
        # has read a response and then asks /_stats sees it counted.
        ep = getattr(self, "_stats_endpoint", None)
        if ep is not None:
            self._stats_endpoint = None
            self.state.end(ep, self._status)

    def _safe_send(self, status, obj, headers=()):
        if self._status is not None:       # response already (partly) sent
            self.close_connection = True
            return
        try:
            self._headers_buffer = []
            self._json(status, obj, headers)
        except Exception:
            self.close_connection = True

    @property
    def params(self):
        if self._params is None:
            self._params = dict(parse_qsl(self.query, keep_blank_values=True))
        return self._params

    def _raw_param(self, name):
        for part in self.query.split("&"):
            k, sep, v = part.partition("=")
            if unquote_plus(k) == name:
                return v
        return None

    def _json_body(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise HTTPError(400, "body is not valid JSON")

    # -- fault injection wrapper ----------------------------------------------

    def _faults(self, kind, endpoint, page=1):
        """Apply slow_ms and injected failures; raises HTTPError on failure."""
        delay, failure = self.state.fault(kind, endpoint, page)
        if delay:
            time.sleep(delay / 1000.0)
        if failure:
            status, headers = failure
            raise HTTPError(status, "injected failure", headers, {"status": status})

    def _details_reply(self, endpoint, obj):
        body = dumps(obj)
        if self.state.details_malformed(endpoint):
            body = body[:max(1, len(body) // 2)]
        self._send(200, body)

    # -- listings -------------------------------------------------------------

    def _open_ids(self):
        with self.state.lock:
            return self.state.open_sorted

    def h_ids(self):
        self._faults("listing", "/cases/ids")
        st = self.state
        with st.lock:
            body = st.ids_body
            ids = st.open_sorted
        if body is None:
            body = dumps(list(ids))
            with st.lock:
                if st.open_sorted is ids:
                    st.ids_body = body
        self._send(200, body)

    def _page_params(self):
        page = q_int(self.params, "page", 1, lo=1)
        per = q_int(self.params, "per_page", 50, lo=1, hi=MAX_PER_PAGE, clamp_hi=True)
        return page, per

    def h_ids_next(self):
        page, per = self._page_params()
        self._faults("listing", "/cases/ids/next", page)
        ids, has_next = page_slice(self._open_ids(), (page - 1) * per, per, self.state.pages_forever)
        nxt = "/cases/ids/next?page=%d&per_page=%d" % (page + 1, per) if has_next else None
        self._json(200, {"ids": ids, "next": nxt})

    def h_ids_link(self):
        page, per = self._page_params()
        self._faults("listing", "/cases/ids/link", page)
        ids, has_next = page_slice(self._open_ids(), (page - 1) * per, per, self.state.pages_forever)
        headers = []
        if has_next:
            base = "http://%s:%d/cases/ids/link" % (HOST, self.server.server_address[1])
            headers.append(("Link", '<%s?page=1&per_page=%d>; rel="first", <%s?page=%d&per_page=%d>; rel="next"'
                            % (base, per, base, page + 1, per)))
        self._json(200, ids, headers)

    def h_ids_cursor(self):
        per = q_int(self.params, "per_page", 50, lo=1, hi=MAX_PER_PAGE, clamp_hi=True)
        cursor = self.params.get("cursor")
        start = decode_cursor(cursor) if cursor else 0
        self._faults("listing", "/cases/ids/cursor", start // per + 1)
        ids, has_next = page_slice(self._open_ids(), start, per, self.state.pages_forever)
        self._json(200, {"data": [{"id": i} for i in ids],
                         "meta": {"next_cursor": encode_cursor(start + per) if has_next else None}})

    def h_ids_offset(self):
        start = q_int(self.params, "startAt", 0, lo=0)
        mx = q_int(self.params, "maxResults", 50, lo=0, hi=MAX_RESULTS, clamp_hi=True)
        self._faults("listing", "/cases/ids/offset", start // max(mx, 1) + 1)
        ids = self._open_ids()
        self._json(200, {"startAt": start, "maxResults": mx, "total": len(ids),
                         "values": [{"id": i} for i in ids[start:start + mx]]})

    def h_search(self):
        page, per = self._page_params()
        self._faults("listing", "/cases/search", page)
        st = self.state
        ids, has_next = page_slice(self._open_ids(), (page - 1) * per, per, st.pages_forever)
        with st.lock:
            recs = [r for r in (st.record(i) for i in ids) if r is not None]
        nxt = "/cases/search?page=%d&per_page=%d" % (page + 1, per) if has_next else None
        self._json(200, {"issues": recs, "next": nxt})

    def h_numeric_ids(self):
        self._faults("listing", "/numeric/ids")
        with self.state.lock:
            ids = list(self.state.num_open_sorted)
        self._json(200, ids)

    # -- details --------------------------------------------------------------

    def _ids_from_query(self):
        raw = self._raw_param("ids")
        if raw is None:
            raise HTTPError(400, "missing ids parameter")
        return [unquote_plus(p) for p in raw.split(",") if p != ""]

    @staticmethod
    def _dedup(ids):
        seen, out = set(), []
        for i in ids:
            if i not in seen:
                seen.add(i)
                out.append(i)
        return out

    def _open_records(self, ids):
        st = self.state
        with st.lock:
            return [st.record(i) for i in self._dedup(ids) if i in st.open and st.exists(i)]

    def _open_num_records(self, ids):
        st = self.state
        with st.lock:
            return [st.num_record(n) for n in self._dedup(ids) if n in st.num_open and st.num_exists(n)]

    def h_details_get(self):
        ids = self._ids_from_query()
        self._faults("details", "/cases/details")
        self._details_reply("/cases/details", self._open_records(ids))

    def h_details_post(self):
        ids = self._json_body()
        if not isinstance(ids, list):
            raise HTTPError(400, "body must be a JSON array of ids")
        ids = [i if isinstance(i, str) else json.dumps(i) for i in ids if i is not None]
        self._faults("details", "/cases/details")
        self._details_reply("/cases/details", {"records": self._open_records(ids)})

    def h_case(self, cid):
        self._faults("details", "/cases/{id}")
        with self.state.lock:
            rec = self.state.record(cid)
        if rec is None:
            raise HTTPError(404, "not found")
        self._details_reply("/cases/{id}", rec)

    @staticmethod
    def _to_ints(items):
        out = []
        for x in items:
            if is_int(x):
                out.append(x)
            elif isinstance(x, str) and re.fullmatch(r"\s*-?[0-9]+\s*", x):
                out.append(int(x))
        return out

    def h_numeric_details_get(self):
        ids = self._to_ints(self._ids_from_query())
        self._faults("details", "/numeric/details")
        self._details_reply("/numeric/details", self._open_num_records(ids))

    def h_numeric_details_post(self):
        ids = self._json_body()
        if not isinstance(ids, list):
            raise HTTPError(400, "body must be a JSON array of ids")
        self._faults("details", "/numeric/details")
        self._details_reply("/numeric/details", {"records": self._open_num_records(self._to_ints(ids))})

    def h_numeric_one(self, raw):
        self._faults("details", "/numeric/{id}")
        ints = self._to_ints([raw])
        with self.state.lock:
            rec = self.state.num_record(ints[0]) if ints else None
        if rec is None:
            raise HTTPError(404, "not found")
        self._details_reply("/numeric/{id}", rec)

    # -- utilities ------------------------------------------------------------

    def h_status(self, raw):
        try:
            code = int(raw)
        except ValueError:
            raise HTTPError(404, "not found")
        if not 200 <= code <= 599:
            raise HTTPError(400, "status must be 200..599")
        headers = []
        if code in (429, 503):
            headers.append(("Retry-After", str(q_int(self.params, "retry_after", 1, lo=0))))
        if code in (301, 302, 303, 307, 308):
            headers.append(("Location", "/status/200"))
        self._json(code, {"status": code}, headers)

    def h_slow(self):
        ms = q_int(self.params, "ms", 0, lo=0, hi=MAX_SLEEP_MS)
        time.sleep(ms / 1000.0)
        self._json(200, {"slept": ms})

    def h_big(self):
        n = q_int(self.params, "bytes", 1024, lo=0, hi=MAX_BIG)
        head, tail = b'{"pad":"', b'"}'
        pad = max(0, n - len(head) - len(tail))
        chunked = self.params.get("chunked") in ("1", "true", "yes")
        self._status = 200
        self._end_stats()
        self.send_response(200)
        self.send_header("Content-Type", JSON_TYPE)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(pad + len(head) + len(tail)))
        self.end_headers()
        if self.command == "HEAD":
            return
        block = b"x" * 65536

        def emit(data):
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)

        emit(head)
        left = pad
        while left > 0:
            k = min(left, len(block))
            emit(block if k == len(block) else block[:k])
            left -= k
        emit(tail)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def h_redirect(self):
        to = self.params.get("to")
        if to is not None:
            # one redirect to any URL (absolute or relative), e.g. another host
            if to == "" or any(c in to for c in "\r\n"):
                raise HTTPError(400, "to must be a URL")
            self._json(302, {"location": to}, [("Location", to)])
            return
        n = q_int(self.params, "n", 1, lo=0, hi=100000)
        if n == 0:
            self._json(200, {"redirected": True})
        else:
            self._json(302, {"location": "/redirect?n=%d" % (n - 1)},
                       [("Location", "/redirect?n=%d" % (n - 1))])

    def h_binary(self):
        self._send(200, bytes([0xff, 0xfe, 0xfd, 0x00, 0x80, 0x81, 0xc3, 0x28, 0xa0, 0xa1]) * 4,
                   "application/octet-stream")

    def h_invalid_json(self):
        self._send(200, b'{"broken": ')

    # -- control --------------------------------------------------------------

    def h_control_get(self):
        with self.state.lock:
            snap = self.state.snapshot()
        self._json(200, snap)

    def h_control_post(self):
        self._json(200, self.state.control(self._json_body()))

    def h_error(self):
        raise RuntimeError("deliberate failure for tests")

    def h_stats(self):
        self._json(200, self.state.stats())

    def h_stats_reset(self):
        with self.state.lock:
            self.state.reset_stats(keep_in_flight=True)
        self._json(200, self.state.stats())


ROUTES = {
    "/cases/ids": ("listing", {"GET": Handler.h_ids}),
    "/cases/ids/next": ("listing", {"GET": Handler.h_ids_next}),
    "/cases/ids/link": ("listing", {"GET": Handler.h_ids_link}),
    "/cases/ids/cursor": ("listing", {"GET": Handler.h_ids_cursor}),
    "/cases/ids/offset": ("listing", {"GET": Handler.h_ids_offset}),
    "/cases/search": ("listing", {"GET": Handler.h_search}),
    "/numeric/ids": ("listing", {"GET": Handler.h_numeric_ids}),
    "/cases/details": ("details", {"GET": Handler.h_details_get, "POST": Handler.h_details_post}),
    "/numeric/details": ("details", {"GET": Handler.h_numeric_details_get,
                                     "POST": Handler.h_numeric_details_post}),
    "/slow": (None, {"GET": Handler.h_slow}),
    "/big": (None, {"GET": Handler.h_big}),
    "/redirect": (None, {"GET": Handler.h_redirect}),
    "/binary": (None, {"GET": Handler.h_binary}),
    "/invalid-json": (None, {"GET": Handler.h_invalid_json}),
    "/_control": (None, {"GET": Handler.h_control_get, "POST": Handler.h_control_post}),
    "/_stats": (None, {"GET": Handler.h_stats}),
    "/_stats/reset": (None, {"POST": Handler.h_stats_reset}),
    "/_error": (None, {"GET": Handler.h_error}),
}
PREFIX_ROUTES = (
    ("/cases/", "/cases/{id}", "details", {"GET": Handler.h_case}),
    ("/numeric/", "/numeric/{id}", "details", {"GET": Handler.h_numeric_one}),
    ("/status/", "/status/{code}", None, {"GET": Handler.h_status}),
)


def route(raw_path):
    """(endpoint name, {method: handler} or None, kind, path argument or None)."""
    if len(raw_path) > 1 and raw_path.endswith("/"):
        raw_path = raw_path.rstrip("/") or "/"
    r = ROUTES.get(raw_path)
    if r is not None:
        return raw_path, r[1], r[0], None
    for prefix, name, kind, handlers in PREFIX_ROUTES:
        if raw_path.startswith(prefix):
            rest = raw_path[len(prefix):]
            if rest and "/" not in rest:
                return name, handlers, kind, unquote(rest)
    return "(unknown)", None, None, None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, *args, **kwargs):
        self._pool_lock = threading.Lock()
        self._idle = 0
        self._jobs = queue.SimpleQueue()
        super().__init__(*args, **kwargs)

    def handle_error(self, request, client_address):
        pass     # quiet: a client that went away is not worth a traceback

    # One thread per connection, as ThreadingMixIn does, but threads are
    # reused: starting a thread costs far more than serving a small request,
    # so a finished connection's thread waits a while for the next one.
    # There is no cap (a slow or idle keep-alive connection never starves
    # the others): with no idle thread, a new one is started.
    IDLE_SECONDS = 30

    def process_request(self, request, client_address):
        with self._pool_lock:
            if self._idle > 0:
                self._idle -= 1
                self._jobs.put((request, client_address))
                return
        t = threading.Thread(target=self._worker, args=(request, client_address), daemon=True)
        t.start()

    def _worker(self, request, client_address):
        while True:
            self.process_request_thread(request, client_address)
            with self._pool_lock:
                self._idle += 1
            while True:
                try:
                    request, client_address = self._jobs.get(timeout=self.IDLE_SECONDS)
                    break
                except queue.Empty:
                    with self._pool_lock:
                        # Waiting threads == idle + queued jobs; leave only
                        # if that stays enough for every queued job.
                        if self._idle > 0:
                            self._idle -= 1
                            return


def main(argv=None):
    ap = argparse.ArgumentParser(description="workqueue sample case API (loopback only)")
    ap.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    ap.add_argument("--cases", type=int, default=250, help="number of cases C-0001..C-NNNN (250)")
    ap.add_argument("--host", default=HOST, help="must be 127.0.0.1")
    ap.add_argument("--port-file", help="write the chosen port to this file once listening")
    args = ap.parse_args(argv)
    if args.host != HOST:
        ap.error("refusing to bind %r: only 127.0.0.1 is allowed" % args.host)
    if not 0 <= args.port <= 65535:
        ap.error("bad port %d" % args.port)
    if args.cases < 0:
        ap.error("--cases must be >= 0")

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        server = Server((HOST, args.port), Handler)
    except OSError as e:
        sys.stderr.write("sample_api.py: cannot listen on %s:%d: %s\n" % (HOST, args.port, e.strerror or e))
        return 1
    server.state = State(args.cases)
    port = server.server_address[1]
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)

    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    sys.stdout.write("listening on %s:%d\n" % (HOST, port))
    sys.stdout.flush()
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
