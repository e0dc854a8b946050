"""One request to ``POST /api/v1/entries`` with the standard library."""

import json
import urllib.error
import urllib.request

from . import __version__
from .errors import MinilogError

USER_AGENT = "minilog-client-python/%s" % __version__


def _retry_after(headers):
    try:
        return max(0.0, float(headers.get("Retry-After")))
    except (TypeError, ValueError):
        return None


def post_entries(base_url, key, body, idempotency_key=None, timeout=5.0):
    """Posts ``body`` (one entry or a list, or their JSON bytes); returns the ids.

    Raises :class:`MinilogError` with the HTTP status (None when there was no
    answer) and minilog's error code and message.
    """
    url = base_url + "/api/v1/entries"
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    headers = {
        "Authorization": "Bearer " + key,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read().decode("utf-8"))
            return answer["ids"]
    except urllib.error.HTTPError as e:
        raise _http_error(url, e) from None
    except (OSError, ValueError, KeyError) as e:
        # URLError, refused connections and timeouts are OSErrors; a body
        # that is not the documented JSON is a ValueError or KeyError.
        reason = getattr(e, "reason", e)
        raise MinilogError("could not reach minilog at %s: %s" % (url, reason)) from None


def _http_error(url, e):
    code = None
    message = None
    items = None
    try:
        raw = e.read()
        error = json.loads(raw.decode("utf-8"))["error"]
        code = error.get("code")
        message = error.get("message")
        items = error.get("items")
        if items:
            message = "%s (%s)" % (
                message,
                "; ".join("item %s: %s" % (i.get("index"), i.get("message")) for i in items[:5]),
            )
    except Exception:
        pass
    if not message:
        message = e.reason or "no explanation"
    return MinilogError(
        "minilog at %s answered %d%s: %s"
        % (url, e.code, " " + code if code else "", message),
        status=e.code,
        code=code,
        retry_after=_retry_after(e.headers),
        items=items,
    )
