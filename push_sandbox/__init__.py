"""A local stand-in for Azure Notification Hubs' data plane, so push runs offline.

It plays the REST API the app uses (installations, sends with tag expressions),
checks SAS tokens, and records, per device, the payload Notification Hubs would
hand APNs or FCM v1; it can be told to fail (429, 403, 5xx). Nothing reaches a
phone. Every behaviour cites the Microsoft page it follows. It knows Notification
Hubs on its own: it imports neither the app (``shared``) nor ``devhost``, nor the
Twilio sandbox, which serves it only as one more sub-application:

    double = NotificationHubsDouble()
    sandbox.mount(PREFIX, build_app(double))   # before sandbox.start()
    double.connection_string(f"{sandbox.base_url}{PREFIX}")
"""

from .double import DEFAULT_HUB, NotificationHubsDouble
from .faults import Fault
from .sas import FULL_RULE, LISTEN_RULE, Rule, sign
from .server import PREFIX, build_app

__all__ = ["DEFAULT_HUB", "FULL_RULE", "LISTEN_RULE", "PREFIX", "Fault", "NotificationHubsDouble",
           "Rule", "build_app", "sign"]
