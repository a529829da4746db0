"""push_notify: each push event queued by a webhook (``shared.push``) goes to the owner's
devices through Notification Hubs.

Queue-triggered: a send that fails raises, so the Functions host makes the message
visible again and retries it; after ``maxDequeueCount`` (5 by default) it moves it to
``push-events-poison``. Log lines carry the queue message's ID, the event and the
item's SID: never the owner, the number or the text.
"""

import logging

import azure.functions as func

from shared.notification_hubs import NotificationHubsError, hub_for
from shared.push import BadEvent, describe, owner_tag, payloads, read_event
from shared.settings import app_settings

FUNCTION = "push_notify"
logger = logging.getLogger("twilio_functions.push_notify")


async def main(msg: func.QueueMessage) -> None:
    settings = app_settings()
    try:
        event = read_event(msg.get_body().decode("utf-8", "replace"))
    except BadEvent as error:
        logger.error("function=%s id=%s outcome=unreadable cause=%s", FUNCTION, msg.id,
                     str(error).replace(" ", "_"))
        raise
    hub = hub_for(settings.notification_hubs_connection, settings.notification_hubs_hub)
    if hub is None:  # queued while push was on; the settings changed since
        logger.warning("function=%s id=%s %s outcome=push_off", FUNCTION, msg.id,
                       describe(event))
        return
    tag = owner_tag(event["owner"])
    for platform, (payload, headers) in payloads(event).items():
        try:
            await hub.send(tag, platform, payload, headers)  # type: ignore[arg-type]
        except NotificationHubsError as error:
            logger.error("function=%s id=%s dequeue_count=%s %s platform=%s outcome=failed "
                         "status=%s retry_after=%s", FUNCTION, msg.id, msg.dequeue_count,
                         describe(event), platform, error.status, error.retry_after)
            raise
    logger.info("function=%s id=%s dequeue_count=%s %s outcome=sent", FUNCTION, msg.id,
                msg.dequeue_count, describe(event))
