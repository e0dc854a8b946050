"""send_log, the original's synchronous call, against a real minilog."""

import pytest

from conftest import free_port
from minilog_client import MinilogError, MinimalLogError, send_log


def test_send_log_stores_one_entry_and_returns_its_id(minilog, key, marker):
    entry_id = send_log(
        "%s disk almost full" % marker, level="warning", key=key["secret"], url=minilog.url,
        source="db-1", meta={"mount": "/var"},
    )
    [entry] = minilog.entries(marker)
    assert entry["id"] == entry_id
    assert (entry["level"], entry["source"], entry["meta"]) == ("warn", "db-1", {"mount": "/var"})


def test_send_log_takes_the_originals_form_url_and_status(minilog, key, marker):
    # django-minimal-log's call: a form URL, status=, default level error.
    send_log("%s backup ok" % marker, key=key["secret"], url=minilog.url + "/log/add/", status="good")
    send_log("%s backup failed" % marker, key=key["secret"], url=minilog.url + "/log/add/")
    assert [e["level"] for e in minilog.entries(marker)] == ["good", "error"]


def test_send_log_raises_a_clear_error(minilog, key):
    with pytest.raises(MinilogError) as e:
        send_log("bad level", level="loud", key=key["secret"], url=minilog.url)
    assert e.value.status == 400 and "warn" in str(e.value)  # names the accepted values
    with pytest.raises(MinimalLogError) as e:  # the original's name still catches it
        send_log("bad key", key="NOT-A-KEY-NOT-A-KEY-NOT-A-KEY-00", url=minilog.url)
    assert e.value.status == 401
    with pytest.raises(MinilogError) as e:
        send_log("nobody there", key=key["secret"], url="http://127.0.0.1:%d" % free_port(), timeout=2)
    assert e.value.status is None and "could not reach" in str(e.value)
