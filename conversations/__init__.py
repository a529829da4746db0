"""conversations: the signed-in user reads their SMS threads (GET api/conversations[/{number}])."""

from datetime import UTC, datetime

import azure.functions as func

from shared.conversations import list_for, list_page, message_page, read_number, thread_for
from shared.identity import read_caller
from shared.media import media_links
from shared.request_body import require_method
from shared.responses import answers_problems, found
from shared.settings import app_settings

FUNCTION = "conversations"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("GET",))
    settings = app_settings()
    caller = read_caller(req, settings)
    now = datetime.now(UTC)
    if not req.route_params.get("number"):
        return found(FUNCTION, await list_for(settings, caller, list_page(req.params), now))
    number = read_number(req.route_params["number"])
    page = message_page(req.params)
    links = media_links(req.url, settings)
    return found(FUNCTION, await thread_for(settings, caller, number, page, now, links))
