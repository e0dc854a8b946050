"""OTLP/HTTP logs (`POST /v1/logs`) against a real `minilog serve`.

The official OpenTelemetry Python SDK and its OTLP/HTTP exporter
(`opentelemetry-sdk`, `opentelemetry-exporter-otlp-proto-http`), unchanged,
each test twice: uncompressed and with `compression=Compression.Gzip`. The
exporter is given a `requests.Session` of our own (one of its parameters)
whose response hook keeps every request and answer, so a refusal the SDK
would only log is a failure here. Every run has its own LoggerProvider,
passed to its LoggingHandler explicitly (no global provider is set), and is
shut down when the test ends.

Then hand-written OTLP/JSON requests (partial success) and refusals (a
wrong key, a wrong content type) with urllib.
"""

import gzip
import inspect
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import datetime

import pytest

try:
    import requests
    from google.rpc.status_pb2 import Status
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
except ImportError:  # a venv made before the SDK joined the Makefile's list
    pytest.fail(
        "opentelemetry-sdk / opentelemetry-exporter-otlp-proto-http are not installed:"
        " remove clients/python/.venv/.installed and run `make test-python` again",
        pytrace=False,
    )

# The SDK's own LoggingHandler is what its docs and most applications still
# use; since 1.39 it warns that it moves to opentelemetry-instrumentation-logging.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated:DeprecationWarning"
)

SERVICE = "billing-svc"
ENVIRONMENT = "production"

# What each run gives OTLPLogExporter, and the Content-Encoding it must send.
COMPRESSION = {
    "plain": ({}, None),
    "gzip": ({"compression": Compression.Gzip}, "gzip"),
}

# Settings the exporter would read from the environment instead.
OTEL_ENV = [
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SERVICE_NAME",
]


@pytest.fixture(params=sorted(COMPRESSION))
def compression(request):
    return request.param


@pytest.fixture
def otel(minilog, key, compression, request, monkeypatch):
    """otel(secret=None, processor=BatchLogRecordProcessor) -> a _Run: its own
    LoggerProvider, exporter and a logger with a LoggingHandler on it. Whatever
    a test leaves running is shut down afterwards."""
    for name in OTEL_ENV:
        monkeypatch.delenv(name, raising=False)
    runs = []

    def make(secret=None, processor=BatchLogRecordProcessor):
        run = _Run(
            minilog.url,
            key["secret"] if secret is None else secret,
            compression,
            processor,
            "tests.otlp.%s.%d" % (request.node.name, len(runs)),
        )
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.close()


class _Run:
    def __init__(self, url, secret, compression, processor, logger_name):
        options, self.encoding = COMPRESSION[compression]
        self.sent = []  # every requests.Response the exporter got
        session = requests.Session()
        session.hooks["response"].append(lambda response, *args, **kwargs: self.sent.append(response))
        self.resource = Resource.create(
            {"service.name": SERVICE, "deployment.environment": ENVIRONMENT}
        )
        self.exporter = OTLPLogExporter(
            endpoint=url + "/v1/logs",
            headers={"Authorization": "Bearer " + secret},
            session=session,
            **options,
        )
        self.provider = LoggerProvider(resource=self.resource)
        self.provider.add_log_record_processor(processor(self.exporter))
        self.handler = LoggingHandler(level=logging.DEBUG, logger_provider=self.provider)
        self.logger = logging.getLogger(logger_name)
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        self.logger.addHandler(self.handler)
        # For a span to log inside of: a provider of its own, not the global one.
        self.tracer_provider = TracerProvider(resource=self.resource, shutdown_on_exit=False)
        self.tracer = self.tracer_provider.get_tracer("tests.otlp")
        self.closed = False

    def finish(self):
        """Flushes and shuts the provider down; returns what was sent."""
        assert self.provider.force_flush(10_000), "the SDK did not flush in 10 s"
        self.close()
        assert self.sent, "the exporter sent nothing"
        for response in self.sent:
            request = response.request
            assert request.url.endswith("/v1/logs")
            assert request.headers["Content-Type"] == "application/x-protobuf"
            assert request.headers.get("Content-Encoding") == self.encoding
            if self.encoding == "gzip":
                assert request.body[:2] == b"\x1f\x8b"
        return self.sent

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.logger.removeHandler(self.handler)
        self.handler.close()
        self.provider.shutdown()
        self.tracer_provider.shutdown()


