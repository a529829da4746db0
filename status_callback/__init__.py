"""status_callback: Twilio reports each step of a message or call the app created.

Anonymous on purpose, like ``twiml``: Twilio's request signature (and the
account it names) authenticates the request. Imports no ``twilio.rest``.
"""

from datetime import UTC, datetime

import azure.functions as func

from shared.deliveries import callback_owner, record_report
from shared.delivery_status import read_report
from shared.request_body import require_method
from shared.responses import acknowledged, answers_problems
from shared.settings import app_settings
from shared.webhook import read_webhook

FUNCTION = "status_callback"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("POST",))
    settings = app_settings()
    params = read_webhook(req, settings)
    report = read_report(params, req.headers, datetime.now(UTC))
    outcome = await record_report(settings, report, callback_owner(params))
    return acknowledged(FUNCTION, report.sid, outcome)
