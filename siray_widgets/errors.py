"""Every way a request can fail, as one exception class each.

Each message says what went wrong and what to do next. None of them ever holds the API key:
messages are built from status codes, the server's own error text and the task id only.
"""

from __future__ import annotations

from typing import Any


class SirayError(Exception):
    """Base class of every error this package raises."""


# --- local input -------------------------------------------------------------------------


class ValidationError(SirayError, ValueError):
    """A request field has a value the API does not accept (found before sending)."""

    def __init__(self, field: str, value: Any, problem: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        shown = field if value is None else f"{field}={_short(value)}"
        super().__init__(f"{shown} {problem}")


class SuffixError(SirayError, ValueError):
    """A Midjourney prompt suffix holds a flag this model cannot honour."""

    def __init__(self, flag: str, problem: str) -> None:
        self.flag = flag
        super().__init__(f"{flag}: {problem}")


class ConfigurationError(SirayError, ValueError):
    """An API key or base URL that cannot work, found before any request is sent.

    The message says what is wrong and never repeats the key.
    """


# --- HTTP answers ------------------------------------------------------------------------


class APIError(SirayError):
    """The API answered with an error status."""

    hint = "Check the request and try again."

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status_code = status_code
        self.server_message = message
        self.error_type = error_type
        self.code = code
        #: Seconds the server asked to wait (``Retry-After`` on a 429 or 503), if it said.
        self.retry_after = retry_after
        if retry_after is not None:
            message = f"{message} (retry after {retry_after:g} s)"
        prefix = f"HTTP {status_code}: " if status_code is not None else ""
        super().__init__(f"{prefix}{message} — {self.hint}")


class BadRequestError(APIError):
    """400 or 422: the API rejected a parameter."""

    hint = "Fix the parameter named above and send the request again."

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        self.field = field
        if field and field not in message:
            message = f"{message} (field: {field})"
        super().__init__(message, **kwargs)


class AuthenticationError(APIError):
    """401: the key is missing or wrong."""

    hint = (
        "Set SIRAY_API_KEY (or pass api_key=...) to a key from the Siray dashboard; "
        "unset it to use the offline sandbox."
    )


class PaymentRequiredError(APIError):
    """402: the account's balance is used up."""

    hint = "Top up your balance in the Siray dashboard, or use the sandbox meanwhile."


class UnknownModelError(BadRequestError):
    """The API does not know the model asked for.

    The live service answers this with HTTP 503 and the code ``model_not_found`` (not a
    400): retrying cannot help, so it is never retried.
    """

    hint = "Choose a model the API offers (the model field) and send the request again."

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("field", "model")
        super().__init__(f"unknown model: {message}", **kwargs)


class ForbiddenError(APIError):
    """403: the request is blocked (for example by moderation)."""

    hint = "Rephrase the prompt (moderation may have blocked it) or check the key's permissions."


class NotFoundError(APIError):
    """404: no task with this id (or a wrong base URL)."""

    hint = "Check the task id, and that the base URL points at the Siray API."


class RateLimitError(APIError):
    """429: too many requests; ``retry_after`` says how long the server asked to wait."""

    hint = "Wait a moment and try again, or lower how many tasks you run at once."


class ServerError(APIError):
    """5xx (or 408): the service failed; usually passing."""

    hint = "The service had a problem; try again in a minute."


class UnexpectedResponseError(APIError):
    """A 2xx answer that is not what the API promises.

    A ``code`` other than "success", a body without ``data.task_id``, or a body that is not
    JSON at all.
    """

    hint = "The server did not answer like the Siray API; check SIRAY_BASE_URL, or retry later."


# --- a workshop proxy's own refusals (siray-widgets proxy) --------------------------------


class WorkshopError(APIError):
    """A workshop proxy refused a participant's request: quota spent, paused, token expired.

    These are not retried: waiting does not help, the instructor does.
    """

    hint = "Ask the workshop's instructor."


class QuotaExceededError(WorkshopError):
    """Every task (or the spend budget) this participant's token allows is used up."""

    hint = "Your workshop allowance is used up; ask the instructor to top it up."


class ParticipantPausedError(WorkshopError):
    """The instructor paused this participant (or the whole class); running tasks still finish."""

    hint = "The instructor paused new tasks; wait until they resume the class."


class TokenExpiredError(WorkshopError):
    """The workshop token's time is over."""

    hint = "Your workshop token has expired; ask the instructor for a new one."


#: Error ``code`` a workshop proxy answers with -> the exception the client raises.
WORKSHOP_ERROR_CODES: dict[str, type[WorkshopError]] = {
    "workshop_quota_exceeded": QuotaExceededError,
    "workshop_budget_exceeded": QuotaExceededError,
    "workshop_paused": ParticipantPausedError,
    "workshop_token_expired": TokenExpiredError,
}


# --- transport and tasks -----------------------------------------------------------------


class TransportError(SirayError):
    """No HTTP answer: timeout, refused connection, DNS failure."""

    def __init__(self, message: str, *, sent: bool | None = None) -> None:
        #: Whether the request may have reached the server (False: surely not sent).
        self.sent = sent
        super().__init__(f"{message} — check your network and SIRAY_BASE_URL, then try again.")


class ClientClosedError(SirayError, RuntimeError):
    """The client was closed (or is closing) while a call used it, or is used after that."""

    def __init__(self, message: str = "this client is closed; create a new one") -> None:
        super().__init__(message)


class TaskFailedError(SirayError):
    """The task ended in FAILURE."""

    def __init__(self, task_id: str, fail_reason: str) -> None:
        self.task_id = task_id
        self.fail_reason = fail_reason
        reason = fail_reason or "no reason given"
        super().__init__(
            f"task {task_id} failed: {reason} — change the prompt or parameters and generate again."
        )


class WaitTimeoutError(SirayError, TimeoutError):
    """The task did not finish within the wait's timeout (it may still finish later)."""

    def __init__(self, task_id: str, timeout: float, last_status: str | None) -> None:
        self.task_id = task_id
        self.timeout = timeout
        self.last_status = last_status
        super().__init__(
            f"task {task_id} did not finish within {timeout:g} s (last status: "
            f"{last_status or 'unknown'}) — wait again with a longer timeout; the task keeps "
            "running on the server."
        )


def _short(value: Any, limit: int = 60) -> str:
    """A short ``repr`` of ``value`` for a message; never raises, never long.

    An int of more than 4,300 digits cannot be turned into text (Python raises a bare
    ValueError), and a long string would flood the message: both are described instead.
    Control characters come out escaped, as ``repr`` writes them.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    if isinstance(value, str) and len(value) > limit:
        value = value[: limit + 1]
    try:
        text = repr(value)
    except Exception:  # a value that cannot show itself
        return f"<a {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"
