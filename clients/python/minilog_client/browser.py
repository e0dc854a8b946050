"""Browser tokens (minilog's API.md, "Browser tokens"), for any framework.

A token is ``<key_id>.<expiry>.<sig>``: ``expiry`` is Unix seconds,
``sig`` is unpadded base64url of HMAC-SHA256(K, ``<key_id>|<expiry>``) and
K = SHA-256(``minilog-browser-v1:`` + secret). K can mint browser tokens and
nothing else, so a web server may keep K instead of the secret.
"""

import base64
import hashlib
import hmac
import time

#: Default lifetime of a token. minilog refuses tokens that expire more than
#: 15 minutes ahead (its default), so stay below that.
DEFAULT_TTL = 600


def signing_key(secret):
    """K, the browser-signing key derived from a key's secret (32 bytes)."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    return hashlib.sha256(b"minilog-browser-v1:" + secret).digest()


def browser_token(key_id, secret=None, *, key=None, expiry=None, ttl=DEFAULT_TTL):
    """A token for minilog's ``/minilog.js``.

    Pass the key's ``secret`` or its signing ``key`` (K, bytes or hex).
    ``expiry`` (Unix seconds) defaults to now + ``ttl``.
    """
    if (secret is None) == (key is None):
        raise TypeError("browser_token needs exactly one of secret= or key=")
    if key is None:
        key = signing_key(secret)
    elif isinstance(key, str):
        key = bytes.fromhex(key)
    if expiry is None:
        expiry = int(time.time()) + int(ttl)
    key_id = str(key_id)
    if not key_id or any(c in key_id for c in ".|"):
        raise ValueError("not a key id: %r" % (key_id,))
    payload = "%s|%d" % (key_id, int(expiry))
    mac = hmac.new(key, payload.encode("utf-8"), hashlib.sha256).digest()
    sig = base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
    return "%s.%d.%s" % (key_id, int(expiry), sig)
