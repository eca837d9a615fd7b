#!/usr/bin/env python3
"""A loopback HTTP server for test/scripts/credentials.sh that records every
request it receives -- its raw path and the secret headers it carried -- one
JSON line each in --log.  Routes:

  GET /page?ids=a,b[&next=URL][&link=URL]  {"records": [{"id": "a"}, ...], "next": URL}
                                           (link: also a Link: <URL>; rel="next" header)
  GET /rec/SEGMENT                         [{"id": unquote(SEGMENT)}]: one record
  GET /redirect/PORT/REST                  302 to http://127.0.0.1:PORT/REST
  anything else                            404
"""
import argparse
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_json(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock, open(self.server.log, "a") as f:
            f.write(json.dumps({"port": self.server.server_port, "path": self.path,
                                "x_api_key": self.headers.get("X-Api-Key"),
                                "authorization": self.headers.get("Authorization")}) + "\n")
        url = urllib.parse.urlsplit(self.path)
        qs = urllib.parse.parse_qs(url.query)
        if url.path == "/page":
            ids = [x for x in qs.get("ids", [""])[0].split(",") if x]
            body = {"records": [{"id": x} for x in ids], "next": qs.get("next", [None])[0]}
            headers = [("Link", '<%s>; rel="next"' % qs["link"][0])] if "link" in qs else []
            self.send_json(200, body, headers)
        elif url.path.startswith("/rec/") and "/" not in url.path[5:]:
            self.send_json(200, [{"id": urllib.parse.unquote(url.path[5:]), "title": "fetched"}])
        elif url.path.startswith("/redirect/"):
            port, _, rest = url.path[len("/redirect/"):].partition("/")
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:%s/%s%s" % (port, rest, "?" + url.query if url.query else ""))
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_json(404, {"error": "not found"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.log = args.log
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_port))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
