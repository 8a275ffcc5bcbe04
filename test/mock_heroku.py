#!/usr/bin/python3
"""Local mock of the Heroku Platform API v3, for the heroku_resolver tests.

No machine of the project reaches the real API, so the tests point the
extension at this server.  It serves the endpoints the resolver uses
(config vars, releases, add-on attachments, rate limits, the apps list,
app webhooks) with the real API's headers, errors, authentication, rate
limiting, paging and conditional requests, as described in
shared/HEROKU_API.md.  Where that description leaves a point open the mock
is stricter than the real service, never looser.

Every config var change is a release of its app: it moves the app's
released_at in GET /apps and sends an api:release event, from a background
thread, to each webhook subscribed to it (signed with the webhook's
secret; sync webhooks are retried with back-off).

Control endpoints under /__mock/ (no auth, never counted as API requests)
let tests change apps and config vars, read request counts and rates,
drain rate limits, inject network faults (delays, hangs, drops,
truncation, ...), subscribe webhooks and read every delivery attempt.

Usage:
    mock_heroku.py --port 29380 [--host 127.0.0.1]
        [--tls-port 29381 --tls-cert FILE --tls-key FILE]
        --tokens-file FILE [--data FILE] [--pidfile FILE] [--log FILE]
        [--webhook-ca FILE]

Webhook delivery settings from the environment (also settable through
POST /__mock/webhook-settings): HEROKU_MOCK_WEBHOOK_BACKOFF (seconds before
the first retry of a sync webhook, doubled for each next one; default 1),
HEROKU_MOCK_WEBHOOK_ATTEMPTS (attempts at most; default 5),
HEROKU_MOCK_WEBHOOK_TIMEOUT (seconds per attempt; default 10).

tokens file: {"<token>": {"email": "a@b.c", "scope": "global"}}, scope one of
global, read-protected, read.
data file:   {"apps": {"myapp": {"id": "<uuid>", "config_vars": {...}}}}

Nothing secret is printed or logged: no token, no Authorization header, no
config var value, no webhook secret or URL.  Python 3 standard library only.
"""

import argparse
import base64
import binascii
import collections
import email.utils
import hashlib
import hmac
import http
import http.client
import ipaddress
import json
import math
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

API_MEDIA_TYPE = "application/vnd.heroku+json"
JSON_TYPE = "application/json; charset=utf-8"
ERROR_DOC_URL = "https://devcenter.heroku.com/articles/platform-api-reference#clients"
SERVER_NAME = "heroku-mock"

APP_NAME_RE = re.compile(r"[a-z][a-z0-9-]{1,28}[a-z0-9]")
# Heroku ids are lowercase canonical UUIDs; anything else is not an id.
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VAR_NAME_RE = re.compile(r"\w+", re.ASCII)
PG_COLOR_VAR_RE = re.compile(r"HEROKU_POSTGRESQL_([A-Z]+)_URL")
VERSION_RE = re.compile(r"[1-9][0-9]{0,8}")

SCOPES = ("global", "read-protected", "read")
CONFIG_SCOPES = ("global", "read-protected")

POOL_SIZE = 4500
REFILL_PER_MINUTE = 75.0
DEFAULT_PAGE = 200
MAX_PAGE = 1000
LOG_KEEP = 500
MAX_REQUEST_BODY = 16 * 1024 * 1024
IDLE_TIMEOUT = 60          # seconds a kept-alive connection may sit idle
HANG_LIMIT = 600           # seconds a "hang" fault holds a request at most
DEFAULT_OVERSIZE = 10 * 1024 * 1024
PLAN_NAME = "heroku-postgresql:essential-0"
STACK = "heroku-24"
REGION = "us"
# Fixed namespace so that derived ids (add-ons, releases) are stable across runs.
ID_NAMESPACE = uuid.UUID("6f1c1e0a-3d2b-4c9e-9a51-5e0d7c4b2f10")
ADDON_WORDS = ("amorphous", "angular", "clear", "concave", "convex", "cubed",
               "curly", "deep", "elliptical", "fluffy", "opaque", "rigid",
               "round", "shallow", "solid", "spherical", "symmetrical",
               "transparent", "triangular", "vertical")

# Error ids the real API uses for each status (HEROKU_API.md, "Errors"),
# and 422 invalid_params, its answer to bad parameters of a change.
ERROR_IDS = {400: "bad_request", 401: "unauthorized", 402: "delinquent",
             403: "forbidden", 404: "not_found", 406: "not_acceptable",
             422: "invalid_params", 429: "rate_limit", 500: "internal_server_error",
             503: "service_unavailable"}
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


class Clock:
    """The mock's clock: the system's, or frozen by a test (POST /__mock/clock).

    Every stamp and every Date header comes from it, so a test can make
    two releases within one second around a listing, as can happen with
    the real API, whose timestamps have whole seconds.
    """

    lock = threading.Lock()
    frozen = None   # microseconds, or None: the system clock

    @classmethod
    def set(cls, spec):
        if not isinstance(spec, dict) or set(spec) != {"frozen"} or not isinstance(spec["frozen"], bool):
            raise ControlError('body: {"frozen": true|false}')
        with cls.lock:
            cls.frozen = time.time_ns() // 1000 if spec["frozen"] else None
            return {"frozen": cls.frozen is not None, "now": iso_time(cls.now())}

    @classmethod
    def now(cls):
        frozen = cls.frozen
        return time.time_ns() // 1000 if frozen is None else frozen


def now_micros():
    """Current time in whole microseconds since the epoch (the mock's clock)."""
    return Clock.now()


