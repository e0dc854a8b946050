"""MinilogHandler against a real `minilog serve`."""

import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import free_port
from minilog_client import MinilogHandler


@pytest.fixture
def make_logger(request):
    """make_logger(handler) -> a logger that sends only to that handler; closed afterwards."""
    made = []

    def make(handler):
        logger = logging.getLogger("tests.%s.%d" % (request.node.name, len(made)))
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(handler)
        made.append((logger, handler))
        return logger

    yield make
    for logger, handler in made:
        logger.removeHandler(handler)
        handler.close()


def test_every_level_arrives_with_its_fields(minilog, key, marker, make_logger):
    handler = MinilogHandler(url=minilog.url, key=key["secret"])
    logger = make_logger(handler)
    before = time.time()
    for levelno in (logging.DEBUG, logging.INFO, 25, logging.WARNING, logging.ERROR, logging.CRITICAL):
        logger.log(levelno, "%s level %d", marker, levelno, extra={"order_id": 42})
    assert handler.flush(10)

    entries = minilog.entries(marker)
    assert [(e["message"], e["level"]) for e in entries] == [
        ("%s level 10" % marker, "debug"),
        ("%s level 20" % marker, "info"),
        ("%s level 25" % marker, "info"),
        ("%s level 30" % marker, "warn"),
        ("%s level 40" % marker, "error"),
        ("%s level 50" % marker, "critical"),
    ]
    for entry in entries:
        assert entry["source"] == logger.name
        assert entry["key_id"] == key["id"]
        meta = entry["meta"]
        assert meta["module"] == "test_handler"
        assert meta["function"] == "test_every_level_arrives_with_its_fields"
        assert int(meta["line"]) > 0
        assert meta["process"] == str(os.getpid())
        assert meta["order_id"] == "42"
        assert "exception" not in meta and "path" not in meta
    # The record's time, not the time minilog received it.
    from datetime import datetime

    first = datetime.fromisoformat(entries[0]["time"].replace("Z", "+00:00")).timestamp()
    assert before - 1 <= first <= time.time()
    assert handler.stats()["sent"] == 6


def test_an_exception_arrives_with_its_traceback(minilog, key, marker, make_logger):
    logger = make_logger(MinilogHandler(url=minilog.url, key=key["secret"], source="billing"))

    def charge_card():
        raise ValueError("card declined for %s" % marker)

    try:
        charge_card()
    except ValueError:
        logger.exception("%s payment failed", marker)
    assert logger.handlers[0].flush(10)

    [entry] = minilog.entries(marker)
    assert entry["level"] == "error"
    assert entry["source"] == "billing"
    assert entry["meta"]["logger"] == logger.name
    assert entry["message"].startswith("%s payment failed\nTraceback (most recent call last):" % marker)
    assert "in charge_card" in entry["message"]
    assert entry["message"].rstrip().endswith("ValueError: card declined for %s" % marker)
    assert entry["meta"]["exception"] == "ValueError: card declined for %s" % marker


def test_short_and_huge_messages_are_made_acceptable(minilog, key, marker, make_logger):
    handler = MinilogHandler(url=minilog.url, key=key["secret"], source=marker)
    logger = make_logger(handler)
    logger.warning("ok")
    logger.warning("x" * 100000)
    assert handler.flush(10)
    short, huge = minilog.entries(marker)
    assert short["message"] == "ok (%s)" % logger.name
    assert huge["message"].startswith("x" * 1000) and "trimmed" in huge["message"]
    assert handler.stats()["failed"] == 0


def test_a_wrong_key_is_reported_once_and_never_raises(minilog, make_logger, capfd):
    handler = MinilogHandler(url=minilog.url, key="NOT-A-KEY-NOT-A-KEY-NOT-A-KEY-00")
    logger = make_logger(handler)
    for i in range(3):
        logger.error("refused %d", i)
        handler.flush(10)
    assert handler.stats()["failed"] == 3
    err = capfd.readouterr().err
    assert err.count("answered 401") == 1, err


