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


def answers_problems(function: str) -> Callable[[Main], Main]:
    def decorate(main: Main) -> Main:
        @functools.wraps(main)
        async def guarded(req: func.HttpRequest) -> func.HttpResponse:
            try:
                return await main(req)
            except Problem as problem:
                refused = problem
            except Exception:
                logger.exception("function=%s failed unexpectedly", function)
                refused = internal_error()
            log_outcome(function, refused.status, problem=refused.type,
                        twilio_code=refused.extensions.get("twilio_code"), cause=refused.cause)
            return refused.to_response()

        return guarded

    return decorate


def created(function: str, resource: dict[str, Any]) -> func.HttpResponse:
    """201 with the created Twilio resource's public fields."""
    log_outcome(function, 201, sid=resource.get("sid"), to=resource.get("to"))
    return func.HttpResponse(json.dumps(resource), status_code=201, mimetype="application/json")


def twiml(function: str, document: str) -> func.HttpResponse:
    log_outcome(function, 200)
    return func.HttpResponse(document, status_code=200, mimetype="text/xml", charset="utf-8")
