"""``MinilogHandler``: Python logging to minilog without ever hurting the caller.

``emit`` only turns the record into an entry (formatting, traceback, request
details: work that must happen while the record is alive) and appends it to a
bounded queue. A background thread takes batches from the queue and posts
them to ``POST /api/v1/entries``:

- while minilog is unreachable (no answer, 429, 5xx) it retries the same
  batch with the same ``Idempotency-Key`` after a growing pause, so a batch
  that was stored but whose answer got lost is not stored twice (within
  minilog's duplicate window, 10 minutes by default);
- when the queue is full the oldest record makes room for the new one, and
  the number dropped is written once to stderr when the episode ends (the
  queue has room again; at most one line a minute; or at exit);
- a batch minilog refuses for good (a bad key, an invalid item) is reported
  once on stderr and not retried; invalid items are removed and the rest sent;
- at exit (``logging.shutdown``, registered by the logging module itself) it
  keeps trying for ``flush_timeout`` seconds, then reports what it could not
  deliver.
"""

import collections
import json
import logging
import os
import random
import socket
import sys
import threading
import time
import traceback
import uuid
import weakref

from . import _config, _http
from .errors import MinilogConfigError, MinilogError

#: Largest batch minilog accepts.
MAX_BATCH = 1000
#: Bytes per request; minilog's default body limit is 4 MiB.
MAX_BATCH_BYTES = 1024 * 1024
MAX_META_PAIRS = 32
MAX_META_KEY = 64
MAX_META_VALUE = 1024
MAX_SOURCE = 200

# Attributes every LogRecord has; anything else came from `extra=`.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request",
    "status_code",
    "taskName",
}


def level_name(levelno):
    """minilog's level for a Python level number (API.md: rounded down)."""
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def _cut(text, limit):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_bytes(text, limit):
    # "replace": a lone surrogate (from a file name, say) is not UTF-8.
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw.decode("utf-8")
    kept = raw[:limit].decode("utf-8", errors="ignore")
    return "%s… [trimmed %d bytes]" % (kept, len(raw) - len(kept.encode("utf-8")))


def _django_user(request):
    """The request's user if it is already known; never queries the database."""
    d = getattr(request, "__dict__", {})
    # AuthenticationMiddleware's lazy user caches itself here once evaluated.
    user = d.get("_cached_user")
    if user is None:
        user = d.get("user")
        if user is None:
            return None
        inner = getattr(user, "__dict__", {}).get("_wrapped", user)
        functional = sys.modules.get("django.utils.functional")
        if functional is not None and inner is getattr(functional, "empty", None):
            return None  # not evaluated yet: evaluating it could hit the database
        user = inner
    try:
        if not getattr(user, "is_authenticated", False):
            return "anonymous"
        get_username = getattr(user, "get_username", None)
        name = get_username() if callable(get_username) else getattr(user, "username", None)
        return str(name or user)
    except Exception:
        return None


class _Reports:
    """stderr lines, each kind at most once until it is reset."""

    def __init__(self):
        self._said = set()

    def once(self, kind, line):
        if kind in self._said:
            return
        self._said.add(kind)
        self.say(line)

    def reset(self, kind):
        self._said.discard(kind)

    @staticmethod
    def say(line):
        try:
            sys.stderr.write("minilog: %s\n" % line)
            sys.stderr.flush()
        except Exception:
            pass


def _chunks(entries):
    """The entries JSON-encoded, in lists of at most MAX_BATCH_BYTES."""
    chunk, size = [], 2
    for entry in entries:
        # "replace": a lone surrogate (from a file name, say) is not UTF-8.
        encoded = json.dumps(entry, ensure_ascii=False).encode("utf-8", "replace")
        if chunk and size + len(encoded) + 1 > MAX_BATCH_BYTES:
            yield chunk
            chunk, size = [], 2
        chunk.append(encoded)
        size += len(encoded) + 1
    if chunk:
        yield chunk


_live_handlers = weakref.WeakSet()


