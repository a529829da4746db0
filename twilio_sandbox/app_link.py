"""Where the app under development answers, for the traffic the sandbox sends it."""

from dataclasses import dataclass, field

from .errors import ActionError

#: Where the local host's controls expect the run's token (devhost.host_routes).
CONTROL_HEADER = "X-Devhost-Control"


@dataclass
class AppLink:
    """Where the app under development answers: its function URLs, and its key if enforced.

    ``functions`` maps each function's name to its URL; ``python -m devhost`` adds
    its host's controls there too: ``reset_limits``, the URL that clears the app's
    rate-limit counters (``POST`` with ``Content-Type: application/json``), and
    ``control_token``, this run's token that its controls require (``CONTROL_HEADER``).
    """

    functions: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    control_token: str | None = None

    def url(self, function: str) -> str:
        url = self.functions.get(function)
        if url is None:
            raise ActionError(409, "App not connected",
                              f"the sandbox does not know the app's {function} URL: run it with "
                              "`python -m devhost`, start it with --app-url, or give 'url'")
        return url
