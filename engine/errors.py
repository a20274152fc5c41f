"""Error classes the engine retries, pauses or gives up on.

Every failure an item can meet is mapped to one :class:`ErrorClass`; the retry
policy, the circuit breaker and the performance report all key on it. The names
of the seed's API (``BatchProcessingError``, ``RateLimitError``, ``NetworkError``,
``GitHubAPIError``) are kept so code written against the seed reads naturally.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    RATE_LIMITED = "rate_limited"
    SECONDARY_LIMITED = "secondary_limited"
    NETWORK = "network"
    TIMEOUT = "timeout"
    SERVER = "server"
    CLIENT = "client"
    AUTH = "auth"
    UNEXPECTED = "unexpected"


class BatchProcessingError(Exception):
    """Base of every error the engine understands.

    ``retry_after`` (seconds) is honoured by the retry policy when set;
    ``fatal`` errors stop the whole run (nothing is lost: unfinished items stay
    pending and the run can be resumed once the cause is fixed).
    """

    error_class: ErrorClass = ErrorClass.UNEXPECTED
    fatal: bool = False

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
        lane: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.status_code = status_code
        self.lane = lane


class RateLimitError(BatchProcessingError):
    """A primary rate-limit bucket is empty; ``reset_time`` is its epoch reset."""

    error_class = ErrorClass.RATE_LIMITED

    def __init__(self, message: str, reset_time: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.reset_time = reset_time


class SecondaryRateLimitError(RateLimitError):
    error_class = ErrorClass.SECONDARY_LIMITED


class NetworkError(BatchProcessingError):
    error_class = ErrorClass.NETWORK


class RequestTimeoutError(NetworkError):
    error_class = ErrorClass.TIMEOUT


class GitHubAPIError(BatchProcessingError):
    """An HTTP error answer; subclasses say whether it is worth retrying."""

    error_class = ErrorClass.CLIENT

    def __init__(self, message: str, status_code: int | None = None, **kw) -> None:
        super().__init__(message, status_code=status_code, **kw)


class ServerError(GitHubAPIError):
    error_class = ErrorClass.SERVER


class ClientError(GitHubAPIError):
    error_class = ErrorClass.CLIENT


class AuthError(GitHubAPIError):
    """401/bad credentials: retrying cannot help and would storm the API."""

    error_class = ErrorClass.AUTH
    fatal = True


class InputError(Exception):
    """Bad input from the user (config, spec, CLI args, IOC list, a corrupt DB).

    The CLI prints ``str(error)`` on one line and exits 2. The message must name
    the file, key or line at fault.
    """


def classify(exc: BaseException) -> ErrorClass:
    """Map any exception to an :class:`ErrorClass`."""
    if isinstance(exc, BatchProcessingError):
        return exc.error_class
    if isinstance(exc, TimeoutError):
        return ErrorClass.TIMEOUT
    if isinstance(exc, ConnectionError | OSError):
        return ErrorClass.NETWORK
    return ErrorClass.UNEXPECTED
