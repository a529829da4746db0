"""status: the mobile app asks how its message or call is doing (GET api/status/{sid})."""

import azure.functions as func

from shared.deliveries import find
from shared.delivery_status import is_sid
from shared.identity import read_caller
from shared.problems import invalid_field
from shared.request_body import require_method
from shared.responses import answers_problems, found
from shared.settings import app_settings

FUNCTION = "status"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("GET",))
    settings = app_settings()
    caller = read_caller(req, settings)
    sid = req.route_params.get("sid", "")
    if not is_sid(sid):
        raise invalid_field("sid", "must be a Twilio message or call SID (SM, MM or CA and "
                            "32 hexadecimal digits)")
    delivery = await find(settings, caller, sid)
    return found(FUNCTION, delivery.view())
