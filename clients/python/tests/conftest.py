"""A real `minilog serve` for the test session (free port, temporary data).

`MINILOG_BIN` names the binary (default: the workspace's
target/debug/minilog) and `MINILOG_NATS_SERVER_BIN` the nats-server it
embeds (default: what scripts/ensure-nats.sh prints). `make test-python`
sets both.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ADMIN_PASSWORD = "python-client-tests"
# The origin the session key allows for browser reports.
ALLOWED_ORIGIN = "https://shop.example"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binaries():
    binary = os.environ.get("MINILOG_BIN") or str(ROOT / "target/debug/minilog")
    if not os.access(binary, os.X_OK):
        pytest.fail(
            "no minilog binary at %s: run `cargo build --bin minilog` (or `make test-python`),"
            " or set MINILOG_BIN" % binary
        )
    nats = os.environ.get("MINILOG_NATS_SERVER_BIN")
    if not nats:
        nats = subprocess.run(
            [str(ROOT / "scripts/ensure-nats.sh")], check=True, capture_output=True, text=True
        ).stdout.strip()
    return binary, nats


class Minilog:
    """One `minilog serve` with its data directory; stop() and start() keep both."""

    def __init__(self, binary, nats_bin):
        self.binary = binary
        self.data = tempfile.mkdtemp(prefix="minilog-python-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.env = dict(
            os.environ,
            MINILOG_NATS_SERVER_BIN=nats_bin,
            MINILOG_ADMIN_PASSWORD=ADMIN_PASSWORD,
            MINILOG_LOG=os.environ.get("MINILOG_LOG", "warn"),
        )
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [self.binary, "serve", "--data", self.data, "--listen", "127.0.0.1:%d" % self.port],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("minilog serve exited with %s" % self.process.returncode)
            try:
                with urllib.request.urlopen(self.url + "/readyz?max_lag=0", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("minilog serve did not become ready in 30 s")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cli(self, *args):
        return subprocess.run(
            [self.binary, *args, "--data", self.data],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def create_key(self, description="python client tests", origins=()):
        """Returns the `key create --json` object (id and secret among its fields)."""
        args = ["key", "create", "--description", description, "--json"]
        for origin in origins:
            args += ["--origin", origin]
        created = json.loads(self.cli(*args).splitlines()[-1])
        key = {"id": created.get("id") or created.get("key_id"), "secret": created["secret"]}
        self._wait_for_key(key["secret"])
        return key

    def _wait_for_key(self, secret):
        # The gateway learns keys from the stream: wait until it knows this one.
        deadline = time.monotonic() + 10
        while True:
            request = urllib.request.Request(
                self.url + "/api/v1/entries",
                data=b"[]",
                headers={"Authorization": "Bearer " + secret, "Content-Type": "application/json"},
            )
            try:
                urllib.request.urlopen(request, timeout=5).close()
                return
            except urllib.error.HTTPError as e:
                if e.code != 401:
                    return  # known (an empty batch is refused with 400)
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not learn the new key in 10 s")
            time.sleep(0.05)

    def get(self, path, params=None, auth=True):
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url)
        if auth:
            token = base64.b64encode(("admin:" + ADMIN_PASSWORD).encode()).decode()
            request.add_header("Authorization", "Basic " + token)
        with urllib.request.urlopen(request, timeout=20) as r:
            return json.load(r)

    def caught_up(self):
        """The stream's last sequence, once the projection has applied it."""
        try:
            last = self.get("/readyz", auth=False)["stream_last_seq"]
        except urllib.error.HTTPError as e:  # 503 while catching up, same body
            last = json.load(e)["stream_last_seq"]
        self.get("/api/v1/entries", {"min_seq": last, "limit": 1})
        return last

    def entries(self, q, **filters):
        """Every entry (open or resolved) whose message or source contains `q`, oldest first."""
        self.caught_up()
        found = []
        params = {"q": q, "resolved": "all", "limit": 200, **filters}
        while True:
            page = self.get("/api/v1/entries", params)
            found.extend(page["entries"])
            if page["next_before"] is None:
                break
            params["before"] = page["next_before"]
        return sorted(found, key=lambda e: e["id"])


@pytest.fixture(scope="session")
def minilog():
    binary, nats_bin = _binaries()
    server = Minilog(binary, nats_bin)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.data, ignore_errors=True)


@pytest.fixture(scope="session")
def key(minilog):
    return minilog.create_key("python client tests", origins=[ALLOWED_ORIGIN])


@pytest.fixture
def marker():
    """A word that only this test's entries contain."""
    return "t" + uuid.uuid4().hex[:12]
