"""minilog down: the caller is not slowed, nothing is lost, nothing doubles."""

import logging
import time

from minilog_client import MinilogHandler


def test_server_down_log_calls_stay_fast_and_arrive_once_when_it_is_back(minilog, key, marker):
    handler = MinilogHandler(url=minilog.url, key=key["secret"], batch_size=100, max_backoff=0.5)
    logger = logging.getLogger("tests.outage")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.info("%s before the outage", marker)
        assert handler.flush(10)

        minilog.stop()
        started = time.monotonic()
        for i in range(1000):
            logger.error("%s during the outage %d", marker, i)
        elapsed = time.monotonic() - started
        # The connect timeout is 5 s; 1000 calls doing any network work
        # would take far longer than this.
        assert elapsed < 1.0, "1000 log calls took %.2f s" % elapsed
        print("1000 log calls with minilog down: %.3f s" % elapsed)
        stats = handler.stats()
        assert stats["sent"] == 1 and stats["queued"] + stats["in_flight"] == 1000, stats

        minilog.start()  # same data directory, same port
        assert handler.flush(30), handler.stats()
    finally:
        logger.removeHandler(handler)
        handler.close()
        if minilog.process is None:
            minilog.start()

    entries = minilog.entries(marker)
    messages = [e["message"] for e in entries]
    assert len(messages) == len(set(messages)) == 1001
    assert set(messages) == {"%s before the outage" % marker} | {
        "%s during the outage %d" % (marker, i) for i in range(1000)
    }
    assert handler.stats() == {"queued": 0, "in_flight": 0, "sent": 1001, "dropped": 0, "failed": 0}


def test_a_lost_answer_is_retried_with_the_same_idempotency_key_and_stored_once(minilog, key, marker):
    import http.server
    import threading
    import urllib.request

    seen = []

    class LosesFirstAnswer(http.server.BaseHTTPRequestHandler):
        """Forwards to minilog; the first answer never reaches the client."""

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers["Idempotency-Key"])
            forward = urllib.request.Request(minilog.url + self.path, data=body, headers=dict(self.headers))
            with urllib.request.urlopen(forward, timeout=10) as r:
                answer = r.read()
            if len(seen) == 1:
                self.close_connection = True  # stored, but the client hears nothing
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LosesFirstAnswer)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    handler = MinilogHandler(url="http://127.0.0.1:%d" % proxy.server_address[1], key=key["secret"], max_backoff=0.2)
    logger = logging.getLogger("tests.lost-answer")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(3):
            logger.error("%s retried %d", marker, i)
        assert handler.flush(10)
    finally:
        logger.removeHandler(handler)
        handler.close()
        proxy.shutdown()
        proxy.server_close()

    assert len(seen) >= 2 and seen[0] and seen[1] == seen[0]
    assert sorted(e["message"] for e in minilog.entries(marker)) == [
        "%s retried %d" % (marker, i) for i in range(3)
    ]
