"""The exceptions of minilog_client."""


class MinilogError(Exception):
    """Sending to minilog failed; the message says why and what to fix."""

    def __init__(self, message, status=None, code=None, retry_after=None, items=None):
        super().__init__(message)
        #: For ``invalid_items``: ``[{"index": 3, "code": ..., "message": ...}]``.
        self.items = items or []
        #: HTTP status, or None when no answer came (connection refused, timeout).
        self.status = status
        #: minilog's error code (``invalid_items``, ``unknown_key``, ...), if any.
        self.code = code
        #: Seconds from a ``Retry-After`` header, if any.
        self.retry_after = retry_after

    @property
    def retryable(self):
        """True when the same request may succeed later (no answer, 429, 5xx)."""
        return self.status is None or self.status == 429 or self.status >= 500


class MinilogConfigError(MinilogError):
    """The URL or key is missing or malformed."""


# The original's name, so `except MinimalLogError` keeps working.
MinimalLogError = MinilogError
