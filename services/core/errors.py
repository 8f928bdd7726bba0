"""One error hierarchy for the platform.

Adapters translate driver errors into these (``raise ... from e``); transports map them to
status codes. Only ``Unavailable`` is transient and worth retrying.
"""

from __future__ import annotations


class CornjacketError(Exception):
    """Base of every error the platform raises on purpose."""


class InvalidInput(CornjacketError):
    """The caller sent something we refuse; retrying the same input will not help."""


class NotFound(CornjacketError):
    """The thing asked for does not exist."""


class Unavailable(CornjacketError):
    """Infrastructure (database, broker) cannot be reached now; nothing was done, retry later."""


class ConfigError(CornjacketError):
    """A setting is missing or malformed; the message names the variable and the value."""
