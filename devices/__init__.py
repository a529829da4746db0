"""devices: the mobile app registers the signed-in user's device for push notifications
(PUT api/devices/{installation_id}) or removes it (DELETE), in Notification Hubs."""

import azure.functions as func

from shared.devices import (
    device_owner,
    read_device,
    read_installation_id,
    register,
    the_hub,
    unregister,
)
from shared.logs import log_outcome
from shared.request_body import require_method, require_no_fields
from shared.responses import answers_problems
from shared.settings import app_settings

FUNCTION = "devices"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    settings = app_settings()
    caller = device_owner(req, settings)  # first: no user learns more than 401
    require_method(req, ("PUT", "DELETE"))
    installation_id = read_installation_id(req.route_params)
    if req.method == "PUT":
        device = read_device(req)
        await register(the_hub(settings), caller, installation_id, device)
    else:
        require_no_fields(req)
        await unregister(the_hub(settings), caller, installation_id)
    log_outcome(FUNCTION, 204, outcome="registered" if req.method == "PUT" else "removed")
    return func.HttpResponse(status_code=204)
