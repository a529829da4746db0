"""media: the signed-in user sees a picture (or other file) of an incoming MMS
(GET api/media/{message_sid}/{n}), passed on from Twilio, which requires credentials."""

from datetime import UTC, datetime

import azure.functions as func

from shared.identity import read_caller
from shared.limits import admit, caller_scope
from shared.media import fetch_media, find_media_url, media_response, media_sid, read_media_ref
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
    url = await find_media_url(settings, caller, ref, datetime.now(UTC))
    sid = media_sid(url, settings, ref)
    await admit(settings, "media", caller_scope(req, caller))
    media = await fetch_media(settings, ref, sid)
    return media_response(FUNCTION, ref, media)
