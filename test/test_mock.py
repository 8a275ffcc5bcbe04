"""Self-tests of the Heroku API mock (test/mock_heroku.py) and of mockctl.

Run from the repository top:

    /usr/bin/python3 -m unittest -v test/test_mock.py

Starts its own mock on free loopback ports (plain HTTP, and HTTPS with a
throwaway CA made by the openssl command), so it never touches a mock that
the other suites use, and checks each behaviour over real sockets.
"""

import base64
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "mock_heroku.py")
MOCKCTL = os.path.join(HERE, "mockctl.py")
sys.path.insert(0, HERE)
import mockctl  # noqa: E402  (found through the path set just above)

ACCEPT = "application/vnd.heroku+json; version=3"
UA = "heroku-resolver-mock-test/1.0"
ERROR_URL = "https://devcenter.heroku.com/articles/platform-api-reference#clients"

ALICE = "HRKU-a1b2c3d4-alice-global-token"
BOB = "rp-token-b0b0b0b0-read-protected"
CAROL = "read-token-ca401ca4-read-only"
DAVE = "HRKU-d4ved4ve-dave-global-token"
DAVE2 = "HRKU-d4ve2222-dave-second-token"
TOKENS = {
    ALICE: {"email": "alice@example.com", "scope": "global"},
    BOB: {"email": "bob@example.com", "scope": "read-protected"},
    CAROL: {"email": "carol@example.com", "scope": "read"},
    # dave's pool is the one the rate-limit tests drain; two tokens share it.
    DAVE: {"email": "dave@example.com", "scope": "global"},
    DAVE2: {"email": "dave@example.com", "scope": "global"},
}

APP_ID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
PG1 = "postgres://u1:S3cretPassw0rdOne@db1.example.com:5432/d1"
PG2 = "postgres://u2:S3cretPassw0rdTwo@db2.example.com:5432/d2"
MYAPP_VARS = {
    "DATABASE_URL": PG1,
    "HEROKU_POSTGRESQL_VIOLET_URL": PG1,
    "HEROKU_POSTGRESQL_RED_URL": PG2,
    "REDIS_URL": "redis://h:S3cretRedisPass@cache.example.com:6379",
    "NULL_VAR": None,
}
# Every config var value the tests store, so the log check can look for each.
SECRET_VALUES = {v for v in MYAPP_VARS.values() if v}

