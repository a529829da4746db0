"""voice_token: the mobile app's Voice SDK asks for an access token for its signed-in user.

The identity is the signed-in user's (App Service Authentication), never a
request parameter: otherwise anyone holding the function key could receive
another user's calls and call as them.
"""

import azure.functions as func

from shared.client_identity import issue
from shared.limits import admit, caller_scope
from shared.request_body import require_method, require_no_fields
from shared.responses import answers_problems, found
from shared.settings import app_settings
from shared.voice_token import mint

FUNCTION = "voice_token"


@answers_problems(FUNCTION)
async def main(req: func.HttpRequest) -> func.HttpResponse:
    require_method(req, ("POST",))
    require_no_fields(req)
    settings = app_settings()
    caller, identity = issue(req, settings)  # voice accepts exactly what this issues
    token = mint(settings, identity)  # 500 misconfigured before anything is counted
    await admit(settings, "voice-token", caller_scope(req, caller))
    return found(FUNCTION, token.view())
