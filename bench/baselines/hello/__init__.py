"""Baseline: hello world, the least a function can do on the same host.

Same shape as ``twiml`` (anonymous, GET/POST, ``async def main``) so that
the cold-start and throughput ratios measure what ``twiml`` adds, not a
difference in how the runtime runs the function (sync functions hop to the
runtime's thread pool).
"""

import azure.functions as func


async def main(req: func.HttpRequest) -> func.HttpResponse:
    name = req.params.get("name") or "world"
    return func.HttpResponse(f"Hello, {name}!", mimetype="text/plain")