def _after_fork_in_child():
    # The parent's thread does not exist here and the parent still sends what
    # it had queued: start empty, with fresh locks.
    for handler in list(_live_handlers):
        handler._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class MinilogHandler(logging.Handler):
    """A ``logging.Handler`` that sends records to minilog in the background.

    All arguments are optional; ``url`` and ``key`` default to the settings
    (``MINILOG_URL``/``MINILOG_KEY`` or ``MINIMAL_LOG_URL``/
    ``MINIMAL_LOG_AUTH_KEY``, from Django settings or the environment), read
    when the first batch is sent.

    - ``source``: the entry's source; default the logger's name (then the
      logger name is not repeated in ``meta``).
    - ``capacity``: records kept while minilog is unreachable; beyond it the
      oldest are dropped.
    - ``batch_size``: records per request (at most 1000).
    - ``timeout``: seconds per request.
    - ``max_backoff``: longest pause between retries, in seconds.
    - ``flush_timeout``: how long ``flush()`` and the exit wait at most.
    - ``max_message_bytes``: longer messages are cut with a marker (minilog's
      own default limit).
    """

    def __init__(
        self,
        level=logging.NOTSET,
        url=None,
        key=None,
        source=None,
        capacity=10000,
        batch_size=200,
        timeout=5.0,
        max_backoff=30.0,
        flush_timeout=5.0,
        max_message_bytes=65536,
    ):
        super().__init__(level)
        #: Read by the worker before every request, so they may be changed.
        self.url = url
        self.key = key
        self.source = source
        self.capacity = max(1, int(capacity))
        self.batch_size = max(1, min(MAX_BATCH, int(batch_size)))
        self.timeout = float(timeout)
        self.max_backoff = float(max_backoff)
        self.flush_timeout = float(flush_timeout)
        self.max_message_bytes = int(max_message_bytes)
        self._host = socket.gethostname()
        self._init_state()
        _live_handlers.add(self)

    def _init_state(self):
        self._cond = threading.Condition(threading.Lock())
        self._queue = collections.deque()
        self._in_flight = 0
        self._thread = None
        self._pid = os.getpid()
        self._closing = False
        self._closed = False
        # Set by flush(): retry now instead of finishing the pause.
        self._hurry = False
        # time.monotonic() after which a closing worker gives up.
        self._give_up_at = None
        # time.monotonic() when flush() last returned with records left.
        self._flush_gave_up_at = None
        self._sent = 0
        self._dropped = 0
        self._dropped_unreported = 0
        # At most one drop report a minute while the queue stays near full.
        self._drops_reported_at = None
        self._failed = 0
        # Records the worker gave up on at exit.
        self._abandoned = 0
        self._reports = _Reports()

    def _reset_after_fork(self):
        self._init_state()

    # -- the caller's side: no network, no waiting ---------------------------

    def emit(self, record):
        if threading.current_thread() is self._thread:
            return  # something the worker itself logged: sending it could loop
        try:
            entry = self._entry(record)
        except Exception:
            self.handleError(record)
            return
        self._enqueue(entry)

    def _enqueue(self, entry):
        with self._cond:
            if self._closed:
                self._failed += 1
                return
            if len(self._queue) >= self.capacity:
                self._queue.popleft()
                self._dropped += 1
                self._dropped_unreported += 1
            self._queue.append(entry)
            self._ensure_worker()
            if len(self._queue) == 1:
                # Only an idle worker waits for records; one pausing between
                # retries should not be woken by every new one.
                self._cond.notify_all()

    def _ensure_worker(self):
        if self._thread is not None and self._thread.is_alive():
            return
        thread = threading.Thread(target=self._run, name="minilog-handler", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            # Interpreter shutting down: the record stays queued and is
            # reported as undelivered by close().
            return
        self._thread = thread

    def _entry(self, record):
        message = self.format(record)
        if len(message.strip()) < 3:
            # minilog needs 3 characters; keep short messages recognisable.
            message = "%s (%s)" % (message.strip() or "(empty message)", record.name)
        message = _cut_bytes(message, self.max_message_bytes)
        meta = {}
        if self.source:
            meta["logger"] = record.name
        meta["module"] = record.module
        meta["function"] = record.funcName
        meta["line"] = record.lineno
        meta["thread"] = record.threadName
        meta["process"] = record.process
        meta["host"] = self._host
        if record.exc_info and record.exc_info[0] is not None:
            lines = traceback.format_exception_only(record.exc_info[0], record.exc_info[1])
            meta["exception"] = lines[-1].strip() if lines else record.exc_info[0].__name__
        request = getattr(record, "request", None)
        if request is not None:
            for name, attr in (("path", "path"), ("method", "method")):
                value = getattr(request, attr, None)
                if value:
                    meta[name] = value
            user = _django_user(request)
            if user:
                meta["user"] = user
        status_code = getattr(record, "status_code", None)
        if status_code is not None:
            meta["status_code"] = status_code
        for name, value in vars(record).items():
            if name in _STANDARD_ATTRS or name.startswith("_") or name in meta:
                continue
            if isinstance(value, (str, int, float, bool)):
                meta[name] = value
        meta = {
            _cut(k, MAX_META_KEY): _cut(v, MAX_META_VALUE)
            for k, v in list(meta.items())[:MAX_META_PAIRS]
            if v is not None
        }
        return {
            "message": message,
            "level": level_name(record.levelno),
            "source": _cut(self.source or record.name or "python", MAX_SOURCE),
            "time": record.created,
            "meta": meta,
        }

    # -- the worker ----------------------------------------------------------

    def _run(self):
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue or self._out_of_time_locked():
                    return
                batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
                self._in_flight = len(batch)
            try:
                abandoned = 0
                for chunk in _chunks(batch):
                    abandoned += self._deliver(chunk)
            except Exception as e:  # a bug here must not kill the worker silently
                self._reports.say("internal error, %d records lost: %r" % (len(batch), e))
                abandoned = 0
                with self._cond:
                    self._failed += len(batch)
            with self._cond:
                self._in_flight = 0
                self._abandoned += abandoned
                drops = 0
                now = time.monotonic()
                if (
                    self._dropped_unreported
                    and len(self._queue) < self.capacity
                    and (self._drops_reported_at is None or now - self._drops_reported_at >= 60)
                ):
                    drops, self._dropped_unreported = self._dropped_unreported, 0
                    self._drops_reported_at = now
                self._cond.notify_all()
            if drops:
                self._report_drops(drops)

    def _report_drops(self, count):
        self._reports.say(
            "the queue was full (capacity %d, minilog unreachable or too slow):"
            " dropped the %d oldest records" % (self.capacity, count)
        )

    def _out_of_time_locked(self):
        return self._give_up_at is not None and time.monotonic() >= self._give_up_at

    def _deliver(self, batch):
        """Sends ``batch`` (encoded entries) until stored or refused.

        Returns how many it gave up on because the handler is closing.
        """
        idempotency_key = uuid.uuid4().hex
        attempt = 0
        while batch:
            try:
                base, key = _config.resolve(self.url, self.key)
                _http.post_entries(
                    base, key, b"[" + b",".join(batch) + b"]", idempotency_key, self.timeout
                )
            except MinilogConfigError as e:
                self._reports.once("config", "%s; records are dropped" % e)
                self._count_failed(len(batch))
                return 0
            except MinilogError as e:
                if e.status == 413 and len(batch) > 1:
                    half = len(batch) // 2
                    return self._deliver(batch[:half]) + self._deliver(batch[half:])
                if e.status == 400 and e.items:
                    # All-or-nothing: nothing was stored. Send the rest.
                    bad = {i.get("index") for i in e.items}
                    self._reports.say("%s; those records are dropped" % e)
                    self._count_failed(len(bad))
                    batch = [b for i, b in enumerate(batch) if i not in bad]
                    idempotency_key = uuid.uuid4().hex
                    continue
                if not e.retryable:
                    self._reports.once(
                        "refused:%s:%s" % (e.status, e.code), "%s; records are dropped" % e
                    )
                    self._count_failed(len(batch))
                    return 0
                self._reports.once(
                    "unreachable",
                    "%s; keeping up to %d records and retrying" % (e, self.capacity),
                )
                if not self._pause(attempt, e.retry_after):
                    return len(batch)  # closing and out of time; close() reports it
                attempt += 1
                continue
            with self._cond:
                self._sent += len(batch)
            if attempt:
                self._reports.reset("unreachable")
                self._reports.say("minilog is reachable again")
            return 0
        return 0

    def _count_failed(self, n):
        with self._cond:
            self._failed += n

    def _pause(self, attempt, retry_after):
        """Waits before a retry; False when closing and the time is up."""
        delay = min(self.max_backoff, 0.25 * 2**attempt) * random.uniform(0.8, 1.2)
        if retry_after:
            delay = max(delay, min(retry_after, self.max_backoff))
        with self._cond:
            while True:
                now = time.monotonic()
                if self._give_up_at is not None:
                    if now >= self._give_up_at:
                        return False
                    delay = min(delay, self._give_up_at - now)
                if self._hurry:
                    self._hurry = False
                    return True
                if delay <= 0:
                    return True
                end = now + delay
                self._cond.wait(delay)
                delay = end - time.monotonic()

    # -- flush, close, stats -------------------------------------------------

    def stats(self):
        """Counts: ``queued``, ``in_flight``, ``sent``, ``dropped`` (queue full),
        ``failed`` (refused by minilog or not delivered)."""
        with self._cond:
            return {
                "queued": len(self._queue),
                "in_flight": self._in_flight,
                "sent": self._sent,
                "dropped": self._dropped,
                "failed": self._failed,
            }

    def flush(self, timeout=None):
        """Waits until everything queued is sent (or refused); True if so.

        Waits at most ``timeout`` seconds (default ``flush_timeout``) and makes
        a worker that is pausing between retries try again at once.
        """
        if threading.current_thread() is self._thread:
            return False
        deadline = time.monotonic() + (self.flush_timeout if timeout is None else timeout)
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            while self._queue or self._in_flight:
                if self._thread is None or not self._thread.is_alive():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
                if self._queue or self._in_flight:
                    self._hurry = True
            self._hurry = False
            drained = not self._queue and not self._in_flight
            # logging.shutdown() flushes, then closes: close() need not wait
            # a second time for a server that did not answer the first.
            self._flush_gave_up_at = None if drained else time.monotonic()
            return drained

    def close(self):
        """Sends what is queued (up to ``flush_timeout``), then stops the worker."""
        with self._cond:
            if self._closed or self._closing:
                return
            self._closing = True
            now = time.monotonic()
            recent = self._flush_gave_up_at is not None and now - self._flush_gave_up_at < 1
            self._give_up_at = now if recent else now + self.flush_timeout
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(self.flush_timeout + self.timeout + 1)
        with self._cond:
            self._closed = True
            lost = len(self._queue) + self._in_flight + self._abandoned
            self._failed += len(self._queue) + self._in_flight + self._abandoned
            self._queue.clear()
            drops, self._dropped_unreported = self._dropped_unreported, 0
        if drops:
            self._report_drops(drops)
        if lost:
            self._reports.say("%d records not delivered: minilog was unreachable at exit" % lost)
        _live_handlers.discard(self)
        super().close()
