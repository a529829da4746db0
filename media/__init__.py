"""media: the signed-in user sees a picture (or other file) of an incoming MMS
(GET api/media/{message_sid}/{n}), or hears a voicemail (GET api/media/{RE...}/0),
passed on from Twilio, which requires credentials."""

from datetime import UTC, datetime

import azure.functions as func

from shared.identity import read_caller
from shared.limits import admit, caller_scope
from shared.media import find_source, media_response, read_media_ref
from shared.request_body import require_method
from shared.responses import answers_problems
from shared.settings import app_settings

FUNCTION = "media"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("GET",))
    settings = app_settings()
    caller = read_caller(req, settings)
    ref = read_media_ref(req.route_params)
    fetch = await find_source(settings, caller, ref, datetime.now(UTC))
    await admit(settings, "media", caller_scope(req, caller))
    media = await fetch()
    return media_response(FUNCTION, ref, media)