def _accepted(response):
    """The ExportLogsServiceResponse of a 200, checked for rejections."""
    assert response.status_code == 200, (response.status_code, response.content)
    assert response.headers["Content-Type"] == "application/x-protobuf"
    answer = ExportLogsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_log_records == 0, answer
    return answer


def _time(entry):
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


def _charge_card(marker):
    try:
        {}["card"]
    except KeyError as e:
        raise ValueError("card declined for %s" % marker) from e


def test_the_sdk_exports_logs_with_resource_attributes_and_an_exception(minilog, key, marker, otel):
    run = otel()
    before = time.time()
    with run.tracer.start_as_current_span("checkout") as span:
        run.logger.warning("cache miss %s", marker, extra={"order_id": 42})
        warn_line = inspect.currentframe().f_lineno - 1  # the line above
    try:
        _charge_card(marker)
    except ValueError:
        run.logger.exception("payment failed for %s", marker)
    for response in run.finish():
        _accepted(response)

    warning, error = minilog.entries(marker)
    for entry in (warning, error):
        assert entry["source"] == SERVICE
        assert entry["key_id"] == key["id"]
        assert before - 1 <= _time(entry) <= time.time()
        meta = entry["meta"]
        # Resource attributes, the SDK's own among them.
        assert meta["service.name"] == SERVICE
        assert meta["deployment.environment"] == ENVIRONMENT
        assert meta["telemetry.sdk.language"] == "python"
        # The LoggingHandler's code attributes.
        assert meta["code.function.name"] == "test_the_sdk_exports_logs_with_resource_attributes_and_an_exception"
        assert meta["code.file.path"] == __file__
        # exception.* become the entry's exception, not meta.
        assert not [name for name in meta if name.startswith("exception.")]

    assert warning["level"] == "warn"
    assert warning["message"] == "cache miss %s" % marker
    assert warning["meta"]["order_id"] == "42"
    assert warning["meta"]["code.line.number"] == str(warn_line)
    context = span.get_span_context()
    assert warning["meta"]["trace_id"] == format(context.trace_id, "032x")
    assert warning["meta"]["span_id"] == format(context.span_id, "016x")
    assert minilog.get("/api/v1/entries/%d" % warning["id"]).get("exception") in (None, [])

    assert error["level"] == "error"
    assert error["message"] == "payment failed for %s" % marker
    assert "order_id" not in error["meta"]
    assert "trace_id" not in error["meta"] and "span_id" not in error["meta"]
    # The SDK sends the whole chain as exception.stacktrace (a Python
    # traceback): outermost first, each one's frames oldest call first.
    chain = minilog.get("/api/v1/entries/%d" % error["id"])["exception"]
    assert [e["type"] for e in chain] == ["ValueError", "KeyError"]
    assert chain[0]["value"] == "card declined for %s" % marker
    assert chain[1]["value"] == "'card'"
    outer = chain[0]["frames"]
    assert [f["function"] for f in outer] == [
        "test_the_sdk_exports_logs_with_resource_attributes_and_an_exception",
        "_charge_card",
    ]
    assert all(f["filename"].endswith("test_otlp.py") for f in outer)
    assert outer[-1]["lineno"] == _charge_card.__code__.co_firstlineno + 4
    assert [f["function"] for f in chain[1]["frames"]] == ["_charge_card"]
    assert chain[1]["frames"][0]["lineno"] == _charge_card.__code__.co_firstlineno + 2


def test_every_python_level_maps_to_its_minilog_level(minilog, marker, otel):
    run = otel()
    for levelno in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        run.logger.log(levelno, "%s level %d", marker, levelno)
    for response in run.finish():
        _accepted(response)
    assert [(e["message"], e["level"]) for e in minilog.entries(marker)] == [
        ("%s level 10" % marker, "debug"),
        ("%s level 20" % marker, "info"),
        ("%s level 30" % marker, "warn"),
        ("%s level 40" % marker, "error"),
        ("%s level 50" % marker, "critical"),
    ]


