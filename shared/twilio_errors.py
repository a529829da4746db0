"""Twilio's failures as problems a mobile client can act on.

Twilio refusing the request itself (an unverified or unreachable number, an
unsupported destination) is the client's to fix: it keeps Twilio's code and
documentation link. Twilio refusing our credentials, failing, or not
answering is not: the client gets 502/504 and the details go to the log,
without secrets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import ClientError
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

from shared.problems import TWILIO_ERROR_DOCS, Problem, recipient_opted_out

#: Twilio's "Attempt to send to unsubscribed recipient": the recipient replied STOP.
UNSUBSCRIBED = 21610


class NotSent(Exception):
    """A Twilio request that failed before any of it was sent: nothing can have been created.

    Raised from the failure (a wait for a pooled connection that timed out, a
    refused connection) by ``shared.twilio_client``, which sees the request go out.
    """


async def calling_twilio[T](request: Awaitable[T]) -> T:
    """Await a Twilio REST call, turning its failures into problems."""
    try:
        return await request
    except Exception as error:
        problem = problem_for(error)
        if problem is None:
            raise
        problem.cause = _cause(error)
        raise problem from error


def problem_for(error: BaseException) -> Problem | None:
    """The problem for a failure of a Twilio call, or None if it is not one."""
    if isinstance(error, TwilioRestException | TwilioServiceException):
        return _refusal(error)
    if isinstance(error, NotSent):
        if isinstance(error.__cause__, asyncio.TimeoutError):
            return Problem(504, "twilio-timeout", "Twilio could not be reached in time; the "
                           "request was never sent, so nothing was created and a retry is safe",
                           title="Upstream timeout")
        return Problem(502, "twilio-unavailable", "Twilio could not be reached; the request "
                       "was never sent, so nothing was created and a retry is safe",
                       title="Upstream failure")
    if isinstance(error, asyncio.TimeoutError):
        return Problem(504, "twilio-timeout", "Twilio did not answer in time; the call or "
                       "message may still have been created: retry only with the same "
                       "Idempotency-Key",
                       title="Upstream timeout")
    if isinstance(error, ClientError | OSError | TwilioException | ValueError):
        return Problem(502, "twilio-unavailable", "Twilio could not be reached or answered "
                       "with something unreadable; the call or message may still have been "
                       "created: retry only with the same Idempotency-Key",
                       title="Upstream failure")
    return None


async def reading_twilio[T](request: Awaitable[T], missing: Problem) -> T:
    """Await a Twilio request that only reads, its failures as problems; ``missing`` is
    Twilio's 404 (what was read does not exist).

    Nothing is created by reading, so every failure may be retried. Only a 429 (the
    rate, with its ``Retry-After``) and the credentials are told apart: any other
    refusal is of the app's request, not the client's to fix, so 502.
    """
    try:
        return await request
    except Exception as error:
        problem = read_problem_for(error, missing)
        if problem is None:
            raise
        problem.cause = _cause(error)
        raise problem from error


def read_problem_for(error: BaseException, missing: Problem) -> Problem | None:
    """The problem for a failure of a Twilio request that only reads (``reading_twilio``)."""
    if isinstance(error, TwilioRestException | TwilioServiceException):
        if error.status == 404:
            return missing
        if error.status in (401, 403, 429):
            return _refusal(error)
    elif isinstance(error, asyncio.TimeoutError) or isinstance(error.__cause__,
                                                                asyncio.TimeoutError):
        return Problem(504, "twilio-timeout", "Twilio did not answer in time; nothing was "
                       "changed, so a retry is safe", title="Upstream timeout")
    elif not isinstance(error, NotSent | ClientError | OSError | TwilioException | ValueError):
        return None
    return Problem(502, "twilio-unavailable", "Twilio could not be reached, failed or answered "
                   "with something unreadable; nothing was changed, so a retry is safe",
                   title="Upstream failure")


def nothing_sent(problem: Problem) -> bool:
    """Whether a problem ``calling_twilio`` raised proves Twilio created nothing and a retry
    may send: the request never left (``NotSent``), or Twilio answered 429."""
    return isinstance(problem.__cause__, NotSent) or problem.type.endswith(":twilio-rate-limited")


def _cause(error: BaseException | None) -> str:
    """What failed upstream, for the log line: the exception's type, Twilio's status."""
    if isinstance(error, NotSent):
        return f"{_cause(error.__cause__)} before sending"
    status = getattr(error, "status", None)
    return f"{type(error).__name__}{f' {status}' if status else ''}"


def _refusal(error: TwilioRestException | TwilioServiceException) -> Problem:
    status = error.status if isinstance(error.status, int) else 502
    code = error.code if isinstance(error.code, int) and error.code != status else None
    more_info = TWILIO_ERROR_DOCS.format(code=code) if code else None
    if code == UNSUBSCRIBED:
        return recipient_opted_out("to", code)
    if status == 429:
        retry_after = str(getattr(error, "retry_after", None) or "")
        retry_after = retry_after if retry_after.isascii() and retry_after.isdecimal() else "1"
        return Problem(429, "twilio-rate-limited", "Twilio is limiting the request rate; "
                       "retry after the given delay", headers={"Retry-After": retry_after},
                       twilio_code=code, more_info=more_info)
    if status in (401, 403):
        return Problem(502, "twilio-credentials", "Twilio refused the app's credentials",
                       title="Upstream configuration error", twilio_code=code)
    if status == 404 or not 400 <= status < 500:
        return Problem(502, "twilio-unavailable", "Twilio failed to process the request; "
                       "try again later", title="Upstream failure", twilio_code=code)
    return Problem(
        400 if status == 400 else 422, "twilio-refused", _message(error),
        title="Twilio refused the request", twilio_code=code, more_info=more_info,
    )


def _message(error: TwilioRestException | TwilioServiceException) -> str:
    text = str(error.msg if isinstance(error, TwilioRestException)
               else (error.detail or error.title))
    prefix = "Unable to create record: "
    return text[len(prefix):] if text.startswith(prefix) else text
