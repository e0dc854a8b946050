"""minilog's Python client: a logging handler, ``send_log`` and browser tokens.

Standard library only; :mod:`minilog_client.django` needs Django.

- :class:`MinilogHandler`: a ``logging.Handler`` that never raises into the
  caller and never blocks it (a background thread batches to minilog).
- :func:`send_log`: one entry, synchronously, raising :class:`MinilogError`.
- :func:`browser_token`: tokens for minilog's ``/minilog.js``.
"""

__version__ = "0.1.0"

from .browser import browser_token, signing_key  # noqa: E402
from .errors import MinilogConfigError, MinilogError, MinimalLogError  # noqa: E402
from .handler import MinilogHandler, level_name  # noqa: E402
from .send import send_log  # noqa: E402

__all__ = [
    "MinilogHandler",
    "MinilogError",
    "MinilogConfigError",
    "MinimalLogError",
    "browser_token",
    "level_name",
    "send_log",
    "signing_key",
]
