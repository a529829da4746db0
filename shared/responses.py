"""The edge of every function: success responses, and problems as responses.

``answers_problems`` wraps a function's ``main`` so that its body can read as
the request's story and simply raise ``Problem`` on any refusal; anything
unexpected is logged with its traceback and answered as a plain 500 problem,
never with the traceback.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func

from shared.logs import log_outcome, logger
from shared.problems import Problem, internal_error

Main = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


class Answered(Exception):
    """A complete answer found before the story's end (a replayed one): sent as it is."""

    def __init__(self, response: func.HttpResponse) -> None:
        super().__init__("answered")
        self.response = response


def answers_problems(function: str) -> Callable[[Main], Main]:
    def decorate(main: Main) -> Main:
        @functools.wraps(main)
        async def guarded(req: func.HttpRequest) -> func.HttpResponse:
            try:
                return await main(req)
            except Answered as answered:
                return answered.response
            except Problem as problem:
                return _refusal(function, problem)
            except Exception as error:
                logger.exception("function=%s failed unexpectedly", function)
                _forget_tracebacks(error)
                return _refusal(function, internal_error())

        return guarded

    return decorate


def _refusal(function: str, problem: Problem) -> func.HttpResponse:
    _forget_tracebacks(problem)
    log_outcome(function, problem.status, problem=problem.type,
                field=problem.extensions.get("field"),
                twilio_code=problem.extensions.get("twilio_code"), cause=problem.cause)
    return problem.to_response()


def _forget_tracebacks(error: BaseException | None) -> None:
    """Drop the tracebacks of a handled exception and of the ones it chains to.

    Each traceback holds its frames, and a frame that named the exception
    holds it back: a reference cycle that keeps the request, its body and
    everything it touched alive until a garbage collection runs. Refusals are
    the hostile path, so they must not pile up; the log has what it needs.
    """
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += [current.__cause__, current.__context__]


def created(function: str, resource: dict[str, Any]) -> func.HttpResponse:
    """201 with the created Twilio resource's public fields."""
    log_outcome(function, 201, sid=resource.get("sid"), to=resource.get("to"))
    return func.HttpResponse(json.dumps(resource), status_code=201, mimetype="application/json")


def found(function: str, resource: dict[str, Any]) -> func.HttpResponse:
    """200 with a stored resource or a credential: private to its owner, so never cached on
    the way."""
    log_outcome(function, 200, sid=resource.get("sid"))
    return func.HttpResponse(json.dumps(resource), status_code=200, mimetype="application/json",
                             headers={"Cache-Control": "no-store"})


def done(function: str, outcome: str) -> func.HttpResponse:
    """204 to an action a signed-in user asked for, done (or already so)."""
    log_outcome(function, 204, outcome=outcome)
    return func.HttpResponse(status_code=204)


def acknowledged(function: str, sid: str, outcome: str) -> func.HttpResponse:
    """204 to a webhook whose report was taken (or deliberately not kept)."""
    log_outcome(function, 204, sid=sid, outcome=outcome)
    return func.HttpResponse(status_code=204)


def twiml(function: str, document: str, *, sid: str | None = None,
          outcome: str | None = None) -> func.HttpResponse:
    log_outcome(function, 200, sid=sid, outcome=outcome)
    return func.HttpResponse(document, status_code=200, mimetype="text/xml", charset="utf-8")