def iso_time(micros, precise=False):
    """A stamp in the API's timestamp format, UTC.

    The API's timestamps have whole seconds, released_at and updated_at
    included: two releases within one second have the same released_at.
    precise adds the microseconds, for the control interface's own records.
    """
    seconds, fraction = divmod(micros, 1000000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return text + (".%06dZ" % fraction if precise else "Z")


def now_iso():
    """Current UTC time in the API's timestamp format."""
    return iso_time(now_micros())


def reason(status):
    """Reason phrase for a status line."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def to_json(obj):
    """Serialise as the API does: UTF-8, non-ASCII left unescaped."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def etag_of(body):
    """Strong, quoted entity tag derived from the body."""
    return '"%s"' % hashlib.sha256(body).hexdigest()[:32]


def derived_id(*parts):
    """A stable UUID for an object the mock derives rather than stores."""
    return str(uuid.uuid5(ID_NAMESPACE, ":".join(parts)))


class ControlError(Exception):
    """A refused control request or bad input file; message is safe to show."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status
        self.message = message


class ApiError(Exception):
    """An API error answer: status, Heroku error id, message, extra headers."""

    def __init__(self, status, error_id, message, headers=()):
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message
        self.headers = list(headers)


# ---------------------------------------------------------------- validation

def check_app_name(name):
    if not isinstance(name, str) or not APP_NAME_RE.fullmatch(name):
        raise ControlError("invalid app name (must match ^[a-z][a-z0-9-]{1,28}[a-z0-9]$)")


def check_config_vars(config_vars):
    """Config vars as the API holds them: \\w+ names, string or null values."""
    if not isinstance(config_vars, dict):
        raise ControlError("config vars must be a JSON object")
    for name, value in config_vars.items():
        if not VAR_NAME_RE.fullmatch(name):
            raise ControlError("invalid config var name %r" % name)
        if value is not None and not isinstance(value, str):
            # The name is safe to show, the value is not.
            raise ControlError("config var %s: value must be a string or null" % name)


def check_header_text(value, what):
    """A string that goes into a response header verbatim."""
    if not isinstance(value, str) or re.search(r"[\x00-\x1f\x7f]", value):
        raise ControlError("%s must be a string without control characters" % what)
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ControlError("%s must be Latin-1 text" % what) from None


def number(spec, key, default, low, high, integer=False):
    """Read an optional numeric fault/control parameter within bounds."""
    value = spec.get(key, default)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise ControlError("%s must be a%s number in [%s, %s]"
                           % (key, "n integer" if integer else "", low, high))
    return value


# Parameters each fault kind accepts besides kind, path and count; unknown
# ones are refused so that a typo does not silently do nothing.
FAULT_PARAMS = {
    "delay": {"seconds"},
    "hang": set(),
    "status": {"status", "id", "message", "json", "retry_after"},
    "body": {"body", "status", "content_type"},
    "oversize": {"size"},
    "drop": set(),
    "truncate": set(),
    "slowdrip": {"interval"},
    "http10": set(),
    "redirect": {"location", "status"},
}


def parse_fault(spec):
    """Validate one fault object and return it normalised."""
    if not isinstance(spec, dict) or spec.get("kind") not in FAULT_PARAMS:
        raise ControlError("a fault is an object whose kind is one of: "
                           + ", ".join(sorted(FAULT_PARAMS)))
    kind = spec["kind"]
    unknown = set(spec) - {"kind", "path", "count"} - FAULT_PARAMS[kind]
    if unknown:
        raise ControlError("fault %s does not take: %s" % (kind, ", ".join(sorted(unknown))))
    fault = {"kind": kind, "path": None, "count": None}
    if spec.get("path") is not None:
        if not isinstance(spec["path"], str):
            raise ControlError("path must be a regular expression string")
        try:
            fault["path"] = re.compile(spec["path"])
        except re.error as exc:
            raise ControlError("bad path regular expression: %s" % exc) from None
    if spec.get("count") is not None:
        fault["count"] = number(spec, "count", None, 1, 10**9, integer=True)

    if kind == "delay":
        if "seconds" not in spec:
            raise ControlError("fault delay needs seconds")
        fault["seconds"] = number(spec, "seconds", None, 0, HANG_LIMIT)
    elif kind == "status":
        if "status" not in spec:
            raise ControlError("fault status needs status")
        status = fault["status"] = number(spec, "status", None, 400, 599, integer=True)
        default_id = ERROR_IDS.get(status, "bad_request" if status < 500 else "internal_server_error")
        fault["id"] = spec.get("id", default_id)
        fault["message"] = spec.get("message", reason(status) + ".")
        if not isinstance(fault["id"], str) or not isinstance(fault["message"], str):
            raise ControlError("id and message must be strings")
        fault["json"] = spec.get("json", True)
        if not isinstance(fault["json"], bool):
            raise ControlError("json must be true or false")
        fault["retry_after"] = (number(spec, "retry_after", None, 0, 86400, integer=True)
                                if spec.get("retry_after") is not None else None)
    elif kind == "body":
        if not isinstance(spec.get("body"), str):
            raise ControlError("fault body needs body (a string)")
        fault["body"] = spec["body"].encode("utf-8")
        status = fault["status"] = number(spec, "status", 200, 200, 599, integer=True)
        if status in (204, 205, 304):
            raise ControlError("status %d cannot carry a body" % status)
        fault["content_type"] = spec.get("content_type", JSON_TYPE)
        check_header_text(fault["content_type"], "content_type")
    elif kind == "oversize":
        fault["size"] = number(spec, "size", DEFAULT_OVERSIZE, 16, 1 << 30, integer=True)
    elif kind == "slowdrip":
        fault["interval"] = number(spec, "interval", 0.5, 0, 10)
    elif kind == "redirect":
        if "location" not in spec:
            raise ControlError("fault redirect needs location")
        check_header_text(spec["location"], "location")
        fault["location"] = spec["location"]
        fault["status"] = spec.get("status", 302)
        if fault["status"] not in REDIRECT_STATUSES:
            raise ControlError("redirect status must be one of %s" % (REDIRECT_STATUSES,))
    return fault


# What app webhooks may subscribe to (the entities of the real API); the
# mock only ever sends api:release events.
WEBHOOK_ENTITIES = ("api:addon", "api:addon-attachment", "api:app", "api:build",
                    "api:collaborator", "api:domain", "api:dyno", "api:formation",
                    "api:release", "api:sni-endpoint", "dyno")
WEBHOOK_LEVELS = ("notify", "sync")


def parse_webhook(spec):
    """Validate a webhook subscription (API or control body); returns it normalised.

    Stricter than the real API where unsure: unknown parameters, URLs with
    user info and empty secrets are refused.
    """
    if not isinstance(spec, dict):
        raise ControlError("body must be a JSON object")
    unknown = set(spec) - {"include", "level", "url", "secret", "authorization"}
    if unknown:
        raise ControlError("unknown parameters: %s" % ", ".join(sorted(unknown)))
    include = spec.get("include")
    if (not isinstance(include, list) or not include
            or not all(isinstance(e, str) and e in WEBHOOK_ENTITIES for e in include)):
        raise ControlError("include must be a non-empty list of: " + ", ".join(WEBHOOK_ENTITIES))
    if spec.get("level") not in WEBHOOK_LEVELS:
        raise ControlError("level must be one of: " + ", ".join(WEBHOOK_LEVELS))
    url = spec.get("url")
    if not isinstance(url, str) or re.search(r"[\s\x00-\x1f\x7f]", url) or not url.isascii():
        raise ControlError("url must be an ASCII string without spaces or control characters")
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        raise ControlError("url has a bad port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ControlError("url must be http:// or https:// with a host and no user info")
    hook = {"include": list(dict.fromkeys(include)), "level": spec["level"], "url": url}
    for key in ("secret", "authorization"):
        value = spec.get(key)
        if value is not None:
            check_header_text(value, key)
            if not value:
                raise ControlError("%s must not be empty (leave it out or null)" % key)
        hook[key] = value
    return hook


# Delivery of webhook notifications: seconds before the first retry of a
# sync webhook (doubled for each next one), attempts at most, seconds one
# attempt may take.  Each can be set from the environment at start and by
# the control interface later; tests make them small.
WEBHOOK_DEFAULTS = {"backoff": 1.0, "max_attempts": 5, "timeout": 10.0}
WEBHOOK_ENV = {"backoff": "HEROKU_MOCK_WEBHOOK_BACKOFF",
               "max_attempts": "HEROKU_MOCK_WEBHOOK_ATTEMPTS",
               "timeout": "HEROKU_MOCK_WEBHOOK_TIMEOUT"}
MAX_BACKOFF = 3600


def parse_webhook_settings(spec, base):
    """base with the settings spec gives, each checked."""
    if not isinstance(spec, dict) or set(spec) - set(WEBHOOK_DEFAULTS):
        raise ControlError("body: {[backoff], [max_attempts], [timeout]}")
    settings = dict(base)
    if "backoff" in spec:
        settings["backoff"] = number(spec, "backoff", None, 0, MAX_BACKOFF)
    if "max_attempts" in spec:
        settings["max_attempts"] = number(spec, "max_attempts", None, 1, 100, integer=True)
    if "timeout" in spec:
        settings["timeout"] = number(spec, "timeout", None, 0.01, HANG_LIMIT)
    return settings


def webhook_settings_from_env(environ):
    """The delivery settings, WEBHOOK_DEFAULTS overridden by HEROKU_MOCK_WEBHOOK_*."""
    settings = dict(WEBHOOK_DEFAULTS)
    for key, var in WEBHOOK_ENV.items():
        text = environ.get(var)
        if not text:
            continue
        try:
            value = int(text) if key == "max_attempts" else float(text)
            settings = parse_webhook_settings({key: value}, settings)
        except (ValueError, ControlError) as exc:
            detail = exc.message if isinstance(exc, ControlError) else "not a number"
            raise ControlError("%s: %s" % (var, detail)) from None
    return settings


def load_tokens(path):
    """Read the tokens file; errors never quote a token."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as exc:
        raise ControlError("cannot read tokens file %s: %s" % (path, type(exc).__name__)) from None
    if not isinstance(raw, dict) or not raw:
        raise ControlError("tokens file must hold a non-empty JSON object")
    tokens = {}
    for n, (token, info) in enumerate(raw.items(), 1):
        if not token or re.search(r"[\s\x00-\x1f\x7f:]", token) or not token.isascii():
            raise ControlError("tokens file: entry %d has an unusable token" % n)
        if (not isinstance(info, dict) or not isinstance(info.get("email"), str)
                or info.get("scope") not in SCOPES):
            raise ControlError("tokens file: entry %d needs an email and a scope in %s"
                               % (n, ", ".join(SCOPES)))
        tokens[token] = {"email": info["email"], "scope": info["scope"]}
    return tokens


def load_data(path):
    """Read the initial apps file as {name: (id or None, config_vars)}."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as exc:
        raise ControlError("cannot read data file %s: %s" % (path, type(exc).__name__)) from None
    apps = raw.get("apps", {}) if isinstance(raw, dict) else None
    if not isinstance(apps, dict) or not all(isinstance(a, dict) for a in apps.values()):
        raise ControlError('data file must look like {"apps": {"name": {...}}}')
    return {name: (app.get("id"), app.get("config_vars", {})) for name, app in apps.items()}


# --------------------------------------------------------------------- state

class Pool:
    """One account's rate-limit pool, refilled continuously."""

    def __init__(self):
        self.remaining = float(POOL_SIZE)
        self.per_minute = REFILL_PER_MINUTE
        self.stamp = time.monotonic()

    def refill(self):
        now = time.monotonic()
        self.remaining = min(float(POOL_SIZE),
                             self.remaining + (now - self.stamp) * self.per_minute / 60.0)
        self.stamp = now

    def retry_after(self):
        """Whole seconds until one request token is back."""
        if self.per_minute <= 0:
            return 60
        return max(1, math.ceil((1.0 - self.remaining) * 60.0 / self.per_minute))


class State:
    """Everything the mock holds; what can change is only touched under self.lock."""

    def __init__(self, tokens, notifier):
        self.lock = threading.Lock()
        self.tokens = tokens
        # The mock has no app ownership: every token sees every app (as a
        # collaborator would).  The first account of the tokens file stands
        # as the owner of all apps and the actor of every release.
        self.owner = next(iter(tokens.values()))["email"]
        self.notifier = notifier
        # The real API keeps one pool per account, so tokens sharing an
        # email share a pool.
        self.pools = {info["email"]: Pool() for info in tokens.values()}
        self.apps = {}
        self.webhooks = {}
        self.faults = []
        self.total = 0
        self.by_path = collections.Counter()
        self.not_modified = 0
        self.log = collections.deque(maxlen=LOG_KEEP)
        self.since = now_micros()
        self.since_clock = time.monotonic()

    # apps ---------------------------------------------------------------

    @staticmethod
    def _stamp():
        """Now, as the API stamps it: two releases within one second share
        their second, so an app's released_at may not move (a client must
        not take an unchanged released_at for "no release")."""
        return now_micros()

    def _release(self, app, description, config_vars):
        stamp = self._stamp()
        release = {"version": len(app["releases"]) + 1,
                   "description": description,
                   "stamp": stamp,
                   "created_at": iso_time(stamp),
                   "config_vars": config_vars}
        app["releases"].append(release)
        app["updated"] = stamp
        self._announce(app, release)

    def put_app(self, name, app_id, config_vars, released=True):
        """Create an app (release 1) or replace an existing one's config vars.

        released=False creates an app that was never released: no config
        vars, no releases, released_at null; its first change is release 1.
        """
        check_app_name(name)
        check_config_vars(config_vars)
        if app_id is not None and (not isinstance(app_id, str) or not UUID_RE.fullmatch(app_id)):
            raise ControlError("id must be a lowercase UUID")
        if not isinstance(released, bool):
            raise ControlError("released must be true or false")
        if not released and config_vars:
            raise ControlError("an app never released has no config vars")
        with self.lock:
            for other in self.apps.values():
                if other["id"] == app_id and other["name"] != name:
                    raise ControlError("id already used by app %s" % other["name"])
            app = self.apps.get(name)
            if app is not None and app_id in (None, app["id"]):
                if not released:
                    raise ControlError("app %s exists and has been released" % name)
                self._release(app, "Replace config vars", dict(config_vars))
            else:
                # A new id under an old name is a new app: fresh history, and
                # the old app's webhooks go with it.
                if app is not None:
                    self._drop_webhooks(app["id"])
                stamp = self._stamp()
                app = {"name": name, "id": app_id or str(uuid.uuid4()),
                       "created": stamp, "updated": stamp, "releases": []}
                self.apps[name] = app
                if released:
                    self._release(app, "Initial release", dict(config_vars))
            return self._summary(app)

    def patch_vars(self, name, changes):
        """Set (a null sets null) and unset (__unset__) config vars: one release."""
        if not isinstance(changes, dict):
            raise ControlError("body must be a JSON object")
        changes = dict(changes)
        unset = changes.pop("__unset__", [])
        if not isinstance(unset, list) or not all(isinstance(n, str) for n in unset):
            raise ControlError("__unset__ must be a list of names")
        check_config_vars(changes)
        if not changes and not unset:
            raise ControlError("nothing to change")
        with self.lock:
            app = self.apps.get(name)
            if app is None:
                raise ControlError("no app %s" % name, 404)
            config_vars = dict(current_vars(app))
            missing = [n for n in unset if n not in config_vars]
            if missing:
                raise ControlError("cannot unset missing config vars: %s" % ", ".join(missing))
            config_vars.update(changes)
            for n in unset:
                del config_vars[n]
            parts = []
            if changes:
                parts.append("Set %s config vars" % ", ".join(changes))
            if unset:
                parts.append("Remove %s config vars" % ", ".join(unset))
            self._release(app, "; ".join(parts), config_vars)
            return self._summary(app)

    @staticmethod
    def _bulk_prefix(spec, keys):
        if not isinstance(spec, dict) or set(spec) - keys or not isinstance(spec.get("prefix"), str):
            raise ControlError("body: {prefix, count}")
        if not re.fullmatch(r"[a-z][a-z0-9]{1,17}", spec["prefix"]):
            raise ControlError("prefix: 2 to 18 lowercase letters and digits")
        return spec["prefix"]

    def bulk_apps(self, spec):
        """Create count released apps PREFIX-00001... of the team PREFIX-team
        (or spec's team): a large account, cheaply (no config vars, no
        webhook events)."""
        prefix = self._bulk_prefix(spec, {"prefix", "count", "team"})
        count = number(spec, "count", None, 1, 100000, integer=True)
        team = spec.get("team", prefix + "-team")
        if not isinstance(team, str) or not APP_NAME_RE.fullmatch(team):
            raise ControlError("team: a name like an app's")
        with self.lock:
            for i in range(1, count + 1):
                name = "%s-%05d" % (prefix, i)
                if name in self.apps:
                    continue
                stamp = self._stamp()
                app = {"name": name, "id": str(uuid.uuid4()), "created": stamp,
                       "updated": stamp, "releases": [], "team": team}
                app["releases"].append({"version": 1, "description": "Initial release",
                                        "stamp": stamp, "created_at": iso_time(stamp),
                                        "config_vars": {}})
                self.apps[name] = app
        return count

    def delete_bulk_apps(self, spec):
        prefix = self._bulk_prefix(spec, {"prefix"})
        with self.lock:
            names = [n for n in self.apps if re.fullmatch(re.escape(prefix) + r"-[0-9]{5}", n)]
            for name in names:
                self._drop_webhooks(self.apps.pop(name)["id"])
        return len(names)

    def delete_app(self, name):
        with self.lock:
            app = self.apps.pop(name, None)
            if app is None:
                raise ControlError("no app %s" % name, 404)
            self._drop_webhooks(app["id"])

    def _find(self, ident):
        """An app by name or id (the lock held), or None."""
        if UUID_RE.fullmatch(ident):
            return next((a for a in self.apps.values() if a["id"] == ident), None)
        if APP_NAME_RE.fullmatch(ident):
            return self.apps.get(ident)
        return None

    def find_app(self, ident):
        """An app by name or id, as an immutable snapshot, or None."""
        with self.lock:
            app = self._find(ident)
            if app is None:
                return None
            # Release dicts are never changed once made, so a list copy is a snapshot.
            return dict(app, releases=list(app["releases"]))

    def app_list(self):
        """Every app as GET /apps shows it."""
        with self.lock:
            return [app_object(app, self.owner) for app in self.apps.values()]

    @staticmethod
    def _summary(app):
        """What the control API may show of an app: no config var values."""
        releases = app["releases"]
        return {"name": app["name"], "id": app["id"],
                "config_var_names": sorted(current_vars(app)),
                "current_release": releases[-1]["version"] if releases else None,
                "releases": [r["version"] for r in releases],
                "released_at": iso_time(releases[-1]["stamp"]) if releases else None}

    # webhooks -----------------------------------------------------------

    def add_webhook(self, ident, spec):
        """Subscribe a URL to an app's events; returns the webhook as the API shows it."""
        hook = parse_webhook(spec)
        with self.lock:
            app = self._find(ident)
            if app is None:
                raise ControlError("no app %s" % ident, 404)
            if any(h["app_id"] == app["id"] and h["url"] == hook["url"]
                   for h in self.webhooks.values()):
                raise ControlError("url: this app already has a webhook for that URL")
            hook.update(id=str(uuid.uuid4()), app_id=app["id"], created_at=now_iso())
            self.webhooks[hook["id"]] = hook
            return webhook_object(hook, app)

    def _webhook(self, ident, hook_id):
        """The lock held: (webhook, app) or ControlError 404."""
        app = self._find(ident)
        hook = self.webhooks.get(hook_id)
        if app is None or hook is None or hook["app_id"] != app["id"]:
            raise ControlError("Couldn't find that webhook.", 404)
        return hook, app

    def get_webhook(self, ident, hook_id):
        with self.lock:
            return webhook_object(*self._webhook(ident, hook_id))

    def remove_webhook(self, ident, hook_id):
        """Unsubscribe; deliveries of it still waiting for a retry are skipped."""
        with self.lock:
            hook, app = self._webhook(ident, hook_id)
            del self.webhooks[hook_id]
            self.notifier.cancel(hook_id)
            return webhook_object(hook, app)

    def list_webhooks(self, ident=None):
        """The webhooks of one app, or of all apps (ident None)."""
        with self.lock:
            apps = {a["id"]: a for a in self.apps.values()}
            app = self._find(ident) if ident is not None else None
            if ident is not None and app is None:
                raise ControlError("no app %s" % ident, 404)
            return [webhook_object(h, apps[h["app_id"]]) for h in self.webhooks.values()
                    if app is None or h["app_id"] == app["id"]]

    def _drop_webhooks(self, app_id):
        """An app is gone: so are its webhooks (the lock held)."""
        for hook_id in [i for i, h in self.webhooks.items() if h["app_id"] == app_id]:
            del self.webhooks[hook_id]
            self.notifier.cancel(hook_id)

    def _announce(self, app, release):
        """Send an api:release create event to each webhook of the app that wants it."""
        hooks = [dict(h) for h in self.webhooks.values()
                 if h["app_id"] == app["id"] and "api:release" in h["include"]]
        if not hooks:
            return
        event = {"id": str(uuid.uuid4()), "action": "create",
                 "actor": account(self.owner),
                 "created_at": release["created_at"],
                 "data": release_object(app, release, self.owner),
                 "previous_data": {},
                 # null until Heroku has published it, as in its examples
                 "published_at": None,
                 "resource": "release",
                 # null, as in Heroku's documented examples: a receiver
                 # must not count on events numbered in order.
                 "sequence": None,
                 "updated_at": release["created_at"],
                 "version": "%s; version=3" % API_MEDIA_TYPE}
        self.notifier.publish(event, "api:release", hooks)

    def summary(self):
        with self.lock:
            return {
                "apps": {name: self._summary(app) for name, app in sorted(self.apps.items())},
                "rate_limits": {email: self._peek(email) for email in sorted(self.pools)},
                "faults": [{"kind": f["kind"],
                            "path": f["path"].pattern if f["path"] else None,
                            "count": f["count"]} for f in self.faults],
            }

    # rate limits --------------------------------------------------------

    def _peek(self, email):
        pool = self.pools[email]
        pool.refill()
        return int(pool.remaining)

    def peek(self, email):
        with self.lock:
            return self._peek(email)

    def take(self, email):
        """Take one request token: (taken, remaining, retry_after)."""
        with self.lock:
            pool = self.pools[email]
            pool.refill()
            if pool.remaining < 1.0:
                return False, 0, pool.retry_after()
            pool.remaining -= 1.0
            return True, int(pool.remaining), None

    def set_rate(self, spec):
        if not isinstance(spec, dict) or set(spec) - {"remaining", "token_email", "refill_per_minute"}:
            raise ControlError("body: {remaining, [token_email], [refill_per_minute]}")
        remaining = number(spec, "remaining", None, 0, POOL_SIZE, integer=True)
        per_minute = (number(spec, "refill_per_minute", None, 0, 10**6)
                      if "refill_per_minute" in spec else None)
        with self.lock:
            emails = list(self.pools)
            if spec.get("token_email") is not None:
                if spec["token_email"] not in self.pools:
                    raise ControlError("no token for that email", 404)
                emails = [spec["token_email"]]
            for email_ in emails:
                pool = self.pools[email_]
                pool.remaining = float(remaining)
                pool.stamp = time.monotonic()
                if per_minute is not None:
                    pool.per_minute = float(per_minute)

    # faults -------------------------------------------------------------

    def add_faults(self, specs):
        faults = [parse_fault(s) for s in (specs if isinstance(specs, list) else [specs])]
        with self.lock:
            self.faults.extend(faults)

    def clear_faults(self):
        with self.lock:
            self.faults.clear()

    def pick_fault(self, path):
        """The first fault matching path, its use counted; None if none."""
        with self.lock:
            for fault in self.faults:
                if fault["path"] is None or fault["path"].search(path):
                    if fault["count"] is not None:
                        fault["count"] -= 1
                        if fault["count"] == 0:
                            self.faults.remove(fault)
                    return fault
            return None

    # request accounting -------------------------------------------------

    def record(self, entry):
        with self.lock:
            self.total += 1
            self.by_path["%s %s" % (entry["method"], entry["path"])] += 1
            if entry["status"] == 304:
                self.not_modified += 1
            self.log.append(entry)

    def counts(self):
        with self.lock:
            return {"total": self.total, "by_path": dict(self.by_path),
                    "not_modified": self.not_modified, "log": list(self.log)}

    def stats(self):
        """Counts since the last reset with the time they took, for rates per hour."""
        with self.lock:
            seconds = round(max(time.monotonic() - self.since_clock, 1e-6), 6)
            answer = {"since": iso_time(self.since, precise=True),
                      "seconds": seconds,
                      "api_requests": self.total,
                      "api_requests_per_hour": round(self.total * 3600.0 / seconds, 1),
                      "by_path": dict(self.by_path),
                      "not_modified": self.not_modified}
        answer["webhooks"] = self.notifier.counts()
        return answer

    def reset_counts(self):
        with self.lock:
            self.total = 0
            self.by_path.clear()
            self.not_modified = 0
            self.log.clear()
            self.since = now_micros()
            self.since_clock = time.monotonic()
        self.notifier.reset_counts()


class LogFile:
    """One line per event, to a file or stderr; callers pass no secrets."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.stream = open(path, "a", encoding="utf-8", buffering=1) if path else sys.stderr

    def write(self, text):
        with self.lock:
            self.stream.write("%s %s\n" % (now_iso(), text))
            self.stream.flush()


# ----------------------------------------------------------------- webhooks

class Notifier:
    """Delivers webhook notifications and keeps a record of every attempt.

    Each delivery (one event to one webhook) runs in a thread of its own, so
    the API answer that made the release never waits for it and a slow or
    silent receiver delays no other delivery.
    """

    def __init__(self, settings, log, ssl_context):
        self.lock = threading.Lock()
        self.settings = dict(settings)
        self.log = log
        self.ssl_context = ssl_context
        # Delivery records, oldest first; attempts are added under the lock.
        self.deliveries = collections.deque(maxlen=LOG_KEEP)
        self.cancelled = set()
        self.counters = collections.Counter()

    def get_settings(self):
        with self.lock:
            return dict(self.settings)

    def set_settings(self, spec):
        with self.lock:
            self.settings = parse_webhook_settings(spec, self.settings)
            return dict(self.settings)

    def publish(self, event, include, hooks):
        """Start one delivery of event per webhook."""
        for hook in hooks:
            delivery = {"id": str(uuid.uuid4()), "event_id": event["id"], "include": include,
                        "resource": event["resource"], "action": event["action"],
                        "version": event["data"].get("version"),
                        "app": event["data"]["app"],
                        "webhook_id": hook["id"], "level": hook["level"], "url": hook["url"],
                        "status": "pending", "created_at": iso_time(now_micros(), precise=True),
                        "num_attempts": 0, "next_attempt_at": None, "attempts": []}
            with self.lock:
                self.deliveries.append(delivery)
                self.counters["deliveries"] += 1
            threading.Thread(target=self.deliver, args=(delivery, hook, event),
                             daemon=True).start()

    def deliver(self, delivery, hook, event):
        """Attempt delivery: once for notify; for sync until a 2xx, the limit or removal."""
        while True:
            attempt = {"id": str(uuid.uuid4()), "created_at": iso_time(now_micros(), precise=True)}
            body = to_json(dict(event, webhook_metadata={
                "attempt": {"id": attempt["id"]},
                "delivery": {"id": delivery["id"]},
                "event": {"id": event["id"], "include": delivery["include"]},
                "webhook": {"id": hook["id"]}}))
            code, error = post_json(hook["url"], body, webhook_headers(hook, body),
                                    self.get_settings()["timeout"], self.ssl_context)
            ok = code is not None and 200 <= code < 300
            with self.lock:
                attempt.update(code=code, error_class=error,
                               status="succeeded" if ok else "failed")
                delivery["attempts"].append(attempt)
                delivery["num_attempts"] += 1
                self.counters["attempts"] += 1
                n = delivery["num_attempts"]
                if ok or hook["level"] == "notify" or n >= self.settings["max_attempts"]:
                    wait = None
                    delivery["status"] = "succeeded" if ok else "failed"
                else:
                    wait = min(self.settings["backoff"] * 2 ** (n - 1), MAX_BACKOFF)
                    delivery["status"] = "retrying"
                    delivery["next_attempt_at"] = iso_time(now_micros() + int(wait * 1e6),
                                                           precise=True)
            # Neither the URL (it may hold a token) nor any header is logged.
            self.log.write("webhook %s delivery %s attempt %d: %s" % (
                hook["id"], delivery["id"], n, code if code is not None else error))
            if wait is None:
                return self.finish(delivery)
            time.sleep(wait)
            with self.lock:
                skipped = hook["id"] in self.cancelled
                if skipped:
                    delivery["status"] = "skipped"
            if skipped:
                return self.finish(delivery)

    def finish(self, delivery):
        with self.lock:
            delivery["next_attempt_at"] = None
            self.counters[delivery["status"]] += 1

    def cancel(self, hook_id):
        """The webhook was removed: its pending retries are skipped."""
        with self.lock:
            self.cancelled.add(hook_id)

    def list_deliveries(self):
        with self.lock:
            return [dict(d, attempts=[dict(a) for a in d["attempts"]]) for d in self.deliveries]

    def clear_deliveries(self):
        with self.lock:
            self.deliveries.clear()

    def counts(self):
        with self.lock:
            return {key: self.counters[key] for key in
                    ("deliveries", "attempts", "succeeded", "failed", "skipped")}

    def reset_counts(self):
        with self.lock:
            self.counters.clear()


def webhook_headers(hook, body):
    """The headers of one notification.

    Only what Heroku documents: the signature (base64 HMAC-SHA256 of the raw
    body under the secret) and the Authorization value, if set.  Receivers
    should take ids from the body's webhook_metadata, so no delivery-id
    headers are made up.
    """
    headers = {"Content-Type": "application/json", "User-Agent": SERVER_NAME + "-webhooks"}
    if hook["secret"] is not None:
        digest = hmac.new(hook["secret"].encode("utf-8"), body, hashlib.sha256).digest()
        headers["Heroku-Webhook-Hmac-SHA256"] = base64.b64encode(digest).decode("ascii")
    if hook["authorization"] is not None:
        headers["Authorization"] = hook["authorization"]
    return headers


def post_json(url, body, headers, timeout, ssl_context):
    """POST body to url: (status, None), or (None, error class) when no answer came.

    No redirect is followed: a 3xx is a failed attempt, as any non-2xx.
    """
    parts = urlsplit(url)
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                           context=ssl_context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    try:
        conn.request("POST", target, body=body, headers=headers)
        with conn.getresponse() as resp:
            return resp.status, None
    except (OSError, http.client.HTTPException) as exc:
        return None, type(exc).__name__
    finally:
        conn.close()


# -------------------------------------------------------------- API helpers

def accepts_v3(values):
    """True if some Accept media range is the Heroku v3 type (spacing free)."""
    for value in values:
        for media in value.split(","):
            parts = [p.strip() for p in media.split(";")]
            if parts[0].lower() != API_MEDIA_TYPE:
                continue
            params = {}
            for p in parts[1:]:
                key, _, val = p.partition("=")
                params[key.strip().lower()] = val.strip()
            if params.get("version") == "3":
                return True
    return False


RANGE_RE = re.compile(r"\s*([a-z_]+)\s+(\]?)([0-9a-zTZ:.-]*)\.\.([0-9a-zTZ:.-]*)\s*(?:;(.*))?", re.S)
STAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")

# The Range fields each list accepts, the first being its default: each
# with the pattern its bounds must match and their type.
RELEASE_RANGES = {"version": (re.compile(r"[0-9]{1,9}"), int)}
# GET /apps: the schema's "ranges" of the List link (id, name, updated_at)
APP_RANGES = {"id": (UUID_RE, str), "name": (APP_NAME_RE, str), "updated_at": (STAMP_RE, str)}
WEBHOOK_RANGES = {"id": (UUID_RE, str)}


def parse_range(value, fields):
    """Parse 'FIELD [\\]]START..[END][; order=asc|desc, max=N]' (None: no Range).

    Returns (field, start, start_exclusive, end, order, max).  Ranges with
    only an end bound are refused, as the real API stopped supporting them.
    A malformed header answers 400 bad_request: the error ids the real API
    is known to use (shared/HEROKU_API.md) have nothing closer, and it is
    what a client gets for any other malformed request.
    """
    if value is None:
        return next(iter(fields)), None, False, None, "asc", DEFAULT_PAGE
    m = RANGE_RE.fullmatch(value)
    if not m or m.group(1) not in fields or (m.group(4) and not m.group(3)):
        raise ApiError(400, "bad_request", "Invalid Range header (this list accepts %s ranges)."
                       % " or ".join("'%s'" % f for f in fields))
    field = m.group(1)
    pattern, kind = fields[field]
    bounds = [m.group(3) or None, m.group(4) or None]
    if any(b is not None and not pattern.fullmatch(b) for b in bounds):
        raise ApiError(400, "bad_request", "Invalid Range header: a bound is no valid %s." % field)
    order, size = "asc", DEFAULT_PAGE
    for param in re.split(r"[;,]", m.group(5) or ""):
        if not param.strip():
            continue
        key, _, val = (s.strip() for s in param.partition("="))
        if key == "order" and val in ("asc", "desc"):
            order = val
        elif key == "max" and val.isdigit() and int(val) > 0:
            size = min(int(val), MAX_PAGE)
        else:
            raise ApiError(400, "bad_request", "Invalid Range header parameter.")
    start, end = (None if b is None else kind(b) for b in bounds)
    return field, start, bool(m.group(2)), end, order, size


def paginate(items, value, fields):
    """One page of a list, as the API pages it by the Range header value (or None).

    items are dicts holding every field of fields (see parse_range).
    Returns (status, page, extra headers): 206 with a Next-Range when the
    list was cut (the client sends it back as its next Range), else 200.
    """
    field, start, exclusive, end, order, size = parse_range(value, fields)
    desc = order == "desc"
    picked = []
    for item in sorted(items, key=lambda i: i[field], reverse=desc):
        v = item[field]
        # For desc the bounds run downwards: start is the highest value.
        before = start is not None and ((v > start if desc else v < start)
                                        or (exclusive and v == start))
        after = end is not None and (v < end if desc else v > end)
        if not before and not after:
            picked.append(item)
    page = picked[:size]
    extra = [("Accept-Ranges", ", ".join(fields))]
    if len(picked) > size:
        extra.append(("Next-Range", "%s ]%s..%s; %smax=%d"
                      % (field, page[-1][field], "" if end is None else end,
                         "order=desc, " if desc else "", size)))
        return 206, page, extra
    return 200, page, extra


def current_vars(app):
    """The app's config vars: those of its newest release ({} before the first)."""
    return app["releases"][-1]["config_vars"] if app["releases"] else {}


def account(email):
    return {"id": derived_id("account", email), "email": email}


def app_object(app, owner):
    """An app as GET /apps shows it: the fields of the real API's app object
    (test/heroku_app_schema.json), about 1 kB each as Heroku's are.  An app
    of a team (bulk apps) is owned by the team and names it twice (team and
    organization, as the API does)."""
    releases = app["releases"]
    web_host = "%s-%s" % (app["name"], hashlib.sha256(app["id"].encode()).hexdigest()[:12])
    team = app.get("team")
    team_ref = {"id": derived_id("team", team), "name": team} if team else None
    if team:
        owner = "%s@herokumanager.com" % team
    size = int(hashlib.sha256(app["id"].encode()).hexdigest()[:6], 16)
    return {"acm": False, "archived_at": None,
            "build_stack": {"id": derived_id("stack", STACK), "name": STACK},
            "buildpack_provided_description": "Ruby/Rack" if releases else None,
            "created_at": iso_time(app["created"]),
            "generation": {"id": derived_id("generation", "cedar"), "name": "cedar"},
            "git_url": "https://git.heroku.com/%s.git" % app["name"],
            "id": app["id"], "internal_routing": None, "maintenance": False,
            "name": app["name"], "organization": team_ref, "owner": account(owner),
            "region": {"id": derived_id("region", REGION), "name": REGION},
            "released_at": iso_time(releases[-1]["stamp"]) if releases else None,
            "repo_size": 1000000 + size if releases else None,
            "slug_size": 30000000 + size if releases else None, "space": None,
            "stack": {"id": derived_id("stack", STACK), "name": STACK},
            "team": team_ref,
            "updated_at": iso_time(app["updated"]),
            "web_url": "https://%s.herokuapp.com/" % web_host}


def release_object(app, release, owner):
    """A release as the API shows it."""
    return {"id": derived_id(app["id"], "release", str(release["version"])),
            "version": release["version"], "status": "succeeded",
            "current": release["version"] == app["releases"][-1]["version"],
            "description": release["description"],
            "created_at": release["created_at"], "updated_at": release["created_at"],
            "app": {"id": app["id"], "name": app["name"]},
            "user": account(owner)}


def webhook_object(hook, app):
    """A webhook as the API shows it: never its secret or authorization."""
    return {"id": hook["id"], "app": {"id": app["id"], "name": app["name"]},
            "created_at": hook["created_at"], "updated_at": hook["created_at"],
            "include": list(hook["include"]), "level": hook["level"], "url": hook["url"]}


def addon_attachments(app, inclusions):
    """Attachments derived from the app's Heroku Postgres config vars.

    HEROKU_POSTGRESQL_<COLOR>_URL each stand for one add-on; DATABASE_URL is
    a second attachment of the add-on whose URL it equals (the primary), else
    of an add-on of its own.
    """
    config_vars = current_vars(app)
    owners = {}
    for name, value in config_vars.items():
        m = PG_COLOR_VAR_RE.fullmatch(name)
        if m:
            owners[name] = m.group(1)
    if "DATABASE_URL" in config_vars:
        value = config_vars["DATABASE_URL"]
        owners["DATABASE_URL"] = next(
            (color for name, color in owners.items()
             if value is not None and config_vars[name] == value), "DATABASE")
    items = []
    app_ref = {"id": app["id"], "name": app["name"]}
    for var in sorted(owners):
        key = owners[var]
        digest = hashlib.sha256(("%s:%s" % (app["id"], key)).encode()).digest()
        addon = {"id": derived_id(app["id"], "addon", key),
                 "name": "postgresql-%s-%05d" % (ADDON_WORDS[digest[0] % len(ADDON_WORDS)],
                                                 int.from_bytes(digest[1:4], "big") % 100000),
                 "app": app_ref}
        if "addon:plan" in inclusions:
            addon["plan"] = {"id": derived_id("plan", PLAN_NAME), "name": PLAN_NAME}
        name = var[:-len("_URL")]
        item = {"id": derived_id(app["id"], "attachment", name), "name": name,
                "namespace": None, "addon": addon, "app": app_ref}
        if "config_vars" in inclusions:
            item["config_vars"] = [var]
        items.append(item)
    return items


def oversize_chunks(size):
    """A JSON-looking object of exactly size bytes, in 64 KiB pieces."""
    head, tail = b'{"PADDING": "', b'"}'
    yield head
    block = b"x" * 65536
    left = size - len(head) - len(tail)
    while left > 0:
        piece = block[:min(left, len(block))]
        left -= len(piece)
        yield piece
    yield tail


# ------------------------------------------------------------------ handler

class Handler(BaseHTTPRequestHandler):
    """One connection; each request goes through dispatch()."""

    protocol_version = "HTTP/1.1"
    server_version = SERVER_NAME
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True   # slowdrip bytes must leave one by one

    def __getattr__(self, name):
        # Every verb, even an unknown one, goes through dispatch so that it
        # still gets a JSON answer and the connection stays usable.
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    # logging: the base class would log raw request lines; we log our own.

    def log_request(self, code="-", size="-"):
        pass

    def log_message(self, format, *args):
        # Only the base class calls this (malformed requests, idle
        # timeouts); its arguments may quote raw request text, so log the
        # status code or the kind of event only.
        what = args[0] if args and isinstance(args[0], int) else format.split("%")[0].strip(" :,")
        self.server.log.write("protocol: %s" % what)

    # writing ---------------------------------------------------------------

    def head(self, status, headers, version="HTTP/1.1"):
        lines = ["%s %d %s" % (version, status, reason(status)),
                 "Date: " + email.utils.formatdate(now_micros() / 1e6, usegmt=True),
                 "Server: " + SERVER_NAME]
        lines += ["%s: %s" % h for h in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def framed(self, status, headers, length, close=False):
        """Status line and headers plus Content-Length and, when closing, Connection."""
        headers = list(headers)
        if length is not None:
            headers.append(("Content-Length", str(length)))
        if close:
            self.close_connection = True
        if self.close_connection:
            headers.append(("Connection", "close"))
        return self.head(status, headers)

    def send(self, status, headers, body=b"", close=False):
        """Write one complete answer (no body for HEAD or 304)."""
        head = self.framed(status, headers, None if status == 304 else len(body), close)
        if self.command == "HEAD" or status == 304:
            body = b""
        self.wfile.write(head + body)

    def send_json(self, status, obj, close=False):
        self.send(status, [("Content-Type", JSON_TYPE)], to_json(obj), close)

    # dispatch ---------------------------------------------------------------

    def dispatch(self):
        self.path_only = self.path.split("?", 1)[0]
        try:
            body = self.read_body()
            if body is None:
                return
            if self.path_only.startswith("/__mock/"):
                self.control(body)
            else:
                self.request_body = body
                self.api()
        except (ConnectionError, TimeoutError, ssl.SSLError):
            # The client went away (fault tests do that on purpose).
            self.close_connection = True

    def read_body(self):
        """Consume the request body so keep-alive framing stays right."""
        if self.headers.get("Transfer-Encoding"):
            self.send_json(400, {"error": "chunked request bodies are not supported"}, close=True)
            return None
        length = self.headers.get("Content-Length", "0").strip()
        if not length.isdigit():
            self.send_json(400, {"error": "bad Content-Length"}, close=True)
            return None
        if int(length) > MAX_REQUEST_BODY:
            self.send_json(413, {"error": "request body too large"}, close=True)
            return None
        return self.rfile.read(int(length))

    # control ---------------------------------------------------------------

    CONTROL_ROUTES = [
        (re.compile(r"/__mock/requests"), {"GET": "ctl_requests"}),
        (re.compile(r"/__mock/reset-counts"), {"POST": "ctl_reset_counts"}),
        (re.compile(r"/__mock/state"), {"GET": "ctl_state"}),
        (re.compile(r"/__mock/apps/([^/]+)"), {"PUT": "ctl_put_app", "DELETE": "ctl_delete_app"}),
        (re.compile(r"/__mock/apps/([^/]+)/config-vars"), {"PATCH": "ctl_patch_vars"}),
        (re.compile(r"/__mock/rate-limit"), {"POST": "ctl_rate_limit"}),
        (re.compile(r"/__mock/clock"), {"POST": "ctl_clock"}),
        (re.compile(r"/__mock/bulk-apps"), {"POST": "ctl_bulk_apps", "DELETE": "ctl_delete_bulk_apps"}),
        (re.compile(r"/__mock/faults"), {"POST": "ctl_add_faults", "DELETE": "ctl_clear_faults"}),
        (re.compile(r"/__mock/stats"), {"GET": "ctl_stats"}),
        (re.compile(r"/__mock/webhooks"), {"GET": "ctl_webhooks"}),
        (re.compile(r"/__mock/apps/([^/]+)/webhooks"), {"POST": "ctl_add_webhook"}),
        (re.compile(r"/__mock/apps/([^/]+)/webhooks/([^/]+)"), {"DELETE": "ctl_remove_webhook"}),
        (re.compile(r"/__mock/deliveries"),
         {"GET": "ctl_deliveries", "DELETE": "ctl_clear_deliveries"}),
        (re.compile(r"/__mock/webhook-settings"),
         {"GET": "ctl_webhook_settings", "POST": "ctl_set_webhook_settings"}),
    ]

    def control(self, body):
        status, answer = 200, {"ok": True}
        try:
            for pattern, methods in self.CONTROL_ROUTES:
                m = pattern.fullmatch(self.path_only)
                if m:
                    if self.command not in methods:
                        raise ControlError("method not allowed", 405)
                    args = [unquote(g) for g in m.groups()]
                    result = getattr(self, methods[self.command])(body, *args)
                    if result is not None:
                        answer = result
                    break
            else:
                raise ControlError("no such control endpoint", 404)
        except ControlError as exc:
            status, answer = exc.status, {"error": exc.message}
        self.server.log.write("%s %s %d control" % (self.command, self.path_only, status))
        self.send_json(status, answer)

    @staticmethod
    def json_body(body):
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ControlError("body must be JSON") from None

    def ctl_requests(self, body):
        return self.server.state.counts()

    def ctl_reset_counts(self, body):
        self.server.state.reset_counts()

    def ctl_state(self, body):
        return self.server.state.summary()

    def ctl_put_app(self, body, name):
        spec = self.json_body(body)
        if not isinstance(spec, dict) or set(spec) - {"id", "config_vars", "released"}:
            raise ControlError('body: {"id": optional uuid, "config_vars": {...}, '
                               '"released": optional false}')
        return self.server.state.put_app(name, spec.get("id"), spec.get("config_vars", {}),
                                         spec.get("released", True))

    def ctl_clock(self, body):
        return Clock.set(self.json_body(body))

    def ctl_bulk_apps(self, body):
        spec = self.json_body(body)
        return {"created": self.server.state.bulk_apps(spec)}

    def ctl_delete_bulk_apps(self, body):
        spec = self.json_body(body)
        return {"deleted": self.server.state.delete_bulk_apps(spec)}

    def ctl_delete_app(self, body, name):
        self.server.state.delete_app(name)

    def ctl_patch_vars(self, body, name):
        return self.server.state.patch_vars(name, self.json_body(body))

    def ctl_rate_limit(self, body):
        self.server.state.set_rate(self.json_body(body))

    def ctl_add_faults(self, body):
        self.server.state.add_faults(self.json_body(body))

    def ctl_clear_faults(self, body):
        self.server.state.clear_faults()

    def ctl_stats(self, body):
        return self.server.state.stats()

    def ctl_webhooks(self, body):
        return self.server.state.list_webhooks()

    def ctl_add_webhook(self, body, name):
        return self.server.state.add_webhook(name, self.json_body(body))

    def ctl_remove_webhook(self, body, name, hook_id):
        return self.server.state.remove_webhook(name, hook_id)

    def ctl_deliveries(self, body):
        return self.server.state.notifier.list_deliveries()

    def ctl_clear_deliveries(self, body):
        self.server.state.notifier.clear_deliveries()

    def ctl_webhook_settings(self, body):
        return self.server.state.notifier.get_settings()

    def ctl_set_webhook_settings(self, body):
        return self.server.state.notifier.set_settings(self.json_body(body))

    # API -------------------------------------------------------------------

    def auth_kind(self):
        value = self.headers.get("Authorization")
        if value is None:
            return "none"
        scheme = value.strip().split(" ", 1)[0].lower()
        return scheme if scheme in ("bearer", "basic") else "other"

    def account(self):
        """The token's account info, or None; never raises, never logs."""
        values = self.headers.get_all("Authorization") or []
        if len(values) != 1:
            return None
        # Stricter than unsure: one space after the scheme, and the token as
        # issued (a token sent with blanks or a newline around it is refused).
        scheme, _, cred = values[0].strip().partition(" ")
        user = None
        if scheme.lower() == "bearer":
            token = cred
        elif scheme.lower() == "basic":
            try:
                user, sep, token = base64.b64decode(cred, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            if not sep:
                return None
        else:
            return None
        info = self.server.state.tokens.get(token)
        # Basic auth with a login must name the token's own account.
        if info is None or (user and user.lower() != info["email"].lower()):
            return None
        return info

    def api(self):
        state = self.server.state
        entry = {"method": self.command, "path": self.path_only, "status": None,
                 "auth": self.auth_kind(),
                 "user_agent": self.headers.get("User-Agent"),
                 "if_none_match": "If-None-Match" in self.headers,
                 # for bench/large_account.sh: the Range, when the request came,
                 # when its answer was written, its body's size
                 "range": self.headers.get("Range"), "at": time.time(),
                 "done": None, "bytes": None,
                 "fault": None}
        fault = state.pick_fault(self.path_only)
        kind = fault["kind"] if fault else None
        entry["fault"] = kind
        if kind in ("hang", "drop"):
            self.record_entry(entry)
            if kind == "hang":
                self.hang()
            self.close_connection = True
            return
        if kind in ("status", "body", "oversize", "redirect"):
            self.replace_answer(fault, entry)
            return
        if kind == "delay":
            time.sleep(fault["seconds"])
        status, headers, body = self.api_answer()
        entry["status"] = status
        entry["bytes"] = len(body)
        self.record_entry(entry)
        if kind == "truncate":
            self.wfile.write(self.framed(status, headers, len(body), close=True)
                             + body[:len(body) // 2])
        elif kind == "slowdrip":
            raw = self.framed(status, headers, None if status == 304 else len(body)) + body
            for i in range(len(raw)):
                self.wfile.write(raw[i:i + 1])
                time.sleep(fault["interval"])
        elif kind == "http10":
            # Close-delimited HTTP/1.0 answer: no Content-Length at all.
            self.close_connection = True
            self.wfile.write(self.head(status, headers, "HTTP/1.0") + body)
        else:
            self.send(status, headers, body)
        entry["done"] = time.time()

    def record_entry(self, entry):
        """Record the request before answering, so counts are never late."""
        self.server.state.record(entry)
        self.server.log.write("%s %s %s %s%s" % (
            entry["method"], entry["path"],
            entry["status"] if entry["status"] is not None else "-",
            entry["auth"], " fault=%s" % entry["fault"] if entry["fault"] else ""))

    def hang(self):
        """Hold the request unanswered until the client leaves or HANG_LIMIT."""
        sock = self.connection
        deadline = time.monotonic() + HANG_LIMIT
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                if sock.recv(1) == b"":
                    return
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            except OSError:
                return

    def base_headers(self, remaining):
        headers = [("Content-Type", JSON_TYPE),
                   ("Request-Id", str(uuid.uuid4())),
                   ("Cache-Control", "private, no-cache"),
                   ("Vary", "Authorization")]
        if remaining is not None:
            headers.append(("RateLimit-Remaining", str(remaining)))
        return headers

    def replace_answer(self, fault, entry):
        """Answer a request with what a fault dictates instead of the API."""
        info = self.account()
        remaining = self.server.state.peek(info["email"]) if info else None
        kind = fault["kind"]
        entry["status"] = fault.get("status", 200)
        self.record_entry(entry)
        headers = self.base_headers(remaining)
        if kind == "status":
            if fault["retry_after"] is not None:
                headers.append(("Retry-After", str(fault["retry_after"])))
            if fault["json"]:
                body = to_json({"id": fault["id"], "message": fault["message"], "url": ERROR_DOC_URL})
            else:
                # What a failing router or proxy sends: HTML, not JSON.
                phrase = reason(fault["status"])
                headers[0] = ("Content-Type", "text/html; charset=utf-8")
                body = ("<!DOCTYPE html><html><head><title>%s</title></head>"
                        "<body><h1>%s</h1></body></html>" % (phrase, phrase)).encode()
            self.send(fault["status"], headers, body)
        elif kind == "body":
            headers[0] = ("Content-Type", fault["content_type"])
            self.send(fault["status"], headers, fault["body"])
        elif kind == "redirect":
            headers.append(("Location", fault["location"]))
            self.send(fault["status"], headers)
        else:  # oversize: stream, hashing first so the 200 still has an ETag
            digest = hashlib.sha256()
            for chunk in oversize_chunks(fault["size"]):
                digest.update(chunk)
            headers.append(("ETag", '"%s"' % digest.hexdigest()[:32]))
            self.wfile.write(self.framed(200, headers, fault["size"]))
            for chunk in oversize_chunks(fault["size"]):
                self.wfile.write(chunk)

    API_ROUTES = [
        (re.compile(r"/apps"), {"GET": "api_apps"}),
        (re.compile(r"/apps/([^/]+)/config-vars"), {"GET": "api_config_vars"}),
        (re.compile(r"/apps/([^/]+)/releases"), {"GET": "api_releases"}),
        (re.compile(r"/apps/([^/]+)/releases/([^/]+)/config-vars"),
         {"GET": "api_release_config_vars"}),
        (re.compile(r"/apps/([^/]+)/addon-attachments"), {"GET": "api_attachments"}),
        (re.compile(r"/apps/([^/]+)/webhooks"), {"GET": "api_webhooks", "POST": "api_add_webhook"}),
        (re.compile(r"/apps/([^/]+)/webhooks/([^/]+)"),
         {"GET": "api_webhook", "DELETE": "api_remove_webhook"}),
        (re.compile(r"/account/rate-limits"), {"GET": "api_rate_limits"}),
    ]

    def api_answer(self):
        """(status, headers, body) of the real API for this request."""
        remaining = None
        try:
            if not accepts_v3(self.headers.get_all("Accept") or []):
                raise ApiError(406, "not_acceptable",
                               "Please specify a version along with Heroku's API MIME type. "
                               "For example, `Accept: application/vnd.heroku+json; version=3`.")
            if not (self.headers.get("User-Agent") or "").strip():
                raise ApiError(400, "bad_request", "A User-Agent header is required.")
            info = self.account()
            if info is None:
                raise ApiError(401, "unauthorized", "Invalid credentials provided.")
            free = self.command == "GET" and self.path_only == "/account/rate-limits"
            if free:
                remaining = self.server.state.peek(info["email"])
            else:
                taken, remaining, retry_after = self.server.state.take(info["email"])
                if not taken:
                    raise ApiError(429, "rate_limit",
                                   "Your account reached the API rate limit\n"
                                   "Please wait a few minutes before making new requests",
                                   [("Retry-After", str(retry_after))])
            for pattern, methods in self.API_ROUTES:
                m = pattern.fullmatch(self.path_only)
                if m:
                    break
            else:
                raise ApiError(404, "not_found", "The requested API endpoint was not found. "
                               "Are you using the right HTTP verb and path?")
            if self.command not in methods:
                allowed = ", ".join(methods)
                raise ApiError(405, "method_not_allowed",
                               "Only %s is served on this endpoint." % allowed, [("Allow", allowed)])
            status, obj, extra = getattr(self, methods[self.command])(info, remaining, *m.groups())
        except ApiError as exc:
            body = to_json({"id": exc.error_id, "message": exc.message, "url": ERROR_DOC_URL})
            return exc.status, self.base_headers(remaining) + exc.headers, body
        body = to_json(obj)
        tag = etag_of(body)
        headers = self.base_headers(remaining) + [("ETag", tag)] + extra
        # Conditional requests are reads: a change is never answered 304.
        if self.command == "GET" and self.etag_matches(tag):
            return 304, headers, b""
        return status, headers, body

    def etag_matches(self, tag):
        """If-None-Match with weak comparison, as RFC 9110 prescribes."""
        value = self.headers.get("If-None-Match")
        if value is None:
            return False
        candidates = [c.strip() for c in value.split(",")]
        return "*" in candidates or any(c.removeprefix("W/") == tag for c in candidates)

    def app_or_404(self, ident):
        app = self.server.state.find_app(ident)
        if app is None:
            raise ApiError(404, "not_found", "Couldn't find that app.")
        return app

    @staticmethod
    def need_config_scope(info):
        if info["scope"] not in CONFIG_SCOPES:
            raise ApiError(403, "forbidden",
                           "This token lacks the read-protected scope needed to read config vars.")

    @staticmethod
    def need_write_scope(info):
        if info["scope"] != "global":
            raise ApiError(403, "forbidden", "This token lacks the write scope this change needs.")

    def json_request(self):
        """The JSON request body; the API asks for Content-Type application/json."""
        media = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media != "application/json":
            raise ApiError(400, "bad_request", "Send the body as Content-Type: application/json.")
        try:
            return json.loads(self.request_body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "bad_request", "Invalid JSON in the request body.") from None

    @staticmethod
    def state_call(method, *args):
        """Call a State method for the API: its refusals become API error answers."""
        try:
            return method(*args)
        except ControlError as exc:
            if exc.status == 404:
                raise ApiError(404, "not_found", exc.message) from None
            raise ApiError(422, "invalid_params", exc.message) from None

    def api_apps(self, info, remaining):
        return paginate(self.server.state.app_list(), self.headers.get("Range"), APP_RANGES)

    def api_config_vars(self, info, remaining, ident):
        app = self.app_or_404(ident)
        self.need_config_scope(info)
        return 200, current_vars(app), []

    def api_release_config_vars(self, info, remaining, ident, version):
        app = self.app_or_404(ident)
        self.need_config_scope(info)
        if not VERSION_RE.fullmatch(version) or int(version) > len(app["releases"]):
            raise ApiError(404, "not_found", "Couldn't find that release.")
        return 200, app["releases"][int(version) - 1]["config_vars"], []

    def api_releases(self, info, remaining, ident):
        app = self.app_or_404(ident)
        status, page, extra = paginate(app["releases"], self.headers.get("Range"), RELEASE_RANGES)
        owner = self.server.state.owner
        return status, [release_object(app, r, owner) for r in page], extra

    def api_attachments(self, info, remaining, ident):
        app = self.app_or_404(ident)
        inclusions = {i.strip() for v in self.headers.get_all("Accept-Inclusion") or []
                      for i in v.split(",")}
        return 200, addon_attachments(app, inclusions), []

    def api_rate_limits(self, info, remaining):
        return 200, {"remaining": remaining}, []

    def api_webhooks(self, info, remaining, ident):
        app = self.app_or_404(ident)
        return paginate(self.server.state.list_webhooks(app["id"]), self.headers.get("Range"),
                        WEBHOOK_RANGES)

    def api_add_webhook(self, info, remaining, ident):
        """Subscribe; without a secret, the API makes one and answers it once,
        in a Heroku-Webhook-Secret header (never in the body)."""
        app = self.app_or_404(ident)
        self.need_write_scope(info)
        spec = self.json_request()
        extra = []
        if isinstance(spec, dict) and spec.get("secret") is None:
            spec = dict(spec, secret=secrets.token_hex(32))
            extra.append(("Heroku-Webhook-Secret", spec["secret"]))
        return 201, self.state_call(self.server.state.add_webhook, app["id"], spec), extra

    def api_webhook(self, info, remaining, ident, hook_id):
        app = self.app_or_404(ident)
        return 200, self.state_call(self.server.state.get_webhook, app["id"], hook_id), []

    def api_remove_webhook(self, info, remaining, ident, hook_id):
        app = self.app_or_404(ident)
        self.need_write_scope(info)
        return 200, self.state_call(self.server.state.remove_webhook, app["id"], hook_id), []


# ------------------------------------------------------------------- server

class MockServer(ThreadingHTTPServer):
    """One listener (plain or TLS) sharing the process-wide State."""

    daemon_threads = True
    block_on_close = False   # hanging requests must not delay shutdown

    def __init__(self, address, state, log, ssl_context=None):
        self.address_family = (socket.AF_INET6 if ipaddress.ip_address(address[0]).version == 6
                               else socket.AF_INET)
        self.state = state
        self.log = log
        self.ssl_context = ssl_context
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so a
        # slow or non-TLS client cannot stall the accept loop.
        if self.ssl_context is None:
            return super().finish_request(request, client_address)
        request.settimeout(IDLE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.log.write("tls handshake failed: %s" % type(exc).__name__)
            return None
        try:
            return super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return  # clients leaving mid-answer is routine in fault tests
        # A traceback shows code, not request data, so it is safe to log.
        self.log.write("internal error: " + traceback.format_exc().replace("\n", " | "))


def loopback_address(host):
    """The host as a loopback IP literal, or an argparse error."""
    address = "127.0.0.1" if host == "localhost" else host
    try:
        if ipaddress.ip_address(address).is_loopback:
            return address
    except ValueError:
        pass
    raise argparse.ArgumentTypeError("host must be a loopback address (the mock is for local tests)")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Mock of the Heroku Platform API v3 for tests.")
    p.add_argument("--host", type=loopback_address, default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="plain HTTP port")
    p.add_argument("--tls-port", type=int, help="HTTPS port (needs --tls-cert and --tls-key)")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--tokens-file", required=True)
    p.add_argument("--webhook-ca", help="CA file that https webhook receivers are verified with "
                   "(default: the system's)")
    p.add_argument("--data")
    p.add_argument("--pidfile")
    p.add_argument("--log")
    args = p.parse_args(argv)
    if args.tls_port is not None and not (args.tls_cert and args.tls_key):
        p.error("--tls-port needs --tls-cert and --tls-key")
    return args


def write_pidfile(path):
    # Written whole then renamed, so a poller never reads a partial file.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(tmp, path)


def main(argv=None):
    args = parse_args(argv)
    log = LogFile(args.log)
    try:
        notifier = Notifier(webhook_settings_from_env(os.environ), log,
                            ssl.create_default_context(cafile=args.webhook_ca))
        state = State(load_tokens(args.tokens_file), notifier)
        for name, (app_id, config_vars) in (load_data(args.data) if args.data else {}).items():
            state.put_app(name, app_id, config_vars)
        servers = [MockServer((args.host, args.port), state, log)]
        if args.tls_port is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2   # as Heroku requires
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            servers.append(MockServer((args.host, args.tls_port), state, log, ctx))
    except ControlError as exc:
        print("mock_heroku: %s" % exc.message, file=sys.stderr)
        return 2
    except (OSError, ssl.SSLError) as exc:
        print("mock_heroku: cannot start: %s" % exc, file=sys.stderr)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()
    if args.pidfile:
        write_pidfile(args.pidfile)
    log.write("listening: http://%s:%d%s" % (
        args.host, args.port,
        " https://%s:%d" % (args.host, args.tls_port) if args.tls_port is not None else ""))
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except FileNotFoundError:
                pass
        log.write("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
