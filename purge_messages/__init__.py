"""purge_messages: every night, delete the SMS older than MESSAGE_RETENTION_DAYS.

Reads never show them anyway (they stop at the cutoff); this is what makes
them gone, since Table Storage has no expiry of its own (docs/storage.md).
"""

import logging
from datetime import UTC, datetime

import azure.functions as func

from shared.conversations import purge_expired
from shared.settings import app_settings

logger = logging.getLogger("twilio_functions.purge_messages")


async def main(timer: func.TimerRequest) -> None:
    deleted = await purge_expired(app_settings(), datetime.now(UTC))
    logger.info("function=purge_messages deleted=%d past_due=%s", deleted, timer.past_due)
