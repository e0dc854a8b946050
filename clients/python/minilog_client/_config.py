"""Where minilog is and which key to use.

Each value comes from the first place that has it: an explicit argument,
Django settings (only when Django is already imported and configured), then
the environment. minilog's own names come before the ones of
django-minimal-log (``MINIMAL_LOG_URL``, ``MINIMAL_LOG_AUTH_KEY``), so a
project that switches keeps working with its old settings.
"""

import os
import sys

from .errors import MinilogConfigError

URL_NAMES = ("MINILOG_URL", "MINIMAL_LOG_URL")
KEY_NAMES = ("MINILOG_KEY", "MINIMAL_LOG_AUTH_KEY")
KEY_ID_NAMES = ("MINILOG_KEY_ID",)
PUBLIC_URL_NAMES = ("MINILOG_PUBLIC_URL",)

# Paths a configured URL may end with: the original's form endpoint and
# minilog's JSON endpoint. What remains is the server's base URL.
_ENDPOINT_SUFFIXES = ("/log/add", "/api/v1/entries")


def _django_setting(name):
    # Never import Django here: a plain Python program should not pay for it,
    # and touching unconfigured settings raises.
    conf = sys.modules.get("django.conf")
    if conf is None:
        return None
    try:
        settings = conf.settings
        if not settings.configured:
            return None
        value = getattr(settings, name, None)
    except Exception:
        return None
    return value if value not in (None, "") else None


def setting(names, explicit=None):
    """The first value found for ``names``: explicit, Django settings, environment."""
    if explicit not in (None, ""):
        return explicit
    for name in names:
        value = _django_setting(name)
        if value is not None:
            return value
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def base_url(url):
    """The server's base URL from a configured one.

    Accepts the base (``https://logs.example.com``), the original's form URL
    (``https://logs.example.com/log/add/``) or the JSON endpoint.
    """
    base = str(url).strip().rstrip("/")
    for suffix in _ENDPOINT_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    if not base.startswith(("http://", "https://")):
        raise MinilogConfigError(
            "minilog URL must start with http:// or https:// (got %r)" % (url,)
        )
    return base


def resolve(url=None, key=None):
    """``(base_url, key)``, or :class:`MinilogConfigError` naming what is missing."""
    url = setting(URL_NAMES, url)
    key = setting(KEY_NAMES, key)
    missing = []
    if not url:
        missing.append("MINILOG_URL (or MINIMAL_LOG_URL)")
    if not key:
        missing.append("MINILOG_KEY (or MINIMAL_LOG_AUTH_KEY)")
    if missing:
        raise MinilogConfigError(
            "minilog is not configured: set %s in Django settings or the environment,"
            " or pass url= and key=" % " and ".join(missing)
        )
    return base_url(url), str(key)
