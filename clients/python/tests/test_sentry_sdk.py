"""The official `sentry-sdk`, unchanged, against a real `minilog serve`.

Each test runs twice: with the SDK's default compression (brotli, as
`brotli` is installed) and with `transport_compression_algo: gzip`. Every
request the SDK's transport makes is watched (the SDK's own code still
sends it) so a refusal it would only log is a failure here.
"""

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from types import SimpleNamespace

import pytest

try:
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration
except ImportError:  # a venv made before sentry-sdk joined the Makefile's list
    pytest.fail(
        "sentry-sdk is not installed: remove clients/python/.venv/.installed"
        " and run `make test-python` again",
        pytrace=False,
    )

RELEASE = "shop@1.2.3"
ENVIRONMENT = "staging"
SERVER_NAME = "web-7"

# The `_experiments` each run gives `sentry_sdk.init`, by the algorithm the
# transport must then use (sentry_sdk/transport.py, HttpTransportCore).
COMPRESSION = {
    "br": {},
    "gzip": {"_experiments": {"transport_compression_algo": "gzip"}},
}


@pytest.fixture(scope="module")
def sentry_key(minilog):
    """A key of its own for this module: its id and its DSN."""
    out = minilog.cli(
        "key", "create", "--description", "sentry sdk tests", "--public-url", minilog.url, "--json"
    )
    created = json.loads(out.splitlines()[-1])
    _wait_for_dsn(created["dsn"])
    return {"id": created["id"], "dsn": created["dsn"]}


def _wait_for_dsn(dsn):
    # The gateway learns keys from the stream, and a DSN's key is not the
    # key's secret: post an envelope with no items until the key is known
    # (then it is refused as empty, 400, rather than with 401).
    parts = urllib.parse.urlsplit(dsn)
    url = "%s://%s:%d/api%s/envelope/" % (parts.scheme, parts.hostname, parts.port, parts.path)
    auth = "Sentry sentry_key=%s, sentry_version=7, sentry_client=minilog-tests/1" % parts.username
    deadline = time.monotonic() + 10
    while True:
        request = urllib.request.Request(
            url,
            data=b"{}\n",
            headers={"X-Sentry-Auth": auth, "Content-Type": "application/x-sentry-envelope"},
        )
        try:
            urllib.request.urlopen(request, timeout=5).close()
            return
        except urllib.error.HTTPError as e:
            if e.code not in (401, 503):
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not learn the new DSN in 10 s")
        time.sleep(0.05)


@pytest.fixture(params=sorted(COMPRESSION))
def compression(request):
    return request.param


@pytest.fixture
def sentry(sentry_key, compression):
    """sentry(**options) -> a session of `sentry_sdk.init` with the run's
    compression; `.finish()` flushes and closes it and checks what was sent.
    Whatever a test leaves open is closed afterwards."""
    sessions = []

    def init(**options):
        sentry_sdk.init(
            dsn=sentry_key["dsn"],
            release=RELEASE,
            environment=ENVIRONMENT,
            server_name=SERVER_NAME,
            # A plain Python program: Django is in this venv, and its
            # integration would patch Django for the rest of the session.
            auto_enabling_integrations=False,
            **COMPRESSION[compression],
            **options,
        )
        client = sentry_sdk.get_client()
        assert client.is_active()
        session = _Session(client, compression)
        sessions.append(session)
        return session

    yield init
    for session in sessions:
        session.close()