def test_a_full_queue_drops_the_oldest_and_says_so_once(minilog, key, marker, make_logger, capfd):
    # Nothing listens on this port: the worker keeps retrying its first batch
    # while the queue fills.
    handler = MinilogHandler(
        url="http://127.0.0.1:%d" % free_port(), key=key["secret"], capacity=10, max_backoff=0.2
    )
    logger = make_logger(handler)
    logger.error("%s record 0", marker)
    deadline = time.monotonic() + 10
    while handler.stats()["in_flight"] != 1:
        assert time.monotonic() < deadline, handler.stats()
        time.sleep(0.01)
    for i in range(1, 31):
        logger.error("%s record %d", marker, i)
    assert handler.stats() == {"queued": 10, "in_flight": 1, "sent": 0, "dropped": 20, "failed": 0}

    handler.url = minilog.url  # minilog "comes back"
    assert handler.flush(15)

    got = [int(e["message"].rsplit(" ", 1)[1]) for e in minilog.entries(marker)]
    assert got == [0] + list(range(21, 31))
    err = capfd.readouterr().err
    assert err.count("dropped the 20 oldest records") == 1, err
    assert err.count("dropped") == 1, err


def test_records_are_flushed_at_exit(minilog, key, marker):
    script = textwrap.dedent(
        """
        import logging, sys
        from minilog_client import MinilogHandler
        logging.basicConfig(level=logging.INFO, handlers=[MinilogHandler(url=sys.argv[1], key=sys.argv[2])])
        for i in range(50):
            logging.info("%s at exit %d", sys.argv[3], i)
        """
    )
    subprocess.run([sys.executable, "-c", script, minilog.url, key["secret"], marker], check=True, timeout=30)
    assert len(minilog.entries(marker)) == 50


def test_exit_gives_up_after_flush_timeout_and_says_what_was_lost(key, marker):
    script = textwrap.dedent(
        """
        import logging, sys
        from minilog_client import MinilogHandler
        handler = MinilogHandler(url=sys.argv[1], key=sys.argv[2], flush_timeout=1)
        logging.basicConfig(level=logging.INFO, handlers=[handler])
        for i in range(5):
            logging.info("%s lost %d", sys.argv[3], i)
        """
    )
    dead = "http://127.0.0.1:%d" % free_port()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script, dead, key["secret"], marker],
        check=True, timeout=30, capture_output=True, text=True,
    )
    assert time.monotonic() - started < 8
    assert "5 records not delivered" in done.stderr, done.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_sends_its_own_records_not_the_parents(minilog, key, marker, make_logger):
    # A pre-forking server (gunicorn --preload) configures logging before it
    # forks: the child starts with an empty queue and its own worker.
    handler = MinilogHandler(url="http://127.0.0.1:%d" % free_port(), key=key["secret"], max_backoff=0.2)
    logger = make_logger(handler)
    logger.error("%s from the parent", marker)  # stuck: nothing listens there yet
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            handler.url = minilog.url
            logger.error("%s from the child", marker)
            code = 0 if handler.flush(10) and handler.stats()["sent"] == 1 else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        time.sleep(0.02)
    assert os.WEXITSTATUS(status) == 0
    handler.url = minilog.url
    assert handler.flush(10)
    assert sorted(e["message"] for e in minilog.entries(marker)) == [
        "%s from the child" % marker, "%s from the parent" % marker,
    ]


def test_odd_text_and_big_batches_arrive(minilog, key, marker, make_logger):
    handler = MinilogHandler(url=minilog.url, key=key["secret"], batch_size=1000)
    logger = make_logger(handler)
    logger.warning("%s lone surrogate \udce9 and ünïcödé ✓", marker)
    for i in range(80):  # 80 × 60 KB: more than minilog takes in one request (4 MiB)
        logger.info("%s big %d %s", marker, i, "y" * 60000)
    assert handler.flush(20)
    entries = minilog.entries(marker)
    assert len(entries) == 81
    assert entries[0]["message"] == "%s lone surrogate ? and ünïcödé ✓" % marker
    assert handler.stats()["failed"] == 0