def test_the_sdk_with_a_wrong_key_is_refused_with_401(minilog, marker, otel):
    run = otel(secret="NOT-A-KEY-NOT-A-KEY-NOT-A-KEY-00", processor=SimpleLogRecordProcessor)
    run.logger.error("refused %s", marker)
    [response] = run.finish()  # 401 is not retried
    assert response.status_code == 401
    # A protobuf request's failure is a google.rpc.Status.
    assert response.headers["Content-Type"] == "application/x-protobuf"
    status = Status.FromString(response.content)
    assert status.code == 16  # UNAUTHENTICATED
    assert status.message
    assert minilog.entries(marker) == []


# --- hand-written OTLP/JSON -------------------------------------------------

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


def _post(url, body, headers):
    request = urllib.request.Request(url + "/v1/logs", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def _json_request(marker):
    now = time.time_ns()
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": "json-svc"}},
                        {"key": "host.name", "value": {"stringValue": "web-3"}},
                    ]
                },
                "scopeLogs": [
                    {
                        "scope": {"name": "hand-written", "version": "1"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(now),
                                "observedTimeUnixNano": str(now),
                                "severityNumber": 17,
                                "severityText": "ERROR",
                                "body": {"stringValue": "payment failed %s" % marker},
                                "attributes": [
                                    {"key": "order_id", "value": {"intValue": "42"}},
                                    {"key": "retried", "value": {"boolValue": True}},
                                    {
                                        "key": "http",
                                        "value": {
                                            "kvlistValue": {
                                                "values": [
                                                    {"key": "method", "value": {"stringValue": "POST"}}
                                                ]
                                            }
                                        },
                                    },
                                ],
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                            },
                            {
                                "timeUnixNano": str(now),
                                "severityNumber": 9,
                                "attributes": [{"key": "marker", "value": {"stringValue": marker}}],
                            },
                        ],
                    }
                ],
            }
        ]
    }


@pytest.mark.parametrize("auth", ["bearer", "x-minilog-key"])
def test_otlp_json_with_a_record_without_body_is_a_partial_success(minilog, key, marker, auth):
    body = json.dumps(_json_request(marker)).encode()
    headers = {"Content-Type": "application/json"}
    if auth == "bearer":
        headers["Authorization"] = "Bearer " + key["secret"]
    else:
        headers["X-Minilog-Key"] = key["secret"]
        # and gzip, as a collector may send it
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body)
    for _ in range(2):  # the same request again, as an exporter retries: stored once
        status, answer_headers, answer = _post(minilog.url, body, headers)
        assert status == 200, answer
        assert answer_headers["Content-Type"].split(";")[0] == "application/json"
        partial = json.loads(answer)["partialSuccess"]
        assert int(partial["rejectedLogRecords"]) == 1
        assert partial.get("errorMessage")

    [entry] = minilog.entries(marker)
    assert entry["message"] == "payment failed %s" % marker
    assert entry["level"] == "error"
    assert entry["source"] == "json-svc"
    assert entry["key_id"] == key["id"]
    assert abs(_time(entry) - time.time()) < 60
    meta = entry["meta"]
    assert meta["host.name"] == "web-3"
    assert meta["order_id"] == "42"
    assert meta["retried"] == "true"
    assert meta["http.method"] == "POST"
    assert meta["trace_id"] == TRACE_ID
    assert meta["span_id"] == SPAN_ID


# --- refusals ---------------------------------------------------------------


def test_a_wrong_key_is_401(minilog, marker):
    body = json.dumps(_json_request(marker)).encode()
    for headers in (
        {"Authorization": "Bearer NOT-A-KEY-NOT-A-KEY-NOT-A-KEY-00"},
        {"X-Minilog-Key": "NOT-A-KEY-NOT-A-KEY-NOT-A-KEY-00"},
        {},
    ):
        status, _, answer = _post(minilog.url, body, {"Content-Type": "application/json", **headers})
        assert status == 401, (headers, answer)
    assert minilog.entries(marker) == []


def test_a_wrong_content_type_is_415(minilog, key, marker):
    body = json.dumps(_json_request(marker)).encode()
    # (urllib sends application/x-www-form-urlencoded when none is given)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/grpc"):
        headers = {"Authorization": "Bearer " + key["secret"], "Content-Type": content_type}
        status, _, answer = _post(minilog.url, body, headers)
        assert status == 415, (content_type, answer)
    assert minilog.entries(marker) == []