ENV = {}   # filled by setUpModule: ports, urls, paths, process


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(directory):
    """A throwaway CA and a server certificate for 127.0.0.1, via openssl."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=directory, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=mock test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(directory, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def start_mock(tmp, port, tls_port=None, extra=(), env=None):
    """Start a mock process; returns (process, pidfile, logfile, outfile)."""
    pidfile = os.path.join(tmp, "mock-%d.pid" % port)
    logfile = os.path.join(tmp, "mock-%d.log" % port)
    outfile = os.path.join(tmp, "mock-%d.out" % port)
    cmd = [sys.executable, MOCK, "--port", str(port),
           "--tokens-file", os.path.join(tmp, "tokens.json"),
           "--data", os.path.join(tmp, "data.json"),
           "--pidfile", pidfile, "--log", logfile] + list(extra)
    if tls_port:
        cmd += ["--tls-port", str(tls_port), "--tls-cert", os.path.join(tmp, "server.crt"),
                "--tls-key", os.path.join(tmp, "server.key")]
    with open(outfile, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(outfile, encoding="utf-8", errors="replace") as f:
                raise RuntimeError("mock exited at start: " + f.read())
        if os.path.exists(pidfile):
            try:
                mockctl.state("http://127.0.0.1:%d" % port)
                return proc, pidfile, logfile, outfile
            except mockctl.MockError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mock did not start")


def setUpModule():
    tmp = tempfile.TemporaryDirectory(prefix="mock-test-")
    ENV["tmpdir"] = tmp
    d = tmp.name
    make_certs(d)
    write_json(os.path.join(d, "tokens.json"), TOKENS)
    write_json(os.path.join(d, "data.json"),
               {"apps": {"myapp": {"id": APP_ID, "config_vars": MYAPP_VARS}}})
    port, tls_port = free_port(), free_port()
    proc, pidfile, logfile, outfile = start_mock(
        d, port, tls_port, extra=["--webhook-ca", os.path.join(d, "ca.crt")])
    ENV.update(dir=d, port=port, tls_port=tls_port, proc=proc, pidfile=pidfile,
               logfile=logfile, outfile=outfile, url="http://127.0.0.1:%d" % port,
               ca=os.path.join(d, "ca.crt"))


def tearDownModule():
    proc = ENV.get("proc")
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    ENV["tmpdir"].cleanup()


# ---------------------------------------------------------------- helpers

def basic(user, token):
    return "Basic " + base64.b64encode(("%s:%s" % (user, token)).encode()).decode()


def connection(timeout=10):
    return http.client.HTTPConnection("127.0.0.1", ENV["port"], timeout=timeout)


def api(path, token=ALICE, headers=None, method="GET", body=None, conn=None, authorization=None):
    """One API request: (status, headers, body bytes).

    headers update the defaults (Accept, User-Agent, Bearer token); a None
    value removes that header.
    """
    h = {"Accept": ACCEPT, "User-Agent": UA}
    if authorization is not None:
        h["Authorization"] = authorization
    elif token is not None:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    own = conn is None
    conn = conn or connection()
    try:
        conn.request(method, path, body=body, headers={k: v for k, v in h.items() if v is not None})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        if own:
            conn.close()


def url():
    return ENV["url"]


def new_app(name, config_vars=None, app_id=None):
    """Create a fresh app for one test (release 1)."""
    SECRET_VALUES.update(v for v in (config_vars or {}).values() if v)
    return mockctl.put_app(url(), name, config_vars or {}, app_id)


def set_var(app, name, value):
    SECRET_VALUES.add(value)
    return mockctl.set_var(url(), app, name, value)


def raw_exchange(request, timeout=10):
    """Send raw bytes, read until the server closes; returns everything read."""
    with socket.create_connection(("127.0.0.1", ENV["port"]), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                return b"".join(chunks), len(chunks)
            chunks.append(data)


def raw_get(path, token=ALICE):
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: %s\r\nUser-Agent: %s\r\n"
            "Authorization: Bearer %s\r\n\r\n" % (path, ACCEPT, UA, token)).encode()


class MockTest(unittest.TestCase):
    """Shared assertions."""

    def assertApiError(self, answer, status, error_id):
        got_status, headers, body = answer
        self.assertEqual(got_status, status, body)
        self.assertEqual(headers["Content-Type"], "application/json; charset=utf-8")
        obj = json.loads(body)
        self.assertEqual(set(obj), {"id", "message", "url"})
        self.assertEqual(obj["id"], error_id)
        self.assertEqual(obj["url"], ERROR_URL)
        self.assertTrue(obj["message"])
        return obj


# ------------------------------------------------------------------- API

class ApiTests(MockTest):

    def test_config_vars_with_bearer(self):
        status, headers, body = api("/apps/myapp/config-vars")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), MYAPP_VARS)
        self.assertEqual(headers["Content-Type"], "application/json; charset=utf-8")
        self.assertEqual(headers["ETag"], '"%s"' % hashlib.sha256(body).hexdigest()[:32])
        self.assertRegex(headers["Request-Id"], r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$")
        self.assertEqual(headers["Cache-Control"], "private, no-cache")
        self.assertEqual(headers["Vary"], "Authorization")
        self.assertRegex(headers["RateLimit-Remaining"], r"^[0-9]+$")
        self.assertEqual(int(headers["Content-Length"]), len(body))

    def test_token_sent_as_issued(self):
        """A token with blanks inside the header value is no token (clients trim)."""
        for value in ("Bearer  " + ALICE, "Bearer " + ALICE + " x", "Bearer \t" + ALICE):
            self.assertApiError(api("/apps/myapp/config-vars", authorization=value), 401, "unauthorized")
        self.assertEqual(api("/apps/myapp/config-vars", authorization="Bearer " + ALICE + " ")[0], 200)

    def test_app_by_id(self):
        status, _, body = api("/apps/%s/config-vars" % APP_ID)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), MYAPP_VARS)
        # Ids are lowercase canonical UUIDs; anything else is no app.
        self.assertApiError(api("/apps/%s/config-vars" % APP_ID.upper()), 404, "not_found")

    def test_read_protected_scope_reads_config_vars(self):
        self.assertEqual(api("/apps/myapp/config-vars", token=BOB)[0], 200)

    def test_basic_auth(self):
        for user in ("", "alice@example.com", "ALICE@example.com"):
            status, _, body = api("/apps/myapp/config-vars", authorization=basic(user, ALICE))
            self.assertEqual(status, 200, user)
            self.assertEqual(json.loads(body), MYAPP_VARS)
        # A login naming another account, a bad token, no colon, bad base64.
        for auth in (basic("bob@example.com", ALICE), basic("", "nope"),
                     "Basic " + base64.b64encode(ALICE.encode()).decode(),
                     "Basic %%%" + ALICE):
            self.assertApiError(api("/apps/myapp/config-vars", authorization=auth), 401, "unauthorized")

    def test_unauthorized(self):
        for auth in (None, "Bearer wrong-token", "Bearer " + ALICE + "x", "Token " + ALICE, "Bearer"):
            answer = api("/apps/myapp/config-vars", token=None, authorization=auth)
            obj = self.assertApiError(answer, 401, "unauthorized")
            self.assertEqual(obj["message"], "Invalid credentials provided.")
        self.assertApiError(api("/account/rate-limits", token=None), 401, "unauthorized")

    def test_read_scope_is_forbidden_config_vars(self):
        self.assertApiError(api("/apps/myapp/config-vars", token=CAROL), 403, "forbidden")
        self.assertApiError(api("/apps/myapp/releases/1/config-vars", token=CAROL), 403, "forbidden")
        # Listing releases and attachments needs no protected scope.
        self.assertEqual(api("/apps/myapp/releases", token=CAROL)[0], 200)
        self.assertEqual(api("/apps/myapp/addon-attachments", token=CAROL)[0], 200)
        self.assertEqual(api("/account/rate-limits", token=CAROL)[0], 200)

    def test_not_found(self):
        for path in ("/apps/nosuchapp/config-vars", "/apps/MyApp/config-vars",
                     "/apps/my_app/config-vars", "/apps/ab/config-vars",
                     "/apps/myapp-/config-vars", "/apps/" + "a" * 31 + "/config-vars",
                     "/apps/my%61pp/config-vars", "/apps/%2E%2E/config-vars"):
            obj = self.assertApiError(api(path), 404, "not_found")
            self.assertEqual(obj["message"], "Couldn't find that app.", path)
        for path in ("/apps/myapp/config-vars/", "/apps/myapp", "/", "/apps//config-vars",
                     "/apps/myapp/config_vars"):
            self.assertApiError(api(path), 404, "not_found")
        self.assertEqual(api("/apps/myapp/config-vars?x=1")[0], 200)

    def test_not_acceptable(self):
        for accept in (None, "application/json", "*/*", "application/vnd.heroku+json",
                       "application/vnd.heroku+json; version=2",
                       "application/vnd.heroku+json; version=30"):
            answer = api("/apps/myapp/config-vars", headers={"Accept": accept})
            self.assertApiError(answer, 406, "not_acceptable")
        for accept in ("application/vnd.heroku+json;version=3",
                       "  application/vnd.heroku+json ;  version = 3 ",
                       "APPLICATION/VND.HEROKU+JSON; VERSION=3",
                       "application/json, application/vnd.heroku+json; version=3"):
            self.assertEqual(api("/apps/myapp/config-vars", headers={"Accept": accept})[0], 200, accept)

    def test_user_agent_required(self):
        for ua in (None, "", "   "):
            answer = api("/apps/myapp/config-vars", headers={"User-Agent": ua})
            self.assertApiError(answer, 400, "bad_request")

    def test_other_methods_get_json_errors(self):
        conn = connection()
        try:
            for method in ("POST", "PATCH", "PUT", "DELETE", "OPTIONS", "BREW"):
                answer = api("/apps/myapp/config-vars", method=method, body=b'{"X": "y"}', conn=conn)
                self.assertApiError(answer, 405, "method_not_allowed")
                self.assertEqual(answer[1]["Allow"], "GET")
            status, headers, body = api("/apps/myapp/config-vars", method="HEAD", conn=conn)
            self.assertEqual((status, body), (405, b""))
            self.assertApiError(api("/no/such/path", method="POST", conn=conn), 404, "not_found")
            # Nothing was changed, and the connection is still good.
            status, _, body = api("/apps/myapp/config-vars", conn=conn)
            self.assertEqual((status, json.loads(body)), (200, MYAPP_VARS))
        finally:
            conn.close()

    def test_unframed_request_bodies_close_the_connection(self):
        for extra in (b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"Content-Length: ten\r\n\r\n"):
            request = raw_get("/apps/myapp/config-vars").replace(b"\r\n\r\n", b"\r\n" + extra)
            raw, _ = raw_exchange(request)
            head, _, body = raw.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 400 "), head)
            self.assertIn(b"\r\nConnection: close", head)
            self.assertIn("error", json.loads(body))

    def test_keep_alive_reuses_one_connection(self):
        conn = connection()
        try:
            api("/apps/myapp/config-vars", conn=conn)
            sock = conn.sock
            self.assertIsNotNone(sock)
            etag = api("/apps/myapp/config-vars", conn=conn)[1]["ETag"]
            answers = [
                api("/apps/myapp/config-vars", conn=conn),
                api("/apps/myapp/config-vars", token="bad", conn=conn),
                api("/apps/nosuchapp/config-vars", conn=conn),
                api("/apps/myapp/config-vars", headers={"Accept": None}, conn=conn),
                api("/apps/myapp/config-vars", headers={"User-Agent": None}, conn=conn),
                api("/apps/myapp/config-vars", token=CAROL, conn=conn),
                api("/apps/myapp/config-vars", headers={"If-None-Match": etag}, conn=conn),
                api("/apps/myapp/releases", headers={"Range": "version ..; max=1"}, conn=conn),
                api("/account/rate-limits", conn=conn),
                api("/apps/myapp/config-vars", conn=conn),
            ]
            self.assertEqual([a[0] for a in answers], [200, 401, 404, 406, 400, 403, 304, 200, 200, 200])
            # http.client opens a new socket if the server closed the old one.
            self.assertIs(conn.sock, sock)
            for a in answers:
                self.assertIsNone(a[1]["Connection"])
        finally:
            conn.close()

    def test_connection_close_is_honoured(self):
        conn = connection()
        try:
            status, headers, _ = api("/apps/myapp/config-vars", headers={"Connection": "close"}, conn=conn)
            self.assertEqual((status, headers["Connection"]), (200, "close"))
        finally:
            conn.close()

    def test_etag_and_not_modified(self):
        new_app("etag-app", {"DATABASE_URL": "postgres://e:S3cretEtagOne@h:5432/d"})
        status, headers, body = api("/apps/etag-app/config-vars")
        etag = headers["ETag"]
        self.assertRegex(etag, r'^"[0-9a-f]{32}"$')
        before = mockctl.not_modified(url())
        status, headers, body = api("/apps/etag-app/config-vars", headers={"If-None-Match": etag})
        self.assertEqual((status, body), (304, b""))
        self.assertEqual(headers["ETag"], etag)
        self.assertIsNotNone(headers["RateLimit-Remaining"])
        self.assertIsNotNone(headers["Request-Id"])
        self.assertEqual(mockctl.not_modified(url()), before + 1)
        # Weak comparison and lists, as for any If-None-Match.
        for value in ("W/" + etag, '"other", ' + etag, "*"):
            self.assertEqual(api("/apps/etag-app/config-vars", headers={"If-None-Match": value})[0], 304)
        self.assertEqual(api("/apps/etag-app/config-vars", headers={"If-None-Match": '"other"'})[0], 200)
        # A change makes a new body, so a new tag and a full answer.
        set_var("etag-app", "DATABASE_URL", "postgres://e:S3cretEtagTwo@h:5432/d")
        status, headers, body = api("/apps/etag-app/config-vars", headers={"If-None-Match": etag})
        self.assertEqual(status, 200)
        self.assertNotEqual(headers["ETag"], etag)
        self.assertEqual(json.loads(body)["DATABASE_URL"], "postgres://e:S3cretEtagTwo@h:5432/d")
        # Other endpoints carry tags too.
        for path in ("/apps/etag-app/releases", "/apps/etag-app/addon-attachments"):
            tag = api(path)[1]["ETag"]
            self.assertEqual(api(path, headers={"If-None-Match": tag})[0], 304, path)

    def test_null_values_and_unset(self):
        new_app("null-app", {"A": "S3cretNullA", "B": "S3cretNullB"})
        mockctl.set_null(url(), "null-app", "A")
        mockctl.unset_var(url(), "null-app", "B")
        status, _, body = api("/apps/null-app/config-vars")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"A": None})
        self.assertIn(b'"A": null', body)

    def test_non_ascii_values_round_trip(self):
        value = "postgres://u:p\u00e4ss\u65e5\U0001F418\"\\/@h:5432/d"
        new_app("utf8-app", {"DATABASE_URL": value})
        status, _, body = api("/apps/utf8-app/config-vars")
        self.assertEqual(json.loads(body.decode("utf-8")), {"DATABASE_URL": value})


class ReleaseTests(MockTest):

    @classmethod
    def setUpClass(cls):
        new_app("rel-app", {"DATABASE_URL": "postgres://r:S3cretRelOne@h:5432/d"})       # v1
        set_var("rel-app", "DATABASE_URL", "postgres://r:S3cretRelTwo@h:5432/d")          # v2
        mockctl.set_null(url(), "rel-app", "EXTRA")                                       # v3
        mockctl.unset_var(url(), "rel-app", "EXTRA")                                      # v4
        set_var("rel-app", "DATABASE_URL", "postgres://r:S3cretRelThree@h:5432/d")        # v5

    def releases(self, range_header=None):
        headers = {"Range": range_header} if range_header is not None else {}
        status, headers, body = api("/apps/rel-app/releases", headers=headers)
        return status, headers, json.loads(body)

    def test_every_change_is_a_release(self):
        status, headers, items = self.releases()
        self.assertEqual(status, 200)
        self.assertIsNone(headers["Next-Range"])
        self.assertEqual(headers["Accept-Ranges"], "version")
        self.assertEqual([r["version"] for r in items], [1, 2, 3, 4, 5])
        self.assertEqual([r["current"] for r in items], [False] * 4 + [True])
        self.assertEqual({r["status"] for r in items}, {"succeeded"})
        self.assertEqual([r["description"] for r in items],
                         ["Initial release", "Set DATABASE_URL config vars", "Set EXTRA config vars",
                          "Remove EXTRA config vars", "Set DATABASE_URL config vars"])
        for r in items:
            self.assertRegex(r["created_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(mockctl.state(url())["apps"]["rel-app"]["releases"], [1, 2, 3, 4, 5])

    def test_newest_release_only(self):
        status, headers, items = self.releases("version ..; order=desc, max=1")
        self.assertEqual(status, 206)
        self.assertEqual(len(items), 1)
        self.assertEqual((items[0]["version"], items[0]["current"]), (5, True))
        self.assertEqual(headers["Next-Range"], "version ]5..; order=desc, max=1")
        self.assertIsNotNone(headers["ETag"])

    def test_walk_pages_with_next_range(self):
        for order, expected in (("desc", [5, 4, 3, 2, 1]), ("asc", [1, 2, 3, 4, 5])):
            seen, rng, statuses = [], "version ..; order=%s, max=2" % order, []
            while rng:
                status, headers, items = self.releases(rng)
                statuses.append(status)
                seen += [r["version"] for r in items]
                rng = headers["Next-Range"]
            self.assertEqual(seen, expected)
            self.assertEqual(statuses, [206, 206, 200])

    def test_bounded_and_odd_ranges(self):
        self.assertEqual([r["version"] for r in self.releases("version 2..3")[2]], [2, 3])
        self.assertEqual([r["version"] for r in self.releases("version ]2..")[2]], [3, 4, 5])
        self.assertEqual([r["version"] for r in self.releases("version 4..; order=desc")[2]], [4, 3, 2, 1])
        self.assertEqual([r["version"] for r in self.releases("version ..; max=1;")[2]], [1])
        status, _, items = self.releases("version ..; max=5000")   # clamped to 1000
        self.assertEqual((status, len(items)), (200, 5))
        for bad in ("id ..", "version ..3", "version ..; max=abc", "version ..; max=0",
                    "version ..; order=sideways", "bytes=0-10", "version 1-2", "version ..; foo=1"):
            self.assertApiError(api("/apps/rel-app/releases", headers={"Range": bad}), 400, "bad_request")

    def test_release_config_vars(self):
        def at(version):
            status, _, body = api("/apps/rel-app/releases/%s/config-vars" % version)
            return status, json.loads(body)
        self.assertEqual(at(1), (200, {"DATABASE_URL": "postgres://r:S3cretRelOne@h:5432/d"}))
        self.assertEqual(at(3)[1]["EXTRA"], None)
        self.assertEqual(at(5), (200, {"DATABASE_URL": "postgres://r:S3cretRelThree@h:5432/d"}))
        for version in ("6", "0", "01", "abc", "-1"):
            self.assertApiError(api("/apps/rel-app/releases/%s/config-vars" % version), 404, "not_found")


class AttachmentTests(MockTest):

    def attachments(self, inclusion=None, app="myapp"):
        headers = {"Accept-Inclusion": inclusion} if inclusion else {}
        status, _, body = api("/apps/%s/addon-attachments" % app, headers=headers)
        self.assertEqual(status, 200)
        return {a["name"]: a for a in json.loads(body)}

    def test_derived_from_postgres_config_vars(self):
        items = self.attachments()
        self.assertEqual(set(items), {"DATABASE", "HEROKU_POSTGRESQL_VIOLET", "HEROKU_POSTGRESQL_RED"})
        # DATABASE_URL equals VIOLET's URL: two attachments of one add-on.
        self.assertEqual(items["DATABASE"]["addon"]["id"], items["HEROKU_POSTGRESQL_VIOLET"]["addon"]["id"])
        self.assertNotEqual(items["DATABASE"]["addon"]["id"], items["HEROKU_POSTGRESQL_RED"]["addon"]["id"])
        for a in items.values():
            self.assertRegex(a["addon"]["name"], r"^postgresql-[a-z]+-\d{5}$")
            self.assertEqual(a["app"], {"id": APP_ID, "name": "myapp"})
            self.assertNotIn("config_vars", a)
            self.assertNotIn("plan", a["addon"])
            self.assertRegex(a["id"], r"^[0-9a-f-]{36}$")

    def test_accept_inclusion(self):
        items = self.attachments("addon:plan,config_vars")
        self.assertEqual(items["DATABASE"]["config_vars"], ["DATABASE_URL"])
        self.assertEqual(items["HEROKU_POSTGRESQL_VIOLET"]["config_vars"], ["HEROKU_POSTGRESQL_VIOLET_URL"])
        for a in items.values():
            self.assertEqual(a["addon"]["plan"]["name"], "heroku-postgresql:essential-0")
        only_plan = self.attachments(" addon:plan ")
        self.assertIn("plan", only_plan["DATABASE"]["addon"])
        self.assertNotIn("config_vars", only_plan["DATABASE"])

    def test_ids_survive_a_rotation(self):
        new_app("att-app", {"DATABASE_URL": "postgres://a:S3cretAttOne@h/d",
                            "HEROKU_POSTGRESQL_TEAL_URL": "postgres://a:S3cretAttOne@h/d"})
        before = self.attachments(app="att-app")
        SECRET_VALUES.add("postgres://a:S3cretAttTwo@h/d")
        mockctl.set_vars(url(), "att-app", {"DATABASE_URL": "postgres://a:S3cretAttTwo@h/d",
                                            "HEROKU_POSTGRESQL_TEAL_URL": "postgres://a:S3cretAttTwo@h/d"})
        self.assertEqual(self.attachments(app="att-app"), before)
        new_app("att-none", {"REDIS_URL": "redis://S3cretNoPg@h"})
        self.assertEqual(self.attachments(app="att-none"), {})


# --------------------------------------------------------------- apps list

ISO_SECONDS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
ISO_MICROS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"
# The fields of Heroku's app object, from the Platform API schema (see the file).
with open(os.path.join(HERE, "heroku_app_schema.json"), encoding="utf-8") as _f:
    SCHEMA = json.load(_f)
JSON_TYPES = {"null": type(None), "boolean": bool, "string": str, "object": dict,
              "integer": int, "array": list}


def schema_problems(obj, definition):
    """What in obj does not follow the schema copy's property list: [] if all does."""
    props = definition["properties"]
    problems = ["missing %s" % k for k in sorted(set(props) - set(obj))]
    problems += ["not in the schema: %s" % k for k in sorted(set(obj) - set(props))]
    for key, prop in props.items():
        if key not in obj:
            continue
        value = obj[key]
        if not any(isinstance(value, JSON_TYPES[t]) and not (t == "integer" and isinstance(value, bool))
                   for t in prop["type"]):
            problems.append("%s: %r is not %s" % (key, value, "/".join(prop["type"])))
        elif isinstance(value, dict) and set(value) != set(prop.get("properties", [])):
            problems.append("%s: keys %s" % (key, sorted(value)))
        elif isinstance(value, str) and prop.get("format") == "date-time" and \
                not re.fullmatch(ISO_SECONDS[1:-1], value):
            problems.append("%s: %s is no whole-second time" % (key, value))
        elif isinstance(value, str) and "pattern" in prop and not re.match(prop["pattern"], value):
            problems.append("%s: %s does not match" % (key, value))
    return problems


