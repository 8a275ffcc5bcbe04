#!/usr/bin/python3
"""Drive the Heroku API mock's /__mock/ control endpoints.

For shell scripts and psql \\! lines in tests, and importable from Python
test code (every command is a function taking the mock's base URL first).

    mockctl.py [--url URL] CMD ...

URL defaults to $HEROKU_MOCK_URL, else http://127.0.0.1:29380.  Quiet on
success unless the command prints a number, an id or JSON (one line); on
failure one line on stderr and a non-zero exit.  Standard library only.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1:29380"
TIMEOUT = 30


class MockError(Exception):
    """The mock refused a control request or could not be reached."""


def default_url():
    return os.environ.get("HEROKU_MOCK_URL") or DEFAULT_URL


def call(url, method, path, body=None):
    """One control request; returns the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read().decode("utf-8"))["error"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise MockError("%s %s: %d %s" % (method, path, exc.code, message)) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MockError("cannot reach the mock at %s: %s" % (url, reason)) from None


def given(**params):
    """The parameters that are not None: those left as None are not sent."""
    return {k: v for k, v in params.items() if v is not None}


def app_path(app, suffix=""):
    return "/__mock/apps/" + urllib.parse.quote(app, safe="") + suffix


def set_vars(url, app, changes):
    """Set several config vars at once (None sets a null); one release."""
    return call(url, "PATCH", app_path(app, "/config-vars"), changes)


def set_var(url, app, name, value):
    return set_vars(url, app, {name: value})


def set_null(url, app, name):
    return set_vars(url, app, {name: None})


def unset_var(url, app, name):
    return set_vars(url, app, {"__unset__": [name]})


def put_app(url, app, config_vars=None, app_id=None, released=True):
    """Create or replace an app; released=False makes one never released."""
    body = dict(given(id=app_id), config_vars=config_vars or {})
    if not released:
        body["released"] = False
    return call(url, "PUT", app_path(app), body)


def delete_app(url, app):
    call(url, "DELETE", app_path(app))


def requests(url):
    return call(url, "GET", "/__mock/requests")


def matching(by_path, path=None, key=None):
    """Requests whose 'METHOD /path' key holds path, or is key; all without either."""
    return sum(n for k, n in by_path.items()
               if (path is None or path in k) and (key is None or k == key))


def counts(url, path=None, key=None):
    """Total API requests, or those whose 'METHOD /path' key holds path (or is key)."""
    answer = requests(url)
    if path is None and key is None:
        return answer["total"]
    return matching(answer["by_path"], path, key)


def stats(url):
    """Counts since the last reset-counts, the seconds they took, webhook deliveries."""
    return call(url, "GET", "/__mock/stats")


def per_hour(url, path=None, key=None):
    """API requests per hour since the last reset-counts (or the mock's start)."""
    answer = stats(url)
    return round(matching(answer["by_path"], path, key) * 3600.0 / answer["seconds"], 1)


def not_modified(url):
    return requests(url)["not_modified"]


def reset_counts(url):
    call(url, "POST", "/__mock/reset-counts")


def state(url):
    return call(url, "GET", "/__mock/state")


def rate_limit(url, remaining, token_email=None, refill_per_minute=None):
    body = dict(given(token_email=token_email, refill_per_minute=refill_per_minute),
                remaining=remaining)
    call(url, "POST", "/__mock/rate-limit", body)


def clock(url, frozen):
    """Freeze the mock's clock (stamps and Date headers) at the current
    microsecond, or let it run again; returns {"frozen", "now"}."""
    return call(url, "POST", "/__mock/clock", {"frozen": bool(frozen)})


def bulk_apps(url, prefix, count, team=None):
    """Create apps PREFIX-00001 .. PREFIX-<count> (released, no config vars) of
    a team (default PREFIX-team)."""
    return call(url, "POST", "/__mock/bulk-apps",
                dict(given(team=team), prefix=prefix, count=count))["created"]


def delete_bulk_apps(url, prefix):
    return call(url, "DELETE", "/__mock/bulk-apps", {"prefix": prefix})["deleted"]


def fault(url, kind, **params):
    """Add one fault; parameters left as None are not sent."""
    call(url, "POST", "/__mock/faults", dict(given(**params), kind=kind))


def clear_faults(url):
    call(url, "DELETE", "/__mock/faults")


def add_webhook(url, app, hook_url, level="sync", secret=None, authorization=None,
                include=("api:release",)):
    """Subscribe hook_url to the app's events; returns the webhook (its id, ...)."""
    body = dict(given(secret=secret, authorization=authorization),
                include=list(include), level=level, url=hook_url)
    return call(url, "POST", app_path(app, "/webhooks"), body)


def webhooks(url, app=None):
    """Every webhook, or those of one app."""
    return [w for w in call(url, "GET", "/__mock/webhooks")
            if app is None or app in (w["app"]["name"], w["app"]["id"])]


def remove_webhook(url, app, hook_id):
    return call(url, "DELETE", app_path(app, "/webhooks/" + urllib.parse.quote(hook_id, safe="")))


def deliveries(url, app=None, status=None):
    """Webhook deliveries (oldest first), each with its attempts; optionally filtered."""
    return [d for d in call(url, "GET", "/__mock/deliveries")
            if (app is None or app in (d["app"]["name"], d["app"]["id"]))
            and (status is None or d["status"] == status)]


def clear_deliveries(url):
    call(url, "DELETE", "/__mock/deliveries")


FINAL = ("succeeded", "failed", "skipped")


def wait_deliveries(url, count, app=None, status=None, timeout=30.0):
    """Wait until count deliveries are over (with that status, if given); returns them.

    Deliveries run in the background, so a test that made a release waits
    here before it looks at what its receiver got.
    """
    deadline = time.monotonic() + timeout
    while True:
        done = [d for d in deliveries(url, app, status) if d["status"] in FINAL]
        if len(done) >= count:
            return done
        if time.monotonic() >= deadline:
            raise MockError("%d of %d deliveries over after %gs" % (len(done), count, timeout))
        time.sleep(0.05)


def webhook_settings(url, backoff=None, max_attempts=None, timeout=None):
    """Set the delivery settings given (none: only read them); returns them all."""
    body = given(backoff=backoff, max_attempts=max_attempts, timeout=timeout)
    if not body:
        return call(url, "GET", "/__mock/webhook-settings")
    return call(url, "POST", "/__mock/webhook-settings", body)


class Parser(argparse.ArgumentParser):
    """argparse that fails with the one stderr line the callers expect."""

    def error(self, message):
        sys.stderr.write("mockctl: %s\n" % message)
        sys.exit(2)


def text(value):
    """An argument as the exact text typed; refuses bytes that are not UTF-8.

    Config var values are JSON strings, so they cannot hold undecodable
    bytes; better to fail loudly than to send something else.
    """
    try:
        return os.fsencode(value).decode("utf-8")
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError("argument is not valid UTF-8") from None


def name_value(arg):
    name, sep, value = text(arg).partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return name, value


def build_parser():
    p = Parser(prog="mockctl", description=__doc__.split("\n")[0])
    p.add_argument("--url", default=None, help="mock base URL (default $HEROKU_MOCK_URL or %s)"
                   % DEFAULT_URL)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)

    # A value may be "--" or start with "-": REMAINDER takes every argument
    # of set-var exactly as typed; main() checks that there are three.
    c = sub.add_parser("set-var", help="set one config var", usage="mockctl set-var APP NAME VALUE")
    c.add_argument("args", nargs=argparse.REMAINDER, metavar="APP NAME VALUE")
    for cmd in ("set-null", "unset-var"):
        c = sub.add_parser(cmd, help="set a config var to null" if cmd == "set-null"
                           else "remove a config var")
        c.add_argument("app", type=text)
        c.add_argument("name", type=text)
    c = sub.add_parser("put-app", help="create or replace an app")
    c.add_argument("app", type=text)
    c.add_argument("--id")
    c.add_argument("--var", action="append", type=name_value, default=[], metavar="NAME=VALUE")
    c.add_argument("--unreleased", action="store_true",
                   help="a new app never released (no vars, released_at null)")
    c = sub.add_parser("delete-app")
    c.add_argument("app", type=text)
    c = sub.add_parser("clock", help="freeze the mock's clock, or thaw it")
    c.add_argument("state", choices=("freeze", "thaw"))
    c = sub.add_parser("bulk-apps", help="create COUNT apps PREFIX-00001... cheaply")
    c.add_argument("prefix", type=text)
    c.add_argument("count", type=int)
    c.add_argument("--team", type=text, help="the team owning them (default PREFIX-team)")
    c = sub.add_parser("delete-bulk-apps", help="delete the apps PREFIX-NNNNN")
    c.add_argument("prefix", type=text)
    for cmd in ("counts", "per-hour"):
        c = sub.add_parser(cmd, help="print the API request count" if cmd == "counts" else
                           "print API requests per hour since reset-counts")
        c.add_argument("--path", type=text, help="only 'METHOD /path' keys holding this")
        c.add_argument("--key", type=text, help="only this 'METHOD /path' key, e.g. 'GET /apps'")
    sub.add_parser("stats", help="print counts, seconds and webhook deliveries as JSON")
    sub.add_parser("not-modified", help="print the number of 304 answers")
    sub.add_parser("reset-counts")
    c = sub.add_parser("rate-limit", help="set the remaining rate-limit pool")
    c.add_argument("remaining", type=int)
    c.add_argument("--email", help="only this account (default: all)")
    c.add_argument("--refill", type=float, help="refill per minute (default 75)")
    c = sub.add_parser("fault", help="inject a fault")
    c.add_argument("kind")
    c.add_argument("--path", help="regular expression searched in the request path")
    c.add_argument("--count", type=int)
    c.add_argument("--status", type=int)
    c.add_argument("--seconds", type=float)
    c.add_argument("--size", type=int)
    c.add_argument("--body", type=text)
    c.add_argument("--content-type")
    c.add_argument("--id")
    c.add_argument("--message", type=text)
    c.add_argument("--interval", type=float)
    c.add_argument("--location")
    c.add_argument("--retry-after", type=int)
    c.add_argument("--no-json", action="store_true", help="status fault: HTML body")
    sub.add_parser("clear-faults")
    c = sub.add_parser("add-webhook", help="subscribe a URL to an app's events; print its id")
    c.add_argument("app", type=text)
    c.add_argument("hook_url", metavar="URL", type=text)
    c.add_argument("--level", choices=("sync", "notify"), default="sync")
    c.add_argument("--secret", type=text)
    c.add_argument("--authorization", type=text)
    c.add_argument("--include", action="append", type=text, metavar="ENTITY",
                   help="default api:release; may be repeated")
    c = sub.add_parser("webhooks", help="print the webhooks as JSON")
    c.add_argument("--app", type=text)
    c = sub.add_parser("remove-webhook")
    c.add_argument("app", type=text)
    c.add_argument("id")
    c = sub.add_parser("deliveries", help="print webhook deliveries as JSON")
    c.add_argument("--app", type=text)
    c.add_argument("--status", choices=("pending", "retrying") + FINAL)
    c.add_argument("--count", action="store_true", help="print only how many")
    c = sub.add_parser("wait-deliveries", help="wait until N deliveries are over")
    c.add_argument("count", type=int)
    c.add_argument("--app", type=text)
    c.add_argument("--status", choices=FINAL)
    c.add_argument("--timeout", type=float, default=30.0)
    sub.add_parser("clear-deliveries")
    c = sub.add_parser("webhook-settings", help="set delivery settings; print them all as JSON")
    c.add_argument("--backoff", type=float, help="seconds before the first retry (doubling)")
    c.add_argument("--attempts", type=int, help="attempts at most (sync webhooks)")
    c.add_argument("--timeout", type=float, help="seconds one attempt may take")
    return p


