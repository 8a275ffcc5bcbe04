#!/usr/bin/env bash
# META.json is a valid PGXN Meta Spec 1.0.0 document (test/meta-schema.json, written from
# https://pgxn.org/spec/), and what it says matches the tree: the extension it provides is the
# one the control file defines, its file and docfile exist and ship in `make dist`, the system
# libraries the Makefile links are named, and no script goes past the control file's
# default_version (test/checks/version.sh checks the version numbers themselves).
# The schema is also shown to reject broken documents, so a vacuous schema cannot pass.
set -euo pipefail
cd "$(dirname "$0")/../.."

exec /usr/bin/python3 - <<'PY'
import copy, glob, json, re, subprocess, sys

try:
    import jsonschema
except ImportError:
    print("meta: python3-jsonschema is not installed (test/install-deps.sh)")
    sys.exit(1)

fails = []
def fail(msg):
    fails.append(msg)
    print("meta: " + msg)

schema = json.load(open("test/meta-schema.json"))
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema)
meta = json.load(open("META.json"))

for err in sorted(validator.iter_errors(meta), key=lambda e: list(e.absolute_path)):
    fail("META.json %s: %s" % ("/".join(map(str, err.absolute_path)) or "(top)", err.message))

# the schema must reject what the spec forbids
def broken(label, mutate):
    doc = copy.deepcopy(meta)
    mutate(doc)
    if validator.is_valid(doc):
        fail("schema accepts a document with " + label)
broken("no license", lambda d: d.pop("license"))
broken("no provides", lambda d: d.pop("provides"))
broken("a two-part version", lambda d: d.update(version="1.1"))
broken("an unknown license", lambda d: d.update(license="gpl"))
broken("release_status beta", lambda d: d.update(release_status="beta"))
broken("meta-spec 1.1.0", lambda d: d["meta-spec"].update(version="1.1.0"))
broken("an unknown key without x_", lambda d: d.update(system_requirements="x"))
broken("a provides entry without file", lambda d: [p.pop("file") for p in d["provides"].values()])
broken("an unknown prereqs phase", lambda d: d["prereqs"].update(install={"requires": {"a": 0}}))
broken("a bad version range", lambda d: d["prereqs"]["runtime"]["requires"].update(PostgreSQL="13+"))

control_files = glob.glob("*.control")
ext = control_files[0][:-len(".control")] if len(control_files) == 1 else None
if ext is None:
    fail("expected exactly one .control file, found %s" % control_files)
else:
    ctl = open(ext + ".control").read()
    m = re.search(r"^default_version\s*=\s*'([^']*)'", ctl, re.M)
    default_version = m.group(1) if m else None
    if meta.get("name") != ext:
        fail("META.json name %r is not the extension %r" % (meta.get("name"), ext))
    prov = meta.get("provides", {}).get(ext)
    if prov is None:
        fail("META.json provides nothing for %s" % ext)
    else:
        tracked = set(subprocess.run(["git", "ls-files", "-z"], capture_output=True,
                                     check=True).stdout.decode().split("\0"))
        for key in ("file", "docfile"):
            path = prov.get(key)
            if path is None:
                fail("provides.%s.%s is missing" % (ext, key))
                continue
            try:
                open(path).close()
            except OSError:
                fail("provides.%s.%s: %s does not exist" % (ext, key, path))
                continue
            if path not in tracked:
                fail("provides.%s.%s: %s is not committed, so `make dist` leaves it out" % (ext, key, path))
            attr = subprocess.run(["git", "check-attr", "export-ignore", "--", path],
                                  capture_output=True, text=True, check=True).stdout
            if attr.strip().endswith(": set"):
                fail("provides.%s.%s: %s is export-ignore, so `make dist` leaves it out" % (ext, key, path))
        if not re.fullmatch(re.escape(ext) + r"--[0-9][0-9.]*\.sql", prov.get("file", "")):
            fail("provides.%s.file should be the base install script %s--VERSION.sql" % (ext, ext))

    # the newest version any script reaches is default_version
    def vkey(v):
        return tuple(int(x) for x in v.split("."))
    reached = set()
    for f in glob.glob(ext + "--*.sql"):
        parts = f[len(ext) + 2:-4].split("--")
        reached.add(parts[-1])
    if default_version and reached:
        newest = max(reached, key=vkey)
        if newest != default_version:
            fail("scripts reach %s but default_version is %s" % (newest, default_version))

# every system library the Makefile links is named in META.json
makefile = open("Makefile").read()
text = json.dumps(meta).lower()
names = {"curl": "libcurl", "json-c": "json-c", "pq": "libpq"}
for lib in sorted(set(re.findall(r"(?<!\S)-l([A-Za-z0-9_.+-]+)", makefile))):
    if lib == ext:
        continue  # the client library this tree builds
    if names.get(lib, "lib" + lib).lower() not in text:
        fail("the Makefile links -l%s but META.json does not name it as a system requirement" % lib)
req = meta.get("prereqs", {}).get("runtime", {}).get("requires", {})
if "PostgreSQL" not in req:
    fail("prereqs.runtime.requires names no minimum PostgreSQL")

if fails:
    print("meta: %d problem(s)" % len(fails))
    sys.exit(1)
print("meta: META.json is valid PGXN Meta Spec 1.0.0 (%s %s) and agrees with the tree"
      % (meta["name"], meta["version"]))
PY
