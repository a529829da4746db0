"""The mobile app's devices, registered with Notification Hubs for push (``devices``).

An installation lives in Notification Hubs only ("Installations API"), tagged with
its owner alone (``shared.push.owner_tag``), never with a tag the client chooses: a
push to a user's tag reaches that user's devices and nobody else's. Ownership is read
back from the hub: an installation ID whose installation carries another owner's tag
is refused (403), so nobody replaces or removes another user's device. Installation
IDs are random per app install (``identifierForVendor``, Firebase installation IDs),
so the read-then-write leaves no practical race.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass

import azure.functions as func

from shared.identity import Caller, read_caller
from shared.notification_hubs import (
    Installation,
    NotificationHub,
    NotificationHubsError,
    Platform,
    hub_for,
)
from shared.problems import Problem, invalid_field, sign_in_required
from shared.push import owner_tag
from shared.request_body import read_payload
from shared.settings import Settings

PLATFORMS: tuple[Platform, ...] = ("apns", "fcmv1")
FIELDS = ("platform", "push_channel", "locale")
_INSTALLATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# APNs device tokens are hex (32 bytes today; Apple warns they may grow); FCM
# registration tokens are URL-safe text of about 160 characters.
_CHANNELS = {"apns": re.compile(r"[0-9a-fA-F]{64,200}"),
             "fcmv1": re.compile(r"[A-Za-z0-9_:.-]{32,4096}")}
_LOCALE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}")  # BCP 47, as devices send it


@dataclass(frozen=True)
class Device:
    """What a client registers: its platform and push channel (device token)."""

    platform: Platform
    push_channel: str
    locale: str | None


def device_owner(req: func.HttpRequest, settings: Settings) -> Caller:
    """The signed-in user, or the single user of a setup without sign-in
    (``VOICE_SINGLE_USER_IDENTITY``, as ``voice_token``); 401 otherwise."""
    caller = read_caller(req, settings)
    if not caller.signed_in and settings.voice_single_user_identity is None:
        raise sign_in_required()
    return caller


def read_installation_id(route: Mapping[str, str]) -> str:
    installation_id = route.get("installation_id", "")
    if not _INSTALLATION_ID.fullmatch(installation_id):
        raise invalid_field("installation_id", "must be 1 to 128 letters, digits, '_', '.' "
                            "or '-', starting with a letter or digit")
    return installation_id


def read_device(req: func.HttpRequest) -> Device:
    """The body of ``PUT``: ``platform``, ``push_channel``, optional ``locale``; 400 naming
    the field that is wrong."""
    payload = read_payload(req)
    payload.reject_unknown(FIELDS)
    platform = payload.text("platform", max_length=8, required=True)
    if platform not in PLATFORMS:
        raise invalid_field("platform", "must be apns or fcmv1")
    channel = payload.text("push_channel", max_length=4096, required=True)
    if channel is None or not _CHANNELS[platform].fullmatch(channel):
        raise invalid_field("push_channel", "must be the device's APNs token (hex)"
                            if platform == "apns" else "must be the device's FCM "
                            "registration token")
    locale = payload.text("locale", max_length=35)
    if locale is not None and not _LOCALE.fullmatch(locale):
        raise invalid_field("locale", "must be a language tag like en or pt-BR")
    return Device(platform, channel, locale)  # type: ignore[arg-type]


def the_hub(settings: Settings) -> NotificationHub:
    hub = hub_for(settings.notification_hubs_connection, settings.notification_hubs_hub)
    if hub is None:
        raise Problem(503, "push-off", "push notifications are not configured on this app "
                      "(NOTIFICATION_HUBS_CONNECTION, NOTIFICATION_HUBS_HUB)",
                      title="Push notifications off")
    return hub


async def register(hub: NotificationHub, caller: Caller, installation_id: str,
                   device: Device) -> None:
    """Create or replace the caller's installation; 403 if it is another user's."""
    tag = owner_tag(caller.owner)
    await _check_owner(hub, installation_id, tag)
    installation = Installation(installation_id, device.platform, device.push_channel, (tag,))
    await _calling(hub.put_installation(installation))


async def unregister(hub: NotificationHub, caller: Caller, installation_id: str) -> None:
    """Remove the caller's installation (none at all: done already); 403 if another's."""
    if await _check_owner(hub, installation_id, owner_tag(caller.owner)):
        await _calling(hub.delete_installation(installation_id))


async def _check_owner(hub: NotificationHub, installation_id: str, tag: str) -> bool:
    """Whether the hub has the installation; 403 when it is not the caller's."""
    existing = await _calling(hub.get_installation(installation_id))
    if existing is not None and tag not in existing.tags:
        problem = Problem(403, "installation-not-yours", f"installation {installation_id} "
                          "is registered to another user", title="Not your installation")
        problem.cause = "installation tagged for another owner"
        raise problem
    return existing is not None


async def _calling[T](operation: Awaitable[T]) -> T:
    """The hub's answer; its failure as 503 (with the hub's ``Retry-After`` if it gave one)."""
    try:
        return await operation
    except NotificationHubsError as error:
        wait = error.retry_after or 5
        problem = Problem(503, "push-unavailable", "Notification Hubs could not be reached or "
                          "refused the request; retry later", title="Push service unavailable",
                          headers={"Retry-After": str(wait)})
        problem.cause = f"Notification Hubs status {error.status}"
        raise problem from None
