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
from shared.limits import admit, caller_scope
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
    device = read_device(req) if req.method == "PUT" else None
    if device is None:
        require_no_fields(req)
    hub = the_hub(settings)
    await admit(settings, "device", caller_scope(req, caller))  # each is two hub requests
    if device is None:
        await unregister(hub, caller, installation_id)
    else:
        await register(hub, caller, installation_id, device)
    log_outcome(FUNCTION, 204, outcome="removed" if device is None else "registered")
    return func.HttpResponse(status_code=204)
