"""``send_log``: one entry, now, like django-minimal-log's."""

from . import _config, _http
from .errors import MinilogError


def send_log(
    message,
    level=None,
    key=None,
    url=None,
    status=None,
    source=None,
    meta=None,
    time=None,
    timeout=10.0,
    check_status=None,
):
    """Sends one entry and returns its id; raises :class:`MinilogError` on failure.

    ``level`` is any of minilog's spellings (``debug``, ``info``, ``good``/
    ``success``, ``warn``/``warning``, ``error``, ``critical``, or a Python
    level number); ``status=`` is the original's name for it, and the default
    is ``error`` like the original's. ``key`` and ``url`` default to the
    settings (``MINILOG_KEY``/``MINILOG_URL``, or the original's
    ``MINIMAL_LOG_AUTH_KEY``/``MINIMAL_LOG_URL``). ``check_status`` is
    accepted for compatibility and ignored: minilog checks the level and the
    error names the accepted values.
    """
    if level is not None and status is not None and str(level) != str(status):
        raise ValueError("send_log got level=%r and status=%r; pass one" % (level, status))
    if level is None:
        level = status if status is not None else "error"
    base, key = _config.resolve(url=url, key=key)
    entry = {"message": str(message), "level": level}
    if source is not None:
        entry["source"] = str(source)
    if meta:
        entry["meta"] = {str(k): str(v) for k, v in meta.items()}
    if time is not None:
        entry["time"] = time
    ids = _http.post_entries(base, key, entry, timeout=timeout)
    if not ids:
        raise MinilogError("minilog answered without an id")
    return ids[0]