class _Session:
    def __init__(self, client, algo):
        self.client = client
        self.algo = algo
        self.sent = []
        transport = client.transport
        # The algorithm the transport chose (HttpTransportCore.__init__).
        assert type(transport).__name__ == "HttpTransport"
        assert transport._compression_algo == algo
        assert transport._compression_level > 0
        request = transport._request  # HttpTransport._request: the one urllib3 call

        def watched(method, endpoint_type, body, headers):
            response = request(method, endpoint_type, body, headers)
            self.sent.append(
                SimpleNamespace(
                    url=transport._auth.get_api_url(endpoint_type),
                    encoding=headers.get("Content-Encoding"),
                    status=response.status,
                    body=response.data,
                )
            )
            return response

        transport._request = watched

    def close(self):
        if self.client.transport is not None:
            self.client.flush(timeout=10)
            self.client.close(timeout=10)
        scope = sentry_sdk.get_global_scope()
        if scope.client is self.client:
            scope.set_client(None)  # back to a NonRecordingClient

    def finish(self):
        """Flushes and closes; every request was a 200 for a compressed envelope."""
        self.close()
        assert self.sent, "the SDK sent nothing"
        for r in self.sent:
            assert urllib.parse.urlsplit(r.url).path.endswith("/envelope/"), r.url
            assert (r.status, r.encoding) == (200, self.algo), r
            answer = json.loads(r.body)
            assert "id" in answer, r
        return self.sent


def one_entry(minilog, marker):
    entries = minilog.entries(marker)
    assert len(entries) == 1, entries
    return entries[0]


def test_capture_message(minilog, sentry_key, sentry, marker):
    session = sentry()
    event_id = sentry_sdk.capture_message("%s stock is running low" % marker, level="warning")
    sent = session.finish()

    entry = one_entry(minilog, marker)
    assert entry["message"] == "%s stock is running low" % marker
    assert entry["level"] == "warn"
    assert entry["key_id"] == sentry_key["id"]
    assert entry["source"] == "python"  # no logger: the platform
    meta = entry["meta"]
    assert meta["release"] == RELEASE
    assert meta["environment"] == ENVIRONMENT
    assert meta["server_name"] == SERVER_NAME
    assert meta["sdk"] == "sentry.python/%s" % sentry_sdk.VERSION
    # The gateway answers with the event's id, as Sentry does.
    assert event_id in [json.loads(r.body)["id"] for r in sent]


def test_capture_exception_of_a_chain(minilog, sentry, marker):
    session = sentry()
    try:
        try:
            1 / 0
        except ZeroDivisionError as e:
            raise KeyError(marker) from e
    except KeyError:
        sentry_sdk.capture_exception()
    session.finish()

    entry = one_entry(minilog, marker)
    assert entry["message"].startswith("KeyError: ")
    assert entry["message"] == "KeyError: '%s'" % marker
    assert entry["level"] == "error"
    assert entry["meta"]["release"] == RELEASE
    # The entry's JSON detail carries the chain, outermost first, each
    # one's frames oldest call first.
    chain = minilog.get("/api/v1/entries/%d" % entry["id"])["exception"]
    assert [e["type"] for e in chain] == ["KeyError", "ZeroDivisionError"]
    assert chain[0]["value"] == "'%s'" % marker
    raised = chain[0]["frames"][-1]
    assert raised["function"] == "test_capture_exception_of_a_chain"
    assert raised["context_line"].strip() == "raise KeyError(marker) from e"
    assert raised["in_app"] is True


def test_logging_integration(minilog, sentry, marker):
    session = sentry()
    assert session.client.get_integration(LoggingIntegration) is not None
    logging.getLogger("billing").error("payment failed for %s", marker)
    session.finish()

    entry = one_entry(minilog, marker)
    assert entry["message"] == "payment failed for %s" % marker
    assert entry["source"] == "billing"
    assert entry["level"] == "error"
    assert entry["meta"]["environment"] == ENVIRONMENT


def test_structured_logs(minilog, sentry, marker):
    session = sentry(enable_logs=True)
    sentry_sdk.logger.warning("cache miss for {key}", key=marker)
    session.finish()

    entry = one_entry(minilog, marker)
    assert entry["message"] == "cache miss for %s" % marker
    assert entry["level"] == "warn"
    meta = entry["meta"]
    assert meta["release"] == RELEASE
    assert meta["environment"] == ENVIRONMENT
    assert meta["server_name"] == SERVER_NAME
    assert meta["sentry.message.template"] == "cache miss for {key}"
    assert meta["sentry.message.parameter.key"] == marker
