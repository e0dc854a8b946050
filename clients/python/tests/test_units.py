"""What needs no server: tokens, levels, settings."""

import logging
import sys

import pytest

from minilog_client import MinilogConfigError, browser_token, level_name, signing_key
from minilog_client import _config

VECTOR_SECRET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def test_browser_token_matches_the_api_test_vector():
    assert (
        signing_key(VECTOR_SECRET).hex()
        == "73ee9e7923920fee1f42201f346979f55dc191e53beaf7fca7457b2d8a94bc3a"
    )
    token = "k7f3a9.1800000000.bI2fgUoY1FQ02oZsemytZL-wdSr_W2KndxQKD2Ihylg"
    assert browser_token("k7f3a9", VECTOR_SECRET, expiry=1800000000) == token
    # The signing key alone (bytes or hex) makes the same token.
    assert browser_token("k7f3a9", key=signing_key(VECTOR_SECRET), expiry=1800000000) == token
    assert browser_token("k7f3a9", key=signing_key(VECTOR_SECRET).hex(), expiry=1800000000) == token


def test_browser_token_expires_ttl_seconds_from_now():
    import time

    before = int(time.time())
    key_id, expiry, sig = browser_token("k7f3a9", VECTOR_SECRET, ttl=300).split(".")
    assert key_id == "k7f3a9" and before + 300 <= int(expiry) <= int(time.time()) + 300
    assert "=" not in sig and len(sig) == 43
    with pytest.raises(TypeError):
        browser_token("k7f3a9")


def test_python_levels_round_down_to_minilog_levels():
    assert [level_name(n) for n in (1, 10, 19, 20, 25, 30, 35, 40, 49, 50, 60)] == [
        "debug", "debug", "debug", "info", "info", "warn", "warn", "error", "error",
        "critical", "critical",
    ]


@pytest.fixture
def no_django(monkeypatch):
    # Settings come from Django only when it is imported and configured;
    # hide it so these tests see the environment alone.
    monkeypatch.delitem(sys.modules, "django.conf", raising=False)
    for name in ("MINILOG_URL", "MINILOG_KEY", "MINIMAL_LOG_URL", "MINIMAL_LOG_AUTH_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_settings_come_from_the_environment_with_the_original_names_too(no_django, monkeypatch):
    monkeypatch.setenv("MINIMAL_LOG_URL", "https://logs.example/log/add/")
    monkeypatch.setenv("MINIMAL_LOG_AUTH_KEY", "OLD-KEY")
    assert _config.resolve() == ("https://logs.example", "OLD-KEY")
    monkeypatch.setenv("MINILOG_URL", "https://new.example/")
    monkeypatch.setenv("MINILOG_KEY", "NEW-KEY")
    assert _config.resolve() == ("https://new.example", "NEW-KEY")
    assert _config.resolve(url="http://x.example/api/v1/entries", key="K") == ("http://x.example", "K")


def test_missing_settings_name_what_to_set(no_django):
    with pytest.raises(MinilogConfigError) as e:
        _config.resolve()
    assert "MINILOG_URL" in str(e.value) and "MINILOG_KEY" in str(e.value)
    with pytest.raises(MinilogConfigError):
        _config.resolve(url="logs.example", key="K")


def test_emit_never_raises_even_unconfigured(no_django, capsys):
    from minilog_client import MinilogHandler

    handler = MinilogHandler(flush_timeout=2)
    logger = logging.getLogger("units.unconfigured")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.error("nobody will get this")
        logger.error("%d formatting goes wrong", "not a number")  # handleError, no raise
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
    err = capsys.readouterr().err
    assert err.count("minilog is not configured") == 1
