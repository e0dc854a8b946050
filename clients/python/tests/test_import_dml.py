"""`minilog import django-minimal-log` against databases that the real
django-minimal-log 0.7.2 made (dml_history.py, in its own venv with Django
3.2), SQLite and a PostgreSQL server started here, into a real
`minilog serve`; every row is checked through minilog's API.

`MINILOG_DML_PYTHON` is that venv's interpreter and `MINILOG_PG_BIN` the
directory of initdb and pg_ctl; `make test-python` sets up and sets both.
"""

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import ROOT, Minilog, _binaries, free_port

HERE = Path(__file__).resolve().parent
LEVELS = {"good": "good", "info": "info", "warn": "warn", "error": "error", "": "info"}
# The stream forgets message ids after this many seconds: a second run
# later than that must still import nothing twice.
DUPLICATE_WINDOW = 1


def dml_python():
    python = os.environ.get("MINILOG_DML_PYTHON") or str(ROOT / "clients/python/.venv-dml/bin/python")
    if not os.access(python, os.X_OK):
        pytest.fail(
            "no django-minimal-log venv at %s: run `make clients/python/.venv-dml/.installed` "
            "(or `make test-python`), or set MINILOG_DML_PYTHON" % python
        )
    return python


def history(*args):
    """Runs dml_history.py with the original's venv; its JSON dump of every row."""
    done = subprocess.run(
        [dml_python(), str(HERE / "dml_history.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def rfc3339(ms):
    t = datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return t + ("Z" if ms % 1000 == 0 else ".%03dZ" % (ms % 1000))


@pytest.fixture(scope="module")
def server():
    binary, nats_bin = _binaries()
    s = Minilog(binary, nats_bin)
    s.env["MINILOG_DUPLICATE_WINDOW"] = str(DUPLICATE_WINDOW)
    try:
        s.start()
        yield s
    finally:
        s.stop()
        shutil.rmtree(s.data, ignore_errors=True)


def run_import(server, db, *flags, check=True):
    done = subprocess.run(
        [server.binary, "import", "django-minimal-log", "--db", db, "--data", server.data, "--json", *flags],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "panicked" not in done.stderr, done.stderr
    if not check:
        return done
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def imported(server, name):
    """Every entry this import `name` brought, by the original's id."""
    server.caught_up()
    found, params = {}, {"resolved": "all", "limit": 200}
    while True:
        page = server.get("/api/v1/entries", params)
        for e in page["entries"]:
            if e["meta"].get("imported_from") == name:
                assert e["meta"]["imported_id"] not in found, "imported twice: %s" % e
                found[e["meta"]["imported_id"]] = e
        if page["next_before"] is None:
            return found
        params["before"] = page["next_before"]


def minilog_keys(server):
    return [json.loads(line) for line in server.cli("key", "list", "--json").splitlines()]


def wait_for_gateway(server):
    """Until the gateway has applied every key event so far: it applies them
    in stream order, so once it knows a key created now, it has applied the
    import's creations and revokes before it."""
    server.create_key("barrier after an import")


def post_form(server, secret, message, status):
    body = urllib.parse.urlencode({"key": secret, "message": message, "status": status}).encode()
    try:
        with urllib.request.urlopen(server.url + "/log/add/", data=body, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def expected_ip(from_ip):
    if from_ip in (None, "(None, False)"):
        return None
    if from_ip.startswith("("):
        return from_ip.split("'")[1]
    return from_ip if from_ip[0].isdigit() else None


def check_every_row(server, name, dump):
    keys_by_orig = {}
    listed = minilog_keys(server)
    for k in dump["keys"]:
        [mk] = [m for m in listed if m["description"] == k["description"] and m["created"] == rfc3339(k["added"])]
        assert mk["active"] == k["active"], k
        assert mk["created_by"] == k["adder"], k
        assert mk["ending"] == k["secret"][-4:]
        keys_by_orig[k["id"]] = mk["id"]
    entries = imported(server, name)
    assert len(entries) == len(dump["entries"])
    for row in dump["entries"]:
        e = entries[str(row["id"])]
        assert e["message"] == row["message"]
        assert e["level"] == LEVELS[row["status"]]
        assert e["time"] == rfc3339(row["added"])
        assert e["received"] == rfc3339(row["added"])
        assert e["ip"] == expected_ip(row["from_ip"]), row
        if row["key_id"] is None:
            assert e["key_id"] is None and e["meta"]["key_deleted"] == "true", e
        else:
            assert e["key_id"] == keys_by_orig[row["key_id"]] and "key_deleted" not in e["meta"], e
        if row["from_ip"] == "not-an-ip":
            assert e["meta"]["imported_address"] == "not-an-ip"
        if row["resolved"] is None:
            assert e["resolved"] is None, e
        else:
            by = row["solver"] or "command line"
            assert e["resolved"] == {"by": by, "at": rfc3339(row["resolved"])}, e
    return keys_by_orig


def check_old_clients(server, dump):
    wait_for_gateway(server)
    for k in dump["keys"]:
        status, body = post_form(server, k["secret"], "an old client, unchanged", "warn")
        if k["active"]:
            assert (status, body) == (200, "warn added\n"), k
        else:
            assert status == 401, k


def test_a_sqlite_installation_is_imported_whole_and_once(server, tmp_path):
    db = str(tmp_path / "db.sqlite3")
    dump = history("sqlite", db)
    assert dump["refused"] == []
    name = "dml-sqlite"
    n_resolved = sum(1 for e in dump["entries"] if e["resolved"])

    before = server.caught_up()
    dry = run_import(server, db, "--name", name, "--dry-run")
    assert server.caught_up() == before, "--dry-run published"
    want = {
        "keys": 3,
        "revoked": 1,
        "entries": len(dump["entries"]),
        "entries_of_deleted_keys": 2,
        "resolves": n_resolved,
    }
    assert {k: dry[k] for k in want} == want and dry["dry_run"] is True

    started = time.monotonic()
    first = run_import(server, db, "--name", name)
    assert {k: first[k] for k in want} == want, first
    server.get("/api/v1/entries", {"min_seq": first["last_seq"], "limit": 1})
    check_every_row(server, name, dump)
    check_old_clients(server, dump)

    # Later than JetStream's memory of the message ids: still nothing twice.
    time.sleep(max(0, DUPLICATE_WINDOW + 0.5 - (time.monotonic() - started)))
    last = server.caught_up()
    again = run_import(server, db, "--name", name)
    assert again["keys"] == again["entries"] == again["resolves"] == 0, again
    assert again["keys_existing"] == 3
    assert again["skipped_entries"] == len(dump["entries"])
    assert again["skipped_resolves"] == n_resolved
    assert server.caught_up() == last

    # The original ran on after the import: the next run brings only that.
    dump = history("sqlite", db, "more")
    third = run_import(server, db, "--name", name)
    assert (third["entries"], third["resolves"], third["keys"]) == (1, 1, 0), third
    check_every_row(server, name, dump)


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise(server, tmp_path):
    db = str(tmp_path / "db.sqlite3")
    dump = history("sqlite", db)
    total = len(dump["keys"]) + len(dump["entries"]) + sum(1 for e in dump["entries"] if e["resolved"])
    argv = [server.binary, "import", "django-minimal-log", "--db", db, "--data", server.data]
    # Not a terminal (a pipe, as in CI or cron): plain lines, the last 100%.
    piped = subprocess.run(argv + ["--name", "progress-lines"], env=server.env, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    lines = [l for l in piped.stderr.splitlines() if l.startswith("import: ")]
    assert lines and "\x1b" not in piped.stderr, piped.stderr
    assert lines[-1].startswith("import: %d/%d keys, entries and resolves (100%%)" % (total, total)), lines
    # On a terminal: one line redrawn, with a bar.
    import pty

    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            argv + ["--name", "progress-bar"], env=server.env, stdout=subprocess.PIPE, stderr=follower, timeout=120
        )
        os.close(follower)
        follower = None
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            out += chunk
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    assert done.returncode == 0, out
    text = out.decode()
    assert "\r\x1b[2Kimport: [" in text, text
    assert "[%s] %d/%d" % ("#" * 30, total, total) in text, text


@contextlib.contextmanager
def running_postgres(tls=False):
    """A throwaway PostgreSQL server on its own port and directory; with
    `tls`, one that takes TCP connections over TLS only (its certificate
    for 127.0.0.1 from a CA made here), yielding (port, CA file)."""
    bin_dir = os.environ.get("MINILOG_PG_BIN") or subprocess.run(
        [str(ROOT / "scripts/ensure-postgres.sh")], capture_output=True, text=True
    ).stdout.strip()
    if not bin_dir or not os.access(os.path.join(bin_dir, "initdb"), os.X_OK):
        pytest.fail("no PostgreSQL initdb: run scripts/ensure-postgres.sh (or `make test-python`)")
    root = tempfile.mkdtemp(prefix="minilog-pg-")
    data = os.path.join(root, "data")
    as_pg = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def pg(tool, *args):
        subprocess.run(as_pg + [os.path.join(bin_dir, tool), *args], check=True, capture_output=True, timeout=60)

    pg("initdb", "-D", data, "-A", "trust", "-U", "postgres")
    opts = "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (port, root)
    ca_file = None
    if tls:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        ca_file = os.path.join(root, "ca.pem")
        ca.cert_pem.write_to_path(ca_file)
        cert_file, key_file = os.path.join(data, "server.crt"), os.path.join(data, "server.key")
        cert.cert_chain_pems[0].write_to_path(cert_file)
        cert.private_key_pem.write_to_path(key_file)
        os.chmod(key_file, 0o600)
        if as_pg:
            for f in (cert_file, key_file):
                shutil.chown(f, "postgres", "postgres")
        # TCP only over TLS: a plain connection is turned away.
        with open(os.path.join(data, "pg_hba.conf"), "w") as hba:
            hba.write("local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n")
        opts += " -c ssl=on -c ssl_cert_file=%s -c ssl_key_file=%s" % (cert_file, key_file)
    pg("pg_ctl", "-D", data, "-o", opts, "-l", os.path.join(root, "log"), "-w", "start")
    try:
        pg("createdb", "-h", root, "-p", str(port), "-U", "postgres", "dml")
        yield (port, ca_file) if tls else port
    finally:
        subprocess.run(as_pg + [os.path.join(bin_dir, "pg_ctl"), "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    with running_postgres() as port:
        yield port


def test_a_postgres_installation_is_imported_as_the_original_stored_it(server, postgres):
    dump = history("postgres", "127.0.0.1", str(postgres), "dml", "postgres")
    # from_ip is varchar(16) and Postgres enforces it: the original's view
    # fails (500, nothing stored) for every request whose address it knew,
    # since "('127.0.0.1', False)" is longer; only "(None, False)" fits.
    assert dump["refused"] and all(r["status"] == 500 and r["addr"] for r in dump["refused"])
    assert {e["from_ip"] for e in dump["entries"]} <= {"(None, False)", "10.1.2.3", None, "not-an-ip"}
    name = "dml-postgres"
    url = "postgres://postgres@127.0.0.1:%d/dml" % postgres
    first = run_import(server, url, "--name", name)
    assert first["entries"] == len(dump["entries"]) and first["keys"] == 3, first
    server.get("/api/v1/entries", {"min_seq": first["last_seq"], "limit": 1})
    check_every_row(server, name, dump)
    check_old_clients(server, dump)
    again = run_import(server, url, "--name", name)
    assert again["entries"] == again["resolves"] == again["keys"] == 0, again


def test_a_postgres_that_wants_tls_is_imported_over_verified_tls_only(server):
    with running_postgres(tls=True) as (port, ca):
        # The original's Django (psycopg2, sslmode=prefer) writes over TLS.
        dump = history("postgres", "127.0.0.1", str(port), "dml", "postgres")
        url = "postgres://postgres@127.0.0.1:%d/dml" % port

        def error(db):
            done = run_import(server, db, "--name", "dml-tls", check=False)
            assert done.returncode == 1, done
            return done.stderr

        # Without sslmode the server turns the plain connection away; the
        # error says what to add.
        plain = error(url)
        assert "rejects connection" in plain and "no encryption" in plain, plain
        assert "sslmode=verify-full" in plain, plain
        # TLS, but a certificate from a CA nobody gave: refused (no libpq
        # "require" that trusts anything), and the error names sslrootcert.
        unknown = error(url + "?sslmode=require")
        assert "UnknownIssuer" in unknown and "sslrootcert" in unknown, unknown
        # The right CA, but the certificate is for 127.0.0.1, not localhost.
        wrong_name = error(
            "postgres://postgres@localhost:%d/dml?sslmode=verify-full&sslrootcert=%s" % (port, ca)
        )
        assert 'not valid for name "localhost"' in wrong_name, wrong_name
        assert imported(server, "dml-tls") == {}

        done = run_import(server, url + "?sslmode=verify-full&sslrootcert=" + urllib.parse.quote(ca), "--name", "dml-tls")
        assert done["entries"] == len(dump["entries"]) and done["keys"] == 3, done
        check_every_row(server, "dml-tls", dump)


def test_bad_databases_get_an_error_saying_what_to_fix(server, tmp_path):
    def error(db):
        done = run_import(server, db, check=False)
        assert done.returncode == 1, done
        return done.stderr

    assert "no such file" in error(str(tmp_path / "missing.sqlite3"))
    text = tmp_path / "notes.txt"
    text.write_text("this is not a database, just some words in a file\n" * 100)
    assert "is not a SQLite database" in error(str(text))
    other = tmp_path / "other.sqlite3"
    import sqlite3

    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE things (id integer)")
    assert "is not a django-minimal-log database" in error(str(other))
    closed = free_port()
    message = error("postgres://someone:hunter2@127.0.0.1:%d/dml" % closed)
    assert "cannot connect to Postgres" in message and "hunter2" not in message
