"""Django helpers: the template context processor for browser errors.

Add ``"minilog_client.django.browser"`` to ``TEMPLATES[...]["OPTIONS"]
["context_processors"]`` and put ``{{ MINILOG_BROWSER_SCRIPT }}`` in the
``<head>`` before other scripts. It renders the ``<script>`` tag for
minilog's ``/minilog.js`` with a fresh token (``minilog_client.browser``).

Settings (Django settings or environment): ``MINILOG_KEY_ID`` (the key's id,
``k7f3a9``; a token names it), ``MINILOG_KEY`` (or ``MINIMAL_LOG_AUTH_KEY``),
``MINILOG_URL`` (or ``MINIMAL_LOG_URL``) and, when browsers reach minilog at
another address than this server does, ``MINILOG_PUBLIC_URL``.
``MINILOG_BROWSER_TOKEN_TTL`` sets the token's lifetime in seconds (default
600; minilog refuses more than its limit, 15 minutes by default). The key
must allow the site's origin (``minilog key create --origin
https://shop.example``).
"""

import warnings

from django.utils.html import format_html

from . import _config
from .browser import DEFAULT_TTL, browser_token

_warned = set()


def _warn_once(message):
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def browser_script(ttl=None):
    """The ``<script>`` tag with a fresh token, or ``""`` when not configured."""
    key_id = _config.setting(_config.KEY_ID_NAMES)
    secret = _config.setting(_config.KEY_NAMES)
    url = _config.setting(_config.PUBLIC_URL_NAMES) or _config.setting(_config.URL_NAMES)
    missing = [
        name
        for name, value in (
            ("MINILOG_KEY_ID", key_id),
            ("MINILOG_KEY", secret),
            ("MINILOG_URL", url),
        )
        if not value
    ]
    if missing:
        _warn_once(
            "minilog: MINILOG_BROWSER_SCRIPT is empty because %s is not set" % ", ".join(missing)
        )
        return ""
    if ttl is None:
        ttl = int(_config.setting(("MINILOG_BROWSER_TOKEN_TTL",)) or DEFAULT_TTL)
    token = browser_token(key_id, secret, ttl=ttl)
    return format_html(
        '<script src="{}/minilog.js" data-token="{}"></script>', _config.base_url(url), token
    )


def browser(request):
    """Context processor: ``MINILOG_BROWSER_SCRIPT``."""
    return {"MINILOG_BROWSER_SCRIPT": browser_script()}