class AppsListTests(MockTest):
    """GET /apps; other tests add apps too, so checks compare with a fresh full list."""

    @classmethod
    def setUpClass(cls):
        for n in range(5):
            new_app("list-app-%d" % n, {"DATABASE_URL": "postgres://l:S3cretList%d@h/d" % n})

    def apps(self, range_header=None, token=ALICE, headers=None):
        h = dict(headers or {})
        if range_header is not None:
            h["Range"] = range_header
        status, headers, body = api("/apps", token=token, headers=h)
        return status, headers, json.loads(body) if body else None

    def walk(self, first_range):
        """Every page from first_range on: (statuses, items, Next-Range values)."""
        statuses, items, ranges, rng = [], [], [], first_range
        while rng:
            status, headers, page = self.apps(rng)
            statuses.append(status)
            items += page
            rng = headers["Next-Range"]
            ranges.append(rng)
        return statuses, items, ranges

    def test_app_objects(self):
        status, headers, items = self.apps()
        self.assertEqual(status, 200)
        self.assertEqual(headers["Accept-Ranges"], ", ".join(SCHEMA["app"]["list_ranges"]))
        self.assertRegex(headers["RateLimit-Remaining"], r"^[0-9]+$")
        app = next(a for a in items if a["name"] == "myapp")
        self.assertEqual(app["id"], APP_ID)
        # Every app object has the schema's fields, no other, each of its type;
        # about 1 kB minified, as Heroku's (a page of 1000 is about 1 MB).
        for a in items:
            self.assertEqual(schema_problems(a, SCHEMA["app"]), [], a["name"])
        self.assertEqual(len(SCHEMA["app"]["properties"]), 22)
        size = len(json.dumps(app, separators=(",", ":")))
        self.assertTrue(700 <= size <= 1400, size)
        for key in ("id", "name", "released_at", "updated_at", "created_at", "maintenance",
                    "owner", "region", "stack", "web_url", "build_stack", "git_url"):
            self.assertIn(key, app)
        self.assertEqual(app["owner"]["email"], "alice@example.com")   # first account
        self.assertRegex(app["owner"]["id"], r"^[0-9a-f-]{36}$")
        self.assertEqual(app["region"]["name"], "us")
        self.assertEqual(set(app["stack"]), {"id", "name"})
        self.assertIs(app["maintenance"], False)
        self.assertRegex(app["web_url"], r"^https://myapp-[0-9a-f]{12}\.herokuapp\.com/$")
        self.assertRegex(app["created_at"], ISO_SECONDS)
        self.assertRegex(app["released_at"], ISO_SECONDS)
        self.assertRegex(app["updated_at"], ISO_SECONDS)
        # Every token sees every app; a read-only one too.
        self.assertEqual({a["id"] for a in self.apps(token=CAROL)[2]}, {a["id"] for a in items})

    def test_pages_by_id(self):
        everything = self.apps("id ..; max=1000")[2]
        self.assertEqual([a["id"] for a in everything], sorted(a["id"] for a in everything))
        self.assertEqual(self.apps()[2], everything)        # the default: id order
        statuses, items, ranges = self.walk("id ..; max=2")
        self.assertEqual(items, everything)
        pages = -(-len(everything) // 2)
        self.assertEqual(statuses, [206] * (pages - 1) + [200])
        for n, rng in enumerate(ranges[:-1], 1):
            self.assertEqual(rng, "id ]%s..; max=2" % everything[2 * n - 1]["id"])
        self.assertIsNone(ranges[-1])

    def test_pages_by_name_and_desc(self):
        names = sorted(a["name"] for a in self.apps()[2])
        statuses, items, ranges = self.walk("name ..; order=desc, max=3")
        self.assertEqual([a["name"] for a in items], names[::-1])
        self.assertEqual(statuses[-1], 200)
        self.assertTrue(all(s == 206 for s in statuses[:-1]))
        self.assertRegex(ranges[0], r"^name \][a-z0-9-]+\.\.; order=desc, max=3$")
        self.assertEqual([a["name"] for a in self.walk("name ..; max=4")[1]], names)

    def test_bounds(self):
        names = lambda rng: [a["name"] for a in self.apps(rng)[2]]   # noqa: E731
        self.assertEqual(names("name list-app-1..list-app-3"), ["list-app-1", "list-app-2", "list-app-3"])
        self.assertEqual(names("name ]list-app-1..list-app-3"), ["list-app-2", "list-app-3"])
        self.assertEqual(names("name list-app-3..list-app-1; order=desc"),
                         ["list-app-3", "list-app-2", "list-app-1"])
        self.assertEqual(names("name ]list-app-3..list-app-1; order=desc, max=1"), ["list-app-2"])
        status, headers, items = self.apps("name ]zzz..")
        self.assertEqual((status, items), (200, []))

    def test_default_and_largest_page(self):
        made = ["page-app-%03d" % n for n in range(205 - len(self.apps("id ..; max=1000")[2]))]
        try:
            for name in made:
                mockctl.put_app(url(), name, {})
            status, headers, items = self.apps()
            self.assertEqual((status, len(items)), (206, 200))
            self.assertEqual(headers["Next-Range"], "id ]%s..; max=200" % items[-1]["id"])
            status, headers, rest = self.apps(headers["Next-Range"])
            self.assertEqual((status, len(rest)), (200, 5))
            status, headers, items = self.apps("id ..; max=5000")     # clamped to 1000
            self.assertEqual((status, len(items)), (200, 205))
            self.assertIsNone(headers["Next-Range"])
            self.assertEqual(len(self.apps("id ..; max=1000")[2]), 205)
        finally:
            for name in made:
                mockctl.delete_app(url(), name)

    def test_pages_by_updated_at(self):
        """The schema's third range: updated_at, a whole-second time."""
        everything = self.apps("id ..; max=1000")[2]
        items = self.walk("updated_at ..; max=1000")[1]
        self.assertEqual([a["updated_at"] for a in items], sorted(a["updated_at"] for a in everything))
        newest = items[-1]["updated_at"]
        self.assertEqual([a["updated_at"] for a in self.apps("updated_at %s..; order=desc" % newest)[2]][:1],
                         [newest])
        status, headers, page = self.apps("updated_at ..; max=1")
        self.assertEqual(status, 206)
        self.assertEqual(headers["Next-Range"], "updated_at ]%s..; max=1" % page[0]["updated_at"])
        for bad in ("updated_at 2012-01-01..", "updated_at 2012-01-01T12:00:00.5Z..", "created_at .."):
            self.assertApiError(api("/apps", headers={"Range": bad}), 400, "bad_request")

    def test_large_account(self):
        """mockctl bulk-apps: thousands of apps cheaply; pages of 1000 as Heroku's."""
        before = len(self.walk("id ..; max=1000")[1])
        self.assertEqual(mockctl.bulk_apps(url(), "bulk", 2500), 2500)
        try:
            statuses, items, _ = self.walk("id ..; max=1000")
            self.assertEqual(len(items), before + 2500)
            self.assertEqual(statuses, [206] * (len(statuses) - 1) + [200])
            self.assertEqual(len(statuses), -(-(before + 2500) // 1000))
            self.assertEqual(schema_problems(next(a for a in items if a["name"] == "bulk-00007"),
                                             SCHEMA["app"]), [])
        finally:
            self.assertEqual(mockctl.delete_bulk_apps(url(), "bulk"), 2500)
        self.assertEqual(len(self.walk("id ..; max=1000")[1]), before)

    def test_malformed_range(self):
        for bad in ("version ..", "id ..%s" % APP_ID, "name A..", "id not-a-uuid..",
                    "name ..; max=0", "name ..; order=sideways", "name ..; max=x",
                    "names ..", "id", "bytes=0-10", "name ab..", "id ..; foo=1"):
            self.assertApiError(api("/apps", headers={"Range": bad}), 400, "bad_request")

    def test_etag_and_not_modified(self):
        new_app("etag-list-app", {"DATABASE_URL": "postgres://e:S3cretEtagList1@h/d"})
        status, headers, body = api("/apps")
        tag = headers["ETag"]
        self.assertEqual(tag, '"%s"' % hashlib.sha256(body).hexdigest()[:32])
        before = mockctl.not_modified(url())
        status, headers, body = api("/apps", headers={"If-None-Match": tag})
        self.assertEqual((status, body), (304, b""))
        self.assertEqual(headers["ETag"], tag)
        self.assertIsNotNone(headers["RateLimit-Remaining"])
        self.assertEqual(mockctl.not_modified(url()), before + 1)
        # A cut page has a tag of its own.
        status, headers, _ = api("/apps", headers={"Range": "name ..; max=1"})
        self.assertEqual(status, 206)
        self.assertEqual(api("/apps", headers={"Range": "name ..; max=1",
                                               "If-None-Match": headers["ETag"]})[0], 304)
        # A rotation in a later second moves released_at: a new body, a new tag.
        time.sleep(1.05)
        set_var("etag-list-app", "DATABASE_URL", "postgres://e:S3cretEtagList2@h/d")
        status, headers, _ = api("/apps", headers={"If-None-Match": tag})
        self.assertEqual(status, 200)
        self.assertNotEqual(headers["ETag"], tag)

    def test_released_at_moves_with_each_release(self):
        new_app("moving-app", {"DATABASE_URL": "postgres://m:S3cretMove0@h/d"})

        def listed():
            return next(a for a in self.apps()[2] if a["name"] == "moving-app")
        seen = [listed()]
        # Whole seconds: releases within one second (the clock frozen) leave
        # released_at, updated_at and the page as they were, as with Heroku;
        # the Date header tells the same second.
        time.sleep(1.05)
        frozen = mockctl.clock(url(), True)
        try:
            set_var("moving-app", "DATABASE_URL", "postgres://m:S3cretMove1@h/d")
            first = listed()
            status, headers, _ = api("/apps")
            tag = headers["ETag"]
            set_var("moving-app", "DATABASE_URL", "postgres://m:S3cretMove2@h/d")
            self.assertEqual(listed(), first)
            self.assertEqual(api("/apps", headers={"If-None-Match": tag})[0], 304)
            self.assertEqual(first["released_at"], frozen["now"])
            self.assertEqual(email.utils.parsedate_to_datetime(headers["Date"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
                             frozen["now"])
        finally:
            mockctl.clock(url(), False)
        seen.append(first)
        # A release in a later second moves them.
        for n in range(3, 5):
            time.sleep(1.05)
            set_var("moving-app", "DATABASE_URL", "postgres://m:S3cretMove%d@h/d" % n)
            seen.append(listed())
        for older, newer in zip(seen, seen[1:]):
            self.assertGreater(newer["released_at"], older["released_at"])
            self.assertGreater(newer["updated_at"], older["updated_at"])
            self.assertEqual(newer["created_at"], older["created_at"])
            self.assertRegex(newer["released_at"], ISO_SECONDS)
        # The newest release is that time, in whole seconds.
        status, _, body = api("/apps/moving-app/releases", headers={"Range": "version ..; order=desc, max=1"})
        newest = json.loads(body)[0]
        self.assertEqual((newest["version"], newest["current"]), (5, True))
        self.assertEqual(newest["created_at"], seen[-1]["released_at"])
        self.assertEqual(newest["app"], {"id": seen[-1]["id"], "name": "moving-app"})
        self.assertEqual(mockctl.state(url())["apps"]["moving-app"]["released_at"], seen[-1]["released_at"])
        # Replacing all config vars is a release too.
        time.sleep(1.05)
        mockctl.put_app(url(), "moving-app", {"DATABASE_URL": "postgres://m:S3cretMove9@h/d"})
        self.assertGreater(listed()["released_at"], seen[-1]["released_at"])

    def test_never_released_app(self):
        answer = mockctl.put_app(url(), "unreleased-app", released=False)
        self.assertEqual((answer["releases"], answer["current_release"]), ([], None))
        app = next(a for a in self.apps()[2] if a["name"] == "unreleased-app")
        self.assertIsNone(app["released_at"])
        self.assertRegex(app["updated_at"], ISO_SECONDS)
        self.assertEqual(json.loads(api("/apps/unreleased-app/config-vars")[2]), {})
        self.assertEqual(json.loads(api("/apps/unreleased-app/releases")[2]), [])
        self.assertApiError(api("/apps/unreleased-app/releases/1/config-vars"), 404, "not_found")
        self.assertEqual(json.loads(api("/apps/unreleased-app/addon-attachments")[2]), [])
        SECRET_VALUES.add("postgres://u:S3cretFirstRelease@h/d")
        mockctl.set_var(url(), "unreleased-app", "DATABASE_URL", "postgres://u:S3cretFirstRelease@h/d")
        app = next(a for a in self.apps()[2] if a["name"] == "unreleased-app")
        self.assertRegex(app["released_at"], ISO_SECONDS)
        self.assertEqual([r["version"] for r in json.loads(api("/apps/unreleased-app/releases")[2])], [1])
        for call, message in ((lambda: mockctl.put_app(url(), "unreleased-app", released=False), "exists"),
                              (lambda: mockctl.put_app(url(), "unreleased-2", {"A": "b"}, released=False),
                               "no config vars")):
            with self.assertRaisesRegex(mockctl.MockError, message):
                call()

    def test_headers_auth_and_methods(self):
        self.assertApiError(api("/apps", token=None), 401, "unauthorized")
        self.assertApiError(api("/apps", token="HRKU-nobody"), 401, "unauthorized")
        self.assertApiError(api("/apps", headers={"Accept": "application/json"}), 406, "not_acceptable")
        self.assertApiError(api("/apps", headers={"User-Agent": None}), 400, "bad_request")
        answer = api("/apps", method="POST", body=b"{}")
        self.assertApiError(answer, 405, "method_not_allowed")
        self.assertEqual(answer[1]["Allow"], "GET")
        self.assertApiError(api("/apps/"), 404, "not_found")

    def test_each_page_takes_a_token(self):
        try:
            mockctl.rate_limit(url(), 3, token_email="dave@example.com", refill_per_minute=0)
            seen = []
            for rng in ("name ..; max=1", "name ..; max=2", None):
                status, headers, _ = self.apps(rng, token=DAVE)
                seen.append((status, headers["RateLimit-Remaining"]))
            self.assertEqual(seen, [(206, "2"), (206, "1"), (200, "0")])
            answer = api("/apps", token=DAVE)
            self.assertApiError(answer, 429, "rate_limit")
            self.assertEqual(answer[1]["Retry-After"], "60")
            self.assertEqual(answer[1]["RateLimit-Remaining"], "0")
        finally:
            mockctl.rate_limit(url(), 4500, token_email="dave@example.com", refill_per_minute=75)

    def test_counted_under_their_own_key(self):
        mockctl.reset_counts(url())
        api("/apps")
        api("/apps", headers={"Range": "name ..; max=1"})
        api("/apps/myapp/config-vars")
        self.assertEqual(mockctl.requests(url())["by_path"]["GET /apps"], 2)
        self.assertEqual(mockctl.counts(url(), key="GET /apps"), 2)
        self.assertEqual(mockctl.counts(url(), path="GET /apps"), 3)   # a substring: both
        r = subprocess.run([sys.executable, MOCKCTL, "--url", url(), "counts", "--key", "GET /apps"],
                           capture_output=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout), (0, b"2\n"))


# ------------------------------------------------------------- rate limits

class RateLimitTests(MockTest):
    """Drains dave's pool only; refill is stopped so the arithmetic is exact."""

    def setUp(self):
        mockctl.rate_limit(url(), 4500, token_email="dave@example.com", refill_per_minute=0)

    def tearDown(self):
        mockctl.rate_limit(url(), 4500, token_email="dave@example.com", refill_per_minute=75)

    def remaining(self, answer):
        return int(answer[1]["RateLimit-Remaining"])

    def test_each_call_takes_one(self):
        seen = [self.remaining(api(p, token=DAVE)) for p in
                ("/apps/myapp/config-vars", "/apps/myapp/releases", "/apps/nosuchapp/config-vars",
                 "/apps/myapp/addon-attachments")]
        self.assertEqual(seen, [4499, 4498, 4497, 4496])
        # A 304 still costs one, as on the real API.
        tag = api("/apps/myapp/config-vars", token=DAVE)[1]["ETag"]
        answer = api("/apps/myapp/config-vars", token=DAVE, headers={"If-None-Match": tag})
        self.assertEqual((answer[0], self.remaining(answer)), (304, 4494))

    def test_rate_limits_endpoint_takes_none(self):
        for _ in range(3):
            status, headers, body = api("/account/rate-limits", token=DAVE)
            self.assertEqual((status, json.loads(body)), (200, {"remaining": 4500}))
            self.assertEqual(headers["RateLimit-Remaining"], "4500")

    def test_empty_pool_answers_429(self):
        mockctl.rate_limit(url(), 2, token_email="dave@example.com")
        self.assertEqual(self.remaining(api("/apps/myapp/config-vars", token=DAVE)), 1)
        self.assertEqual(self.remaining(api("/apps/myapp/config-vars", token=DAVE)), 0)
        for _ in range(2):
            answer = api("/apps/myapp/config-vars", token=DAVE)
            self.assertApiError(answer, 429, "rate_limit")
            self.assertEqual(answer[1]["Retry-After"], "60")
            self.assertEqual(answer[1]["RateLimit-Remaining"], "0")
        self.assertEqual(json.loads(api("/account/rate-limits", token=DAVE)[2]), {"remaining": 0})
        # The pool is per account: dave's second token is empty too, alice is not.
        self.assertEqual(api("/apps/myapp/config-vars", token=DAVE2)[0], 429)
        self.assertEqual(api("/apps/myapp/config-vars", token=ALICE)[0], 200)

    def test_refill(self):
        mockctl.rate_limit(url(), 0, token_email="dave@example.com", refill_per_minute=75)
        answer = api("/apps/myapp/config-vars", token=DAVE)
        self.assertEqual((answer[0], answer[1]["Retry-After"]), (429, "1"))
        mockctl.rate_limit(url(), 0, token_email="dave@example.com", refill_per_minute=6000)
        time.sleep(0.3)
        left = json.loads(api("/account/rate-limits", token=DAVE)[2])["remaining"]
        self.assertTrue(15 <= left <= 60, left)
        self.assertEqual(api("/apps/myapp/config-vars", token=DAVE)[0], 200)
        # Never above the pool size.
        mockctl.rate_limit(url(), 4500, token_email="dave@example.com", refill_per_minute=10**6)
        time.sleep(0.1)
        self.assertEqual(json.loads(api("/account/rate-limits", token=DAVE)[2]), {"remaining": 4500})

    def test_all_accounts_at_once(self):
        try:
            mockctl.rate_limit(url(), 7)
            for token in (ALICE, BOB, CAROL):
                self.assertEqual(int(api("/account/rate-limits", token=token)[1]["RateLimit-Remaining"]), 7)
        finally:
            mockctl.rate_limit(url(), 4500)


# --------------------------------------------------------------- control

class ControlTests(MockTest):

    def test_request_counts_and_log(self):
        mockctl.reset_counts(url())
        conn = connection()
        try:
            api("/apps/myapp/config-vars", conn=conn)
            api("/apps/myapp/config-vars", conn=conn, authorization=basic("", ALICE))
            api("/apps/myapp/releases", conn=conn, headers={"If-None-Match": '"x"'})
            api("/apps/myapp/config-vars", token=None, conn=conn)
        finally:
            conn.close()
        mockctl.state(url())           # control requests are never counted
        answer = mockctl.requests(url())
        self.assertEqual(answer["total"], 4)
        self.assertEqual(answer["by_path"], {"GET /apps/myapp/config-vars": 3, "GET /apps/myapp/releases": 1})
        self.assertEqual(answer["not_modified"], 0)
        self.assertEqual([(e["method"], e["path"], e["status"], e["auth"], e["user_agent"], e["if_none_match"])
                          for e in answer["log"]],
                         [("GET", "/apps/myapp/config-vars", 200, "bearer", UA, False),
                          ("GET", "/apps/myapp/config-vars", 200, "basic", UA, False),
                          ("GET", "/apps/myapp/releases", 200, "bearer", UA, True),
                          ("GET", "/apps/myapp/config-vars", 401, "none", UA, False)])
        for e in answer["log"]:     # times and sizes, for bench/large_account.sh
            self.assertLessEqual(e["at"], e["done"])
            self.assertIsInstance(e["bytes"], int)
            self.assertIsNone(e["range"])
        self.assertEqual(mockctl.counts(url(), "config-vars"), 3)
        mockctl.reset_counts(url())
        self.assertEqual(mockctl.requests(url()), {"total": 0, "by_path": {}, "not_modified": 0, "log": []})

    def test_log_keeps_last_500(self):
        mockctl.reset_counts(url())
        conn = connection()
        try:
            for i in range(510):
                api("/apps/myapp/releases" if i == 509 else "/apps/myapp/config-vars", conn=conn)
        finally:
            conn.close()
        answer = mockctl.requests(url())
        self.assertEqual(answer["total"], 510)
        self.assertEqual(len(answer["log"]), 500)
        self.assertEqual(answer["log"][-1]["path"], "/apps/myapp/releases")

    def test_state_shows_names_not_values(self):
        state = mockctl.state(url())
        app = state["apps"]["myapp"]
        self.assertEqual(app["id"], APP_ID)
        self.assertEqual(app["config_var_names"], sorted(MYAPP_VARS))
        self.assertEqual(app["current_release"], app["releases"][-1])
        text = json.dumps(state)
        for value in SECRET_VALUES:
            self.assertNotIn(value, text)

    def test_stats_give_rates_per_hour(self):
        mockctl.reset_counts(url())
        first = mockctl.stats(url())
        self.assertRegex(first["since"], ISO_MICROS)
        self.assertEqual((first["api_requests"], first["by_path"]), (0, {}))
        api("/apps")
        api("/apps/myapp/config-vars")
        tag = api("/apps/myapp/config-vars")[1]["ETag"]
        api("/apps/myapp/config-vars", headers={"If-None-Match": tag})
        answer = mockctl.stats(url())
        self.assertEqual(answer["api_requests"], 4)
        self.assertEqual(answer["by_path"], {"GET /apps": 1, "GET /apps/myapp/config-vars": 3})
        self.assertEqual(answer["not_modified"], 1)
        self.assertGreater(answer["seconds"], first["seconds"])
        self.assertEqual(answer["api_requests_per_hour"], round(4 * 3600 / answer["seconds"], 1))
        # mockctl per-hour: measured between the two stats calls around it.
        before = mockctl.stats(url())["seconds"]
        rate = mockctl.per_hour(url(), path="config-vars")
        after = mockctl.stats(url())["seconds"]
        self.assertTrue(3 * 3600 / after - 0.1 <= rate <= 3 * 3600 / before + 0.1, rate)
        r = subprocess.run([sys.executable, MOCKCTL, "--url", url(), "per-hour", "--key", "GET /apps"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(float(r.stdout), 0)
        r = subprocess.run([sys.executable, MOCKCTL, "--url", url(), "stats"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(json.loads(r.stdout)["by_path"]["GET /apps"], 1)
        # reset-counts starts the clock again.
        mockctl.reset_counts(url())
        self.assertLess(mockctl.stats(url())["seconds"], answer["seconds"])

    def test_put_app_replaces_or_recreates(self):
        new_app("put-app", {"A": "S3cretPutOne"}, "11111111-2222-4333-8444-555555555555")
        answer = mockctl.put_app(url(), "put-app", {"B": "S3cretPutTwo"})
        self.assertEqual((answer["releases"], answer["config_var_names"]), ([1, 2], ["B"]))
        self.assertEqual(json.loads(api("/apps/11111111-2222-4333-8444-555555555555/config-vars")[2]),
                         {"B": "S3cretPutTwo"})
        # A new id under the same name is a new app with a fresh history.
        answer = new_app("put-app", {"C": "S3cretPutThree"}, "66666666-7777-4888-9999-aaaaaaaaaaaa")
        self.assertEqual(answer["releases"], [1])
        self.assertEqual(api("/apps/66666666-7777-4888-9999-aaaaaaaaaaaa/config-vars")[0], 200)
        self.assertApiError(api("/apps/11111111-2222-4333-8444-555555555555/config-vars"), 404, "not_found")
        with self.assertRaisesRegex(mockctl.MockError, "400 id already used"):
            mockctl.put_app(url(), "put-app-two", {}, APP_ID)
        # An app made without an id gets one.
        answer = new_app("put-app-noid")
        self.assertRegex(answer["id"], r"^[0-9a-f]{8}-")

    def test_delete_app(self):
        new_app("doomed-app", {"A": "S3cretDoomed"})
        mockctl.delete_app(url(), "doomed-app")
        self.assertApiError(api("/apps/doomed-app/config-vars"), 404, "not_found")
        with self.assertRaisesRegex(mockctl.MockError, "404"):
            mockctl.delete_app(url(), "doomed-app")

    def test_control_refusals(self):
        cases = [
            (lambda: mockctl.put_app(url(), "Bad_Name", {}), "400 invalid app name"),
            (lambda: mockctl.put_app(url(), "ok-app", {"A-B": "x"}), "400 invalid config var name"),
            (lambda: mockctl.put_app(url(), "ok-app", {"A": 5}), "400 config var A"),
            (lambda: mockctl.put_app(url(), "ok-app", {}, "NOT-A-UUID"), "400 id must be"),
            (lambda: mockctl.set_var(url(), "no-such-app", "A", "b"), "404 no app"),
            (lambda: mockctl.unset_var(url(), "myapp", "NOPE"), "400 cannot unset"),
            (lambda: mockctl.set_vars(url(), "myapp", {}), "400 nothing to change"),
            (lambda: mockctl.call(url(), "GET", "/__mock/nothing"), "404"),
            (lambda: mockctl.call(url(), "GET", "/__mock/faults"), "405"),
            (lambda: mockctl.rate_limit(url(), 4501), "400 remaining"),
            (lambda: mockctl.rate_limit(url(), 1, token_email="nobody@example.com"), "404"),
        ]
        for call, message in cases:
            with self.assertRaisesRegex(mockctl.MockError, message):
                call()
        status, _, body = api("/__mock/apps/ok-app", method="PUT", body=b"{not json")
        self.assertEqual((status, json.loads(body)), (400, {"error": "body must be JSON"}))
        self.assertNotIn("ok-app", mockctl.state(url())["apps"])


# ----------------------------------------------------------------- faults

class FaultTests(MockTest):

    def setUp(self):
        mockctl.clear_faults(url())

    def tearDown(self):
        mockctl.clear_faults(url())

    def test_delay(self):
        mockctl.fault(url(), "delay", seconds=0.5, count=1)
        start = time.monotonic()
        status, _, body = api("/apps/myapp/config-vars")
        self.assertGreaterEqual(time.monotonic() - start, 0.5)
        self.assertEqual((status, json.loads(body)), (200, MYAPP_VARS))
        start = time.monotonic()
        api("/apps/myapp/config-vars")
        self.assertLess(time.monotonic() - start, 0.4)

    def test_hang_does_not_block_others(self):
        mockctl.fault(url(), "hang", path="^/apps/myapp/config-vars$")
        with socket.create_connection(("127.0.0.1", ENV["port"]), timeout=0.5) as hung:
            hung.sendall(raw_get("/apps/myapp/config-vars"))
            with self.assertRaises(socket.timeout):
                hung.recv(1)
            # Meanwhile other requests, even on the same listener, are served.
            self.assertEqual(api("/apps/myapp/releases")[0], 200)
            self.assertEqual(mockctl.state(url())["faults"][0]["kind"], "hang")
            with self.assertRaises(socket.timeout):
                hung.recv(1)
        entry = [e for e in mockctl.requests(url())["log"] if e["path"] == "/apps/myapp/config-vars"][-1]
        self.assertEqual((entry["status"], entry["fault"]), (None, "hang"))

    def test_status_json(self):
        mockctl.fault(url(), "status", status=500, count=1)
        conn = connection()
        try:
            self.assertApiError(api("/apps/myapp/config-vars", conn=conn), 500, "internal_server_error")
            # count=1: the next request is answered normally, on the same connection.
            self.assertEqual(api("/apps/myapp/config-vars", conn=conn)[0], 200)
        finally:
            conn.close()
        mockctl.fault(url(), "status", status=403, id="two_factor", message="Two-factor code required.", count=1)
        obj = self.assertApiError(api("/apps/myapp/config-vars"), 403, "two_factor")
        self.assertEqual(obj["message"], "Two-factor code required.")

    def test_status_not_json(self):
        mockctl.fault(url(), "status", status=503, json=False, count=1)
        status, headers, body = api("/apps/myapp/config-vars")
        self.assertEqual(status, 503)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        self.assertIn(b"Service Unavailable", body)
        self.assertRaises(ValueError, json.loads, body)

    def test_status_429_with_retry_after(self):
        mockctl.fault(url(), "status", status=429, retry_after=7, count=1)
        answer = api("/apps/myapp/config-vars")
        self.assertApiError(answer, 429, "rate_limit")
        self.assertEqual(answer[1]["Retry-After"], "7")

    def test_path_and_count(self):
        mockctl.fault(url(), "status", status=502, path=r"/releases$", count=2)
        self.assertEqual(api("/apps/myapp/config-vars")[0], 200)
        self.assertEqual(api("/apps/myapp/releases")[0], 502)
        self.assertEqual(api("/apps/myapp/releases")[0], 502)
        self.assertEqual(api("/apps/myapp/releases")[0], 200)
        self.assertEqual(mockctl.state(url())["faults"], [])

    def test_list_of_faults_and_clear(self):
        mockctl.call(url(), "POST", "/__mock/faults",
                     [{"kind": "status", "status": 500, "path": "config-vars"},
                      {"kind": "status", "status": 504, "path": "releases"}])
        self.assertEqual(api("/apps/myapp/config-vars")[0], 500)
        self.assertEqual(api("/apps/myapp/releases")[0], 504)
        self.assertEqual(len(mockctl.state(url())["faults"]), 2)
        mockctl.clear_faults(url())
        self.assertEqual(api("/apps/myapp/config-vars")[0], 200)

    def test_faults_never_touch_control_endpoints(self):
        mockctl.fault(url(), "drop")
        self.assertIn("myapp", mockctl.state(url())["apps"])

    def test_body(self):
        for raw, ctype in (('{"DATABASE_URL": "a", "DATABASE_URL": "b"}', None),
                           ('["not", "an", "object"]', None),
                           ('{"DATABASE_URL": "postgres://trunc', None),
                           ("<html>oops</html>", "text/html")):
            mockctl.fault(url(), "body", body=raw, content_type=ctype, count=1)
            status, headers, body = api("/apps/myapp/config-vars")
            self.assertEqual((status, body), (200, raw.encode()))
            self.assertEqual(headers["Content-Type"], ctype or "application/json; charset=utf-8")
        mockctl.fault(url(), "body", body="{}", status=500, count=1)
        self.assertEqual(api("/apps/myapp/config-vars")[:3:2], (500, b"{}"))

    def test_oversize(self):
        size = 1 << 20
        mockctl.fault(url(), "oversize", size=size, count=1)
        status, headers, body = api("/apps/myapp/config-vars")
        self.assertEqual((status, len(body), int(headers["Content-Length"])), (200, size, size))
        self.assertEqual(set(json.loads(body)), {"PADDING"})
        self.assertEqual(headers["ETag"], '"%s"' % hashlib.sha256(body).hexdigest()[:32])

    def test_oversize_default_is_10_mib(self):
        mockctl.fault(url(), "oversize", count=1)
        conn = connection()
        try:
            conn.request("GET", "/apps/myapp/config-vars",
                         headers={"Accept": ACCEPT, "User-Agent": UA, "Authorization": "Bearer " + ALICE})
            resp = conn.getresponse()
            self.assertEqual(resp.getheader("Content-Length"), str(10 * 1024 * 1024))
            self.assertEqual(resp.read(13), b'{"PADDING": "')
        finally:
            conn.close()       # mid-body: the mock must cope
        self.assertEqual(api("/apps/myapp/config-vars")[0], 200)

    def test_drop(self):
        mockctl.fault(url(), "drop", count=1)
        with self.assertRaises(http.client.RemoteDisconnected):
            api("/apps/myapp/config-vars")
        self.assertEqual(api("/apps/myapp/config-vars")[0], 200)

    def test_truncate(self):
        mockctl.fault(url(), "truncate", count=1)
        conn = connection()
        try:
            conn.request("GET", "/apps/myapp/config-vars",
                         headers={"Accept": ACCEPT, "User-Agent": UA, "Authorization": "Bearer " + ALICE})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            with self.assertRaises(http.client.IncompleteRead) as caught:
                resp.read()
            full = int(resp.getheader("Content-Length"))
            self.assertEqual(len(caught.exception.partial), full // 2)
        finally:
            conn.close()

    def test_slowdrip(self):
        mockctl.fault(url(), "slowdrip", interval=0.003, count=1)
        start = time.monotonic()
        raw, pieces = raw_exchange(raw_get("/apps/myapp/config-vars")
                                   .replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        elapsed = time.monotonic() - start
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"))
        self.assertEqual(json.loads(body), MYAPP_VARS)
        self.assertGreater(pieces, 50)            # it came in many small pieces
        self.assertGreaterEqual(elapsed, len(raw) * 0.003 * 0.9)

    def test_http10(self):
        mockctl.fault(url(), "http10", count=1)
        raw, _ = raw_exchange(raw_get("/apps/myapp/config-vars"))
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.assertEqual(lines[0], "HTTP/1.0 200 OK")
        self.assertFalse(any(l.lower().startswith("content-length:") for l in lines))
        self.assertEqual(json.loads(body), MYAPP_VARS)

    def test_redirect(self):
        mockctl.fault(url(), "redirect", location="http://127.0.0.1:9/elsewhere", count=1)
        status, headers, _ = api("/apps/myapp/config-vars")
        self.assertEqual((status, headers["Location"]), (302, "http://127.0.0.1:9/elsewhere"))
        mockctl.fault(url(), "redirect", location="https://127.0.0.1:9/x", status=307, count=1)
        self.assertEqual(api("/apps/myapp/config-vars")[0], 307)

    def test_fault_refusals(self):
        for spec, message in (({"kind": "explode"}, "kind is one of"),
                              ({"kind": "delay"}, "needs seconds"),
                              ({"kind": "delay", "seconds": 1, "status": 500}, "does not take"),
                              ({"kind": "status", "status": 200}, "status must be"),
                              ({"kind": "hang", "path": "("}, "bad path"),
                              ({"kind": "drop", "count": 0}, "count must be"),
                              ({"kind": "redirect", "location": "x\r\nSet-Cookie: a"}, "control characters"),
                              ({"kind": "body", "body": "x", "status": 304}, "cannot carry")):
            with self.assertRaisesRegex(mockctl.MockError, message):
                mockctl.call(url(), "POST", "/__mock/faults", spec)
        self.assertEqual(mockctl.state(url())["faults"], [])


# -------------------------------------------------------------------- TLS

class TlsTests(MockTest):

    def https(self, context):
        return http.client.HTTPSConnection("127.0.0.1", ENV["tls_port"], timeout=10, context=context)

    def test_verified_tls_with_keep_alive(self):
        conn = self.https(ssl.create_default_context(cafile=ENV["ca"]))
        try:
            status, _, body = api("/apps/myapp/config-vars", conn=conn)
            self.assertEqual((status, json.loads(body)), (200, MYAPP_VARS))
            sock = conn.sock
            self.assertIn(sock.version(), ("TLSv1.2", "TLSv1.3"))
            self.assertEqual(api("/apps/nosuchapp/config-vars", conn=conn)[0], 404)
            self.assertEqual(api("/apps/myapp/releases", conn=conn)[0], 200)
            self.assertIs(conn.sock, sock)
        finally:
            conn.close()

    def test_same_state_as_plain_listener(self):
        new_app("tls-app", {"DATABASE_URL": "postgres://t:S3cretTlsOne@h/d"})
        conn = self.https(ssl.create_default_context(cafile=ENV["ca"]))
        try:
            self.assertEqual(json.loads(api("/apps/tls-app/config-vars", conn=conn)[2]),
                             {"DATABASE_URL": "postgres://t:S3cretTlsOne@h/d"})
        finally:
            conn.close()

    def test_unknown_ca_is_refused(self):
        conn = self.https(ssl.create_default_context())
        try:
            with self.assertRaises(ssl.SSLCertVerificationError):
                api("/apps/myapp/config-vars", conn=conn)
        finally:
            conn.close()

    def test_plain_http_on_tls_port_is_closed(self):
        with socket.create_connection(("127.0.0.1", ENV["tls_port"]), timeout=5) as s:
            s.sendall(raw_get("/apps/myapp/config-vars"))
            try:
                self.assertNotIn(b"SECRET", s.recv(4096).upper())
            except ConnectionResetError:
                pass
        # The listener still serves TLS clients afterwards.
        conn = self.https(ssl.create_default_context(cafile=ENV["ca"]))
        try:
            self.assertEqual(api("/apps/myapp/config-vars", conn=conn)[0], 200)
        finally:
            conn.close()


# ---------------------------------------------------------------- webhooks

class Receiver:
    """A local webhook receiver: records every POST, answers the statuses queued.

    statuses are given out in order, then 200; delay holds each answer.
    """

    def __init__(self, statuses=(), delay=0.0, tls=False):
        self.requests = []
        self.statuses = list(statuses)
        self.delay = delay
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append({"path": self.path, "headers": self.headers,
                                              "body": body})
                    receiver.cond.notify_all()
                time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(ENV["dir"], "server.crt"),
                                os.path.join(ENV["dir"], "server.key"))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self.url = "%s://127.0.0.1:%d/hooks/heroku?x=1" % ("https" if tls else "http",
                                                            self.server.server_address[1])

    def wait(self, count, timeout=10):
        with self.cond:
            self.cond.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def signature(secret, body):
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class WebhookTests(MockTest):
    """App webhooks: the API, deliveries of api:release events and their record."""

    def setUp(self):
        mockctl.webhook_settings(url(), backoff=0.05, max_attempts=4, timeout=2)
        mockctl.clear_deliveries(url())
        self.receivers = []

    def tearDown(self):
        for hook in mockctl.webhooks(url()):
            mockctl.remove_webhook(url(), hook["app"]["name"], hook["id"])
        for receiver in self.receivers:
            receiver.close()
        mockctl.webhook_settings(url(), backoff=1, max_attempts=5, timeout=10)

    def receiver(self, *args, **kwargs):
        receiver = Receiver(*args, **kwargs)
        self.receivers.append(receiver)
        return receiver

    def rotate(self, app, n):
        set_var(app, "DATABASE_URL", "postgres://w:S3cretHook%d@h/d" % n)

    def post_hook(self, app, spec, token=ALICE, content_type="application/json"):
        body = spec if isinstance(spec, bytes) else json.dumps(spec).encode()
        return api("/apps/%s/webhooks" % app, token=token, method="POST", body=body,
                   headers={"Content-Type": content_type})

    def test_api_create_list_get_delete(self):
        new_app("hook-api-app", {})
        spec = {"include": ["api:release"], "level": "sync", "url": "http://127.0.0.1:9/h",
                "secret": "S3cretHookSecret", "authorization": "Bearer S3cretHookAuth"}
        status, headers, body = self.post_hook("hook-api-app", spec)
        self.assertEqual(status, 201, body)
        self.assertRegex(headers["RateLimit-Remaining"], r"^[0-9]+$")
        hook = json.loads(body)
        self.assertEqual(set(hook), {"id", "app", "created_at", "updated_at", "include", "level", "url"})
        self.assertEqual((hook["include"], hook["level"], hook["url"]),
                         (["api:release"], "sync", "http://127.0.0.1:9/h"))
        self.assertEqual(hook["app"]["name"], "hook-api-app")
        self.assertNotIn(b"S3cret", body)
        status, headers, body = api("/apps/hook-api-app/webhooks")
        self.assertEqual((status, json.loads(body)), (200, [hook]))
        self.assertEqual(headers["Accept-Ranges"], "id")
        self.assertEqual(set(hook), set(SCHEMA["app-webhook"]["properties"]))
        self.assertEqual(api("/apps/hook-api-app/webhooks", headers={"If-None-Match": headers["ETag"]})[0], 304)
        self.assertEqual(json.loads(api("/apps/%s/webhooks/%s" % (hook["app"]["id"], hook["id"]))[2]), hook)
        self.assertEqual(mockctl.webhooks(url(), "hook-api-app"), [hook])
        # The same URL twice on one app is refused; the same URL on another app is not.
        self.assertApiError(self.post_hook("hook-api-app", spec), 422, "invalid_params")
        new_app("hook-api-app2", {})
        self.assertEqual(self.post_hook("hook-api-app2", spec)[0], 201)
        # Only a token that may write changes webhooks; any token reads them.
        for token in (BOB, CAROL):
            self.assertApiError(self.post_hook("hook-api-app", dict(spec, url="http://h/2"), token),
                                403, "forbidden")
            self.assertApiError(api("/apps/hook-api-app/webhooks/" + hook["id"], token=token,
                                    method="DELETE"), 403, "forbidden")
        self.assertEqual(api("/apps/hook-api-app/webhooks", token=CAROL)[0], 200)
        status, _, body = api("/apps/hook-api-app/webhooks/" + hook["id"], method="DELETE")
        self.assertEqual((status, json.loads(body)), (200, hook))
        for method in ("GET", "DELETE"):
            self.assertApiError(api("/apps/hook-api-app/webhooks/" + hook["id"], method=method),
                                404, "not_found")
        self.assertApiError(self.post_hook("no-such-app", spec), 404, "not_found")
        answer = api("/apps/hook-api-app/webhooks", method="PUT", body=b"{}")
        self.assertApiError(answer, 405, "method_not_allowed")
        self.assertEqual(answer[1]["Allow"], "GET, POST")

    def test_api_generates_a_secret(self):
        """Created without a secret, a webhook gets one, told once in a header;
        its deliveries are signed with it."""
        new_app("hook-gen-app", {})
        receiver = self.receiver()
        status, headers, body = self.post_hook("hook-gen-app", {
            "include": ["api:release"], "level": "notify", "url": receiver.url})
        self.assertEqual(status, 201, body)
        secret = headers["Heroku-Webhook-Secret"]
        self.assertRegex(secret, r"^[0-9a-f]{64}$")
        self.assertNotIn(secret.encode(), body)
        SECRET_VALUES.add(secret)
        status, headers, _ = self.post_hook("hook-gen-app", {
            "include": ["api:release"], "level": "notify", "url": receiver.url + "x", "secret": "S3cretGiven"})
        self.assertEqual(status, 201)
        self.assertIsNone(headers["Heroku-Webhook-Secret"])
        self.rotate("hook-gen-app", 1)
        got = receiver.wait(2)
        signed = [r for r in got if r["path"].endswith("?x=1")]
        self.assertTrue(signed)
        self.assertEqual(signed[0]["headers"]["Heroku-Webhook-Hmac-SHA256"], signature(secret, signed[0]["body"]))

    def test_api_refuses_bad_subscriptions(self):
        new_app("hook-bad-app", {})
        good = {"include": ["api:release"], "level": "notify", "url": "https://example.com/h"}
        for change in ({"level": "often"}, {"include": []}, {"include": ["api:nothing"]},
                       {"include": "api:release"}, {"url": "ftp://example.com/"},
                       {"url": "http:///nohost"}, {"url": "http://u:p@example.com/"},
                       {"url": "http://example.com/a b"}, {"url": "http://example.com:99999/"},
                       {"secret": ""}, {"authorization": "Bearer x\r\nX-Evil: 1"},
                       {"unknown": 1}, {"url": None}):
            spec = dict(good, **change)
            self.assertApiError(self.post_hook("hook-bad-app", spec), 422, "invalid_params")
        self.assertApiError(self.post_hook("hook-bad-app", b"{not json"), 400, "bad_request")
        self.assertApiError(self.post_hook("hook-bad-app", good, content_type="text/plain"),
                            400, "bad_request")
        self.assertEqual(self.post_hook("hook-bad-app", good, content_type="application/json; charset=utf-8")[0], 201)
        with self.assertRaisesRegex(mockctl.MockError, "400 level must be"):
            mockctl.add_webhook(url(), "hook-bad-app", "http://h/", level="often")
        with self.assertRaisesRegex(mockctl.MockError, "404"):
            mockctl.add_webhook(url(), "no-such-app", "http://h/")

    def test_notify_delivery_is_signed_and_complete(self):
        app = new_app("hook-notify-app", {})
        receiver = self.receiver()
        status, _, body = self.post_hook("hook-notify-app", {
            "include": ["api:release"], "level": "notify", "url": receiver.url,
            "secret": "S3cretNotifySecret", "authorization": "Bearer S3cretNotifyAuth"})
        hook = json.loads(body)
        self.rotate("hook-notify-app", 1)
        done = mockctl.wait_deliveries(url(), 1, app="hook-notify-app")
        got = receiver.wait(1)
        self.assertEqual(len(got), 1)
        request = got[0]
        self.assertEqual(request["path"], "/hooks/heroku?x=1")
        self.assertEqual(request["headers"]["Content-Type"], "application/json")
        self.assertEqual(request["headers"]["Authorization"], "Bearer S3cretNotifyAuth")
        self.assertTrue(hmac.compare_digest(request["headers"]["Heroku-Webhook-Hmac-SHA256"],
                                            signature("S3cretNotifySecret", request["body"])))
        event = json.loads(request["body"])
        self.assertEqual((event["resource"], event["action"]), ("release", "create"))
        self.assertEqual(event["version"], "application/vnd.heroku+json; version=3")
        self.assertEqual(event["data"]["version"], 2)
        self.assertEqual(event["data"]["app"], {"id": app["id"], "name": "hook-notify-app"})
        self.assertEqual((event["data"]["status"], event["data"]["current"]), ("succeeded", True))
        self.assertEqual(event["data"]["description"], "Set DATABASE_URL config vars")
        self.assertEqual(event["previous_data"], {})
        self.assertEqual(event["actor"]["email"], "alice@example.com")
        self.assertIsNone(event["sequence"])
        self.assertRegex(event["created_at"], ISO_SECONDS)
        # null until published, as in Heroku's event examples
        self.assertIsNone(event["published_at"])
        # The event's ids are those of the mock's record of the delivery.
        delivery = done[0]
        meta = event["webhook_metadata"]
        self.assertEqual(meta, {"attempt": {"id": delivery["attempts"][0]["id"]},
                                "delivery": {"id": delivery["id"]},
                                "event": {"id": event["id"], "include": "api:release"},
                                "webhook": {"id": hook["id"]}})
        self.assertEqual((delivery["status"], delivery["num_attempts"], delivery["version"]),
                         ("succeeded", 1, 2))
        self.assertEqual((delivery["level"], delivery["event_id"], delivery["webhook_id"]),
                         ("notify", event["id"], hook["id"]))
        self.assertEqual(delivery["attempts"][0]["code"], 200)
        # The release the event names is the one the API shows.
        releases = json.loads(api("/apps/hook-notify-app/releases")[2])
        self.assertEqual(releases[-1], event["data"])
        # Neither the secret nor the authorization value reaches the log.
        with open(ENV["logfile"], encoding="utf-8") as f:
            log = f.read()
        self.assertIn("delivery %s attempt 1: 200" % delivery["id"], log)
        self.assertNotIn("S3cretNotify", log)
        self.assertNotIn(receiver.url, log)

    def test_notify_makes_one_attempt(self):
        new_app("hook-once-app", {})
        receiver = self.receiver([500, 500])
        mockctl.add_webhook(url(), "hook-once-app", receiver.url, level="notify")
        self.rotate("hook-once-app", 2)
        delivery = mockctl.wait_deliveries(url(), 1, app="hook-once-app")[0]
        self.assertEqual((delivery["status"], delivery["num_attempts"]), ("failed", 1))
        self.assertEqual(delivery["attempts"][0]["code"], 500)
        time.sleep(0.3)       # several back-off periods: still no second attempt
        self.assertEqual(len(receiver.requests), 1)

    def test_sync_retries_until_a_2xx(self):
        new_app("hook-sync-app", {})
        receiver = self.receiver([500, 302, 204])
        hook = mockctl.add_webhook(url(), "hook-sync-app", receiver.url, secret="S3cretSyncSecret")
        start = time.monotonic()
        self.rotate("hook-sync-app", 3)
        delivery = mockctl.wait_deliveries(url(), 1, app="hook-sync-app")[0]
        # Back-off 0.05 s, doubled: at least 0.05 + 0.1 s between the three.
        self.assertGreaterEqual(time.monotonic() - start, 0.15)
        self.assertEqual((delivery["status"], delivery["num_attempts"]), ("succeeded", 3))
        self.assertEqual([a["code"] for a in delivery["attempts"]], [500, 302, 204])
        self.assertEqual([a["status"] for a in delivery["attempts"]], ["failed", "failed", "succeeded"])
        self.assertIsNone(delivery["next_attempt_at"])
        got = receiver.wait(3)
        events = [json.loads(r["body"]) for r in got]
        # One delivery and one event, a new attempt id each time, each body signed.
        self.assertEqual({e["webhook_metadata"]["delivery"]["id"] for e in events}, {delivery["id"]})
        self.assertEqual({e["id"] for e in events}, {delivery["event_id"]})
        self.assertEqual([e["webhook_metadata"]["attempt"]["id"] for e in events],
                         [a["id"] for a in delivery["attempts"]])
        self.assertEqual({e["webhook_metadata"]["webhook"]["id"] for e in events}, {hook["id"]})
        for r in got:
            self.assertEqual(r["headers"]["Heroku-Webhook-Hmac-SHA256"],
                             signature("S3cretSyncSecret", r["body"]))
            self.assertIsNone(r["headers"]["Authorization"])

    def test_sync_gives_up_at_the_limit(self):
        new_app("hook-limit-app", {})
        mockctl.webhook_settings(url(), max_attempts=3)
        receiver = self.receiver([503] * 10)
        mockctl.add_webhook(url(), "hook-limit-app", receiver.url)
        self.rotate("hook-limit-app", 4)
        delivery = mockctl.wait_deliveries(url(), 1, app="hook-limit-app")[0]
        self.assertEqual((delivery["status"], delivery["num_attempts"]), ("failed", 3))
        time.sleep(0.5)
        self.assertEqual(len(receiver.requests), 3)

    def test_connection_failures_are_retried(self):
        new_app("hook-down-app", {})
        mockctl.webhook_settings(url(), max_attempts=2)
        mockctl.add_webhook(url(), "hook-down-app", "http://127.0.0.1:%d/h" % free_port())
        self.rotate("hook-down-app", 5)
        delivery = mockctl.wait_deliveries(url(), 1, app="hook-down-app")[0]
        self.assertEqual((delivery["status"], delivery["num_attempts"]), ("failed", 2))
        for attempt in delivery["attempts"]:
            self.assertIsNone(attempt["code"])
            self.assertEqual(attempt["error_class"], "ConnectionRefusedError")

    def test_timeout_is_a_failed_attempt(self):
        new_app("hook-slow-app", {})
        mockctl.webhook_settings(url(), max_attempts=2, timeout=0.2)
        receiver = self.receiver([200, 200], delay=0.5)
        mockctl.add_webhook(url(), "hook-slow-app", receiver.url)
        start = time.monotonic()
        self.rotate("hook-slow-app", 6)
        # The API answer never waits for a delivery.
        self.assertLess(time.monotonic() - start, 0.2)
        delivery = mockctl.wait_deliveries(url(), 1, app="hook-slow-app")[0]
        self.assertEqual([a["error_class"] for a in delivery["attempts"]], ["TimeoutError"] * 2)
        self.assertEqual(delivery["status"], "failed")

    def test_https_receiver_verified_with_the_test_ca(self):
        new_app("hook-tls-app", {})
        receiver = self.receiver(tls=True)
        mockctl.add_webhook(url(), "hook-tls-app", receiver.url, level="notify")
        self.rotate("hook-tls-app", 7)
        delivery = mockctl.wait_deliveries(url(), 1, app="hook-tls-app")[0]
        self.assertEqual(delivery["status"], "succeeded")
        self.assertEqual(len(receiver.wait(1)), 1)
        self.assertNotIn("Heroku-Webhook-Hmac-SHA256", receiver.requests[0]["headers"])

    def test_every_kind_of_change_and_only_subscribed_apps(self):
        new_app("hook-each-app", {"A": "x"})
        new_app("hook-quiet-app", {"A": "x"})
        receiver = self.receiver()
        mockctl.add_webhook(url(), "hook-each-app", receiver.url)
        # Not subscribed to releases: never told.
        mockctl.add_webhook(url(), "hook-each-app", receiver.url + "&other", include=["api:dyno"])
        mockctl.set_vars(url(), "hook-each-app", {"A": "y", "B": "z"})       # v2
        mockctl.unset_var(url(), "hook-each-app", "B")                       # v3
        mockctl.put_app(url(), "hook-each-app", {"C": "w"})                  # v4
        mockctl.set_var(url(), "hook-quiet-app", "A", "y")
        done = mockctl.wait_deliveries(url(), 3)
        self.assertEqual(sorted(d["version"] for d in done), [2, 3, 4])
        self.assertEqual({d["app"]["name"] for d in done}, {"hook-each-app"})
        self.assertEqual(len(receiver.wait(3)), 3)
        time.sleep(0.2)
        self.assertEqual(len(receiver.requests), 3)

    def test_removed_webhook_stops_retrying(self):
        new_app("hook-gone-app", {})
        mockctl.webhook_settings(url(), backoff=0.5, max_attempts=5)
        receiver = self.receiver([500] * 10)
        hook = mockctl.add_webhook(url(), "hook-gone-app", receiver.url)
        self.rotate("hook-gone-app", 8)
        receiver.wait(1)
        mockctl.remove_webhook(url(), "hook-gone-app", hook["id"])
        delivery = mockctl.wait_deliveries(url(), 1, app="hook-gone-app")[0]
        self.assertEqual((delivery["status"], delivery["num_attempts"]), ("skipped", 1))
        # Deleting an app removes its webhooks.
        mockctl.add_webhook(url(), "hook-gone-app", receiver.url)
        mockctl.delete_app(url(), "hook-gone-app")
        self.assertEqual(mockctl.webhooks(url(), "hook-gone-app"), [])

    def test_mockctl_commands(self):
        new_app("hook-cli-app", {})
        receiver = self.receiver([500])

        def cli(*args):
            r = subprocess.run([sys.executable, MOCKCTL, "--url", url()] + list(args),
                               capture_output=True, timeout=30, text=True)
            self.assertEqual((r.returncode, r.stderr), (0, ""))
            return r.stdout.strip()
        settings = json.loads(cli("webhook-settings", "--backoff", "0.01", "--attempts", "3"))
        self.assertEqual(settings, {"backoff": 0.01, "max_attempts": 3, "timeout": 2})
        hook_id = cli("add-webhook", "hook-cli-app", receiver.url, "--secret", "S3cretCliSecret",
                      "--level", "sync")
        self.assertRegex(hook_id, r"^[0-9a-f-]{36}$")
        self.assertEqual([w["id"] for w in json.loads(cli("webhooks", "--app", "hook-cli-app"))],
                         [hook_id])
        self.rotate("hook-cli-app", 9)
        self.assertEqual(cli("wait-deliveries", "1", "--app", "hook-cli-app",
                             "--status", "succeeded", "--timeout", "10"), "")
        self.assertEqual(cli("deliveries", "--app", "hook-cli-app", "--count"), "1")
        (delivery,) = json.loads(cli("deliveries", "--app", "hook-cli-app"))
        self.assertEqual([a["code"] for a in delivery["attempts"]], [500, 200])
        self.assertEqual(cli("remove-webhook", "hook-cli-app", hook_id), "")
        self.assertEqual(json.loads(cli("webhooks", "--app", "hook-cli-app")), [])
        self.assertEqual(cli("clear-deliveries"), "")
        self.assertEqual(cli("deliveries", "--count"), "0")
        r = subprocess.run([sys.executable, MOCKCTL, "--url", url(), "wait-deliveries", "1",
                            "--timeout", "0.2"], capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout), (1, ""))
        self.assertRegex(r.stderr, r"^mockctl: 0 of 1 deliveries over after 0.2s\n$")

    def test_counted_in_stats(self):
        new_app("hook-stats-app", {})
        receiver = self.receiver([500])
        mockctl.add_webhook(url(), "hook-stats-app", receiver.url)
        mockctl.reset_counts(url())
        self.rotate("hook-stats-app", 10)
        mockctl.wait_deliveries(url(), 1, app="hook-stats-app")
        self.assertEqual(mockctl.stats(url())["webhooks"],
                         {"deliveries": 1, "attempts": 2, "succeeded": 1, "failed": 0, "skipped": 0})
        # Webhook deliveries are no API requests.
        self.assertEqual(mockctl.counts(url()), 0)

    def test_settings_refusals(self):
        for body, message in (({"backoff": -1}, "backoff must be"), ({"max_attempts": 0}, "max_attempts"),
                              ({"timeout": 0}, "timeout must be"), ({"retries": 1}, "body:")):
            with self.assertRaisesRegex(mockctl.MockError, message):
                mockctl.call(url(), "POST", "/__mock/webhook-settings", body)


# ---------------------------------------------------------------- mockctl

class MockctlTests(MockTest):

    def cli(self, *args, env_url=True, check=True):
        env = dict(os.environ)
        env.pop("HEROKU_MOCK_URL", None)
        if env_url:
            env["HEROKU_MOCK_URL"] = url()
        r = subprocess.run([sys.executable, MOCKCTL] + list(args), env=env,
                           capture_output=True, timeout=30)
        if check:
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr, b"")
        return r

    def test_values_arrive_byte_exact(self):
        new_app("cli-app", {})
        values = ["--", "-h", "--url", "-x=1", "", "  spaces around  ", "quote\"single'back\\slash",
                  "p@ss:w/o%rd#?&=+;", "new\nline\ttab\r", "$(echo no) `x` ${HOME} *", "\u00e9\u00fc\u65e5\U0001F418",
                  "postgres://u:p%40ss@h:5432/d?sslmode=require"]
        for i, value in enumerate(values):
            SECRET_VALUES.add(value)
            self.assertEqual(self.cli("set-var", "cli-app", "V%d" % i, value).stdout, b"")
        got = json.loads(api("/apps/cli-app/config-vars")[2])
        self.assertEqual(got, {"V%d" % i: v for i, v in enumerate(values)})

    def test_put_set_null_unset_delete(self):
        self.cli("put-app", "cli-app2", "--id", "12121212-3434-4565-8787-909090909090",
                 "--var", "A=x=y", "--var=B=-z", "--var", "C=")
        self.assertEqual(json.loads(api("/apps/12121212-3434-4565-8787-909090909090/config-vars")[2]),
                         {"A": "x=y", "B": "-z", "C": ""})
        self.cli("set-null", "cli-app2", "A")
        self.cli("unset-var", "cli-app2", "B")
        self.assertEqual(json.loads(api("/apps/cli-app2/config-vars")[2]), {"A": None, "C": ""})
        self.cli("delete-app", "cli-app2")
        self.assertEqual(api("/apps/cli-app2/config-vars")[0], 404)

    def test_counts_print_bare_integers(self):
        self.cli("reset-counts")
        tag = api("/apps/myapp/config-vars")[1]["ETag"]
        api("/apps/myapp/config-vars", headers={"If-None-Match": tag})
        api("/apps/myapp/releases")
        self.assertEqual(self.cli("counts").stdout, b"3\n")
        self.assertEqual(self.cli("counts", "--path", "config-vars").stdout, b"2\n")
        self.assertEqual(self.cli("counts", "--path", "nothing").stdout, b"0\n")
        self.assertEqual(self.cli("not-modified").stdout, b"1\n")
        # --url wins over the environment.
        r = self.cli("--url", url(), "counts", env_url=False)
        self.assertEqual(r.stdout, b"3\n")

    def test_rate_limit_and_faults(self):
        try:
            self.cli("rate-limit", "5", "--email", "dave@example.com", "--refill", "0")
            self.assertEqual(api("/apps/myapp/config-vars", token=DAVE)[1]["RateLimit-Remaining"], "4")
        finally:
            mockctl.rate_limit(url(), 4500, token_email="dave@example.com", refill_per_minute=75)
        try:
            self.cli("fault", "status", "--status", "503", "--no-json", "--count", "1", "--path", "releases$")
            self.assertEqual(api("/apps/myapp/releases")[0], 503)
            self.assertEqual(api("/apps/myapp/releases")[0], 200)
            self.cli("fault", "delay", "--seconds", "0.01", "--path", "nothing-matches")
            self.cli("fault", "status", "--status", "429", "--retry-after", "3", "--path", "nothing")
            self.cli("fault", "body", "--body", "[1]", "--content-type", "text/plain", "--path", "x")
            self.cli("fault", "slowdrip", "--interval", "0.1", "--path", "x")
            self.cli("fault", "oversize", "--size", "100", "--path", "x")
            self.cli("fault", "redirect", "--location", "http://127.0.0.1:9/", "--status", "301", "--path", "x")
            self.assertEqual([f["kind"] for f in mockctl.state(url())["faults"]],
                             ["delay", "status", "body", "slowdrip", "oversize", "redirect"])
            self.cli("clear-faults")
            self.assertEqual(mockctl.state(url())["faults"], [])
        finally:
            mockctl.clear_faults(url())

    def assertFailsOneLine(self, r):
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"")
        lines = r.stderr.decode("utf-8", "replace").splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("mockctl: "), lines)

    def test_failures(self):
        self.assertFailsOneLine(self.cli("set-var", "no-such-app", "A", "b", check=False))
        self.assertFailsOneLine(self.cli("set-var", "myapp", "A", check=False))
        self.assertFailsOneLine(self.cli("set-var", "myapp", "A", b"\xff\xfe", check=False))
        self.assertFailsOneLine(self.cli("fault", "explode", check=False))
        self.assertFailsOneLine(self.cli("rate-limit", "many", check=False))
        self.assertFailsOneLine(self.cli("frobnicate", check=False))
        self.assertFailsOneLine(self.cli(check=False))
        self.assertFailsOneLine(self.cli("--url", "http://127.0.0.1:%d" % free_port(), "counts", check=False))

    def test_default_url(self):
        env = dict(os.environ)
        env.pop("HEROKU_MOCK_URL", None)
        code = "import mockctl; print(mockctl.default_url())"
        r = subprocess.run([sys.executable, "-c", code], cwd=HERE, env=env, capture_output=True, text=True)
        self.assertEqual(r.stdout.strip(), "http://127.0.0.1:29380")
        env["HEROKU_MOCK_URL"] = "http://127.0.0.1:1"
        r = subprocess.run([sys.executable, "-c", code], cwd=HERE, env=env, capture_output=True, text=True)
        self.assertEqual(r.stdout.strip(), "http://127.0.0.1:1")


# ------------------------------------------------------- secrets and life

class LogSecrecyTests(MockTest):

    def test_log_holds_no_token_and_no_value(self):
        # Traffic of every kind, so the log has lines for each.
        api("/apps/myapp/config-vars")
        api("/apps/myapp/config-vars", authorization=basic("alice@example.com", ALICE))
        api("/apps/myapp/config-vars", authorization=basic("", BOB))
        api("/apps/myapp/config-vars", token=CAROL)
        api("/apps/myapp/config-vars", token="HRKU-unknown-S3cretToken")
        api("/apps/myapp/releases/1/config-vars", token=DAVE2)
        new_app("log-app", {"DATABASE_URL": "postgres://l:S3cretLogOne@h/d"})
        set_var("log-app", "DATABASE_URL", "postgres://l:S3cretLogTwo@h/d")
        api("/apps/log-app/config-vars")
        mockctl.clear_faults(url())
        mockctl.fault(url(), "status", status=500, count=1)
        api("/apps/myapp/config-vars")
        time.sleep(0.1)
        texts = []
        for path in (ENV["logfile"], ENV["outfile"]):
            with open(path, encoding="utf-8") as f:
                texts.append(f.read())
        log = "\n".join(texts)
        self.assertIn("GET /apps/myapp/config-vars 200 bearer", log)
        self.assertIn("GET /apps/myapp/config-vars 200 basic", log)
        self.assertIn("GET /apps/myapp/config-vars 403 bearer", log)
        secrets = list(TOKENS) + ["HRKU-unknown-S3cretToken", "S3cret"]
        secrets += [basic("alice@example.com", ALICE).split()[1], basic("", BOB).split()[1]]
        secrets += [v for v in SECRET_VALUES if len(v) >= 6 and v.strip()]
        for secret in secrets:
            self.assertNotIn(secret, log)
        self.assertNotIn("Authorization", log)
        # No request so far made a handler fail (the mock logs those).
        self.assertNotIn("internal error", log)


class LifecycleTests(MockTest):

    def test_sigterm_exits_cleanly(self):
        port = free_port()
        proc, pidfile, _, _ = start_mock(ENV["dir"], port)
        with open(pidfile) as f:
            self.assertEqual(int(f.read()), proc.pid)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(10), 0)
        self.assertFalse(os.path.exists(pidfile))

    def test_sigint_while_a_request_hangs(self):
        port = free_port()
        proc, pidfile, _, _ = start_mock(ENV["dir"], port)
        mockctl.fault("http://127.0.0.1:%d" % port, "hang")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(raw_get("/apps/myapp/config-vars"))
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            self.assertEqual(proc.wait(10), 0)
        self.assertFalse(os.path.exists(pidfile))

    def run_mock(self, *args, env=None):
        return subprocess.run([sys.executable, MOCK] + list(args), capture_output=True,
                              text=True, timeout=20, env=env)

    def test_webhook_settings_from_the_environment(self):
        port = free_port()
        env = dict(os.environ, HEROKU_MOCK_WEBHOOK_BACKOFF="0.25", HEROKU_MOCK_WEBHOOK_ATTEMPTS="7",
                   HEROKU_MOCK_WEBHOOK_TIMEOUT="3")
        proc, _, _, _ = start_mock(ENV["dir"], port, env=env)
        try:
            self.assertEqual(mockctl.webhook_settings("http://127.0.0.1:%d" % port),
                             {"backoff": 0.25, "max_attempts": 7, "timeout": 3.0})
        finally:
            proc.terminate()
            proc.wait(10)
        tokens = os.path.join(ENV["dir"], "tokens.json")
        for var, value, message in (("HEROKU_MOCK_WEBHOOK_ATTEMPTS", "many", "not a number"),
                                    ("HEROKU_MOCK_WEBHOOK_ATTEMPTS", "0", "max_attempts must be"),
                                    ("HEROKU_MOCK_WEBHOOK_BACKOFF", "nan", "backoff must be")):
            r = self.run_mock("--port", str(free_port()), "--tokens-file", tokens,
                              env=dict(os.environ, **{var: value}))
            self.assertEqual(r.returncode, 2)
            self.assertIn("%s: %s" % (var, message), r.stderr)
        r = self.run_mock("--port", str(free_port()), "--tokens-file", tokens,
                          "--webhook-ca", os.path.join(ENV["dir"], "no-such-ca.crt"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot start", r.stderr)

    def test_refuses_a_non_loopback_host(self):
        r = self.run_mock("--host", "0.0.0.0", "--port", str(free_port()),
                          "--tokens-file", os.path.join(ENV["dir"], "tokens.json"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("loopback", r.stderr)

    def test_tls_port_needs_cert_and_key(self):
        r = self.run_mock("--port", str(free_port()), "--tls-port", str(free_port()),
                          "--tokens-file", os.path.join(ENV["dir"], "tokens.json"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("--tls-cert", r.stderr)

    def test_bad_tokens_file_does_not_show_the_token(self):
        path = os.path.join(ENV["dir"], "bad-tokens.json")
        write_json(path, {"HRKU-S3cretBadEntry": {"email": "x@example.com", "scope": "admin"}})
        r = self.run_mock("--port", str(free_port()), "--tokens-file", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("entry 1", r.stderr)
        self.assertNotIn("S3cret", r.stderr)


if __name__ == "__main__":
    unittest.main()