def run(args):
    """Carry out one parsed command; returns what to print, or None."""
    url = args.url or default_url()
    if args.cmd == "set-var":
        set_var(url, args.app, args.name, args.value)
    elif args.cmd == "set-null":
        set_null(url, args.app, args.name)
    elif args.cmd == "unset-var":
        unset_var(url, args.app, args.name)
    elif args.cmd == "put-app":
        put_app(url, args.app, dict(args.var), args.id, not args.unreleased)
    elif args.cmd == "delete-app":
        delete_app(url, args.app)
    elif args.cmd == "clock":
        clock(url, args.state == "freeze")
    elif args.cmd == "bulk-apps":
        return bulk_apps(url, args.prefix, args.count, args.team)
    elif args.cmd == "delete-bulk-apps":
        return delete_bulk_apps(url, args.prefix)
    elif args.cmd == "counts":
        return counts(url, args.path, args.key)
    elif args.cmd == "per-hour":
        return per_hour(url, args.path, args.key)
    elif args.cmd == "stats":
        return json.dumps(stats(url))
    elif args.cmd == "not-modified":
        return not_modified(url)
    elif args.cmd == "reset-counts":
        reset_counts(url)
    elif args.cmd == "rate-limit":
        rate_limit(url, args.remaining, args.email, args.refill)
    elif args.cmd == "fault":
        fault(url, args.kind, path=args.path, count=args.count, status=args.status,
              seconds=args.seconds, size=args.size, body=args.body,
              content_type=args.content_type, id=args.id, message=args.message,
              interval=args.interval, location=args.location,
              retry_after=args.retry_after, json=False if args.no_json else None)
    elif args.cmd == "clear-faults":
        clear_faults(url)
    elif args.cmd == "add-webhook":
        return add_webhook(url, args.app, args.hook_url, args.level, args.secret,
                           args.authorization, args.include or ("api:release",))["id"]
    elif args.cmd == "webhooks":
        return json.dumps(webhooks(url, args.app))
    elif args.cmd == "remove-webhook":
        remove_webhook(url, args.app, args.id)
    elif args.cmd == "deliveries":
        found = deliveries(url, args.app, args.status)
        return len(found) if args.count else json.dumps(found)
    elif args.cmd == "wait-deliveries":
        wait_deliveries(url, args.count, args.app, args.status, args.timeout)
    elif args.cmd == "clear-deliveries":
        clear_deliveries(url)
    elif args.cmd == "webhook-settings":
        return json.dumps(webhook_settings(url, args.backoff, args.attempts, args.timeout))
    return None


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd == "set-var":
        if len(args.args) != 3:
            parser.error("set-var needs APP NAME VALUE")
        try:
            args.app, args.name, args.value = (text(a) for a in args.args)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
    try:
        result = run(args)
    except MockError as exc:
        sys.stderr.write("mockctl: %s\n" % exc)
        return 1
    if result is not None:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
