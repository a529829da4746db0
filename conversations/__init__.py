"""conversations: the signed-in user reads and manages their threads of SMS and calls.

GET api/conversations[/{number}], POST .../{number}/read, DELETE .../{number},
PUT|DELETE .../{number}/block (docs/api.md).
"""

from datetime import UTC, datetime

import azure.functions as func

from shared import conversations
from shared.conversations import read_action
from shared.identity import read_caller
from shared.media import media_links
from shared.responses import answers_problems, done, found
from shared.settings import app_settings

FUNCTION = "conversations"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    settings = app_settings()
    caller = read_caller(req, settings)
    action = read_action(req)
    now = datetime.now(UTC)
    number = action.number or ""
    match action.name:
        case "list":
            return found(FUNCTION, await conversations.list_for(settings, caller, action.page,
                                                                now))
        case "thread":
            links = media_links(req.url, settings)
            return found(FUNCTION, await conversations.thread_for(
                settings, caller, number, action.page, now, links))
        case "read":
            return found(FUNCTION, await conversations.mark_read(
                settings, caller, number, action.up_to or "", now))
        case "delete":
            await conversations.delete(settings, caller, number)
        case "block" | "unblock":
            await conversations.block(settings, caller, number, action.name == "block", now)
    return done(FUNCTION, action.name)
