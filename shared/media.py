"""The media of incoming MMS, and voicemails' recordings, passed on from Twilio to their
owner (the ``media`` function).

Twilio keeps what a texter sends and "enforces HTTP Basic Authentication for all media
URLs" (https://www.twilio.com/docs/messaging/api/media-resource), so the ``MediaUrl``
of its webhook is of no use to a mobile client. ``conversations`` lists each as a link
to ``media/{sid}/{n}`` instead (``media_links``), and ``media`` fetches it with the
account's credentials:

1. The URL the webhook gave, kept with the message, must be a Media resource of this
   account and this message on ``TWILIO_API_BASE_URL``. Any other is never fetched:
   nobody may make the app request an address of their choosing.
2. Its metadata (``.../Media/{ME}.json``, through the ``twilio`` library): the content
   type Twilio gave it.
3. Its content (the URL without extension). Twilio answers with a redirect: "Requests
   to fetch your media will redirect you to a secure URL that is only valid for 4
   hours" (https://help.twilio.com/articles/223183748). Up to ``MAX_REDIRECTS`` are
   followed, to https (or to the API's own origin), and the credentials go to the
   API's origin only. At most ``MEDIA_MAX_BYTES`` are read, each request within
   ``TWILIO_TIMEOUT_SECONDS``.

A voicemail's recording (``media/{RE...}/0``) is found on the caller's thread by its SID
(``threads.find``), and its WAV fetched from the account's Recording resource on
``TWILIO_API_BASE_URL`` in step 3's way: with the "Enforce HTTP Auth on Media URLs" voice
setting Twilio requires the credentials for recordings too.

The answer is its owner's alone (``Cache-Control: private``), never sniffed, and in a
CSP sandbox. Nothing Twilio kept is refused for its type (a texter may send a PDF or a
contact card), but a type a browser would run (HTML, SVG, XML, script) goes out as an
``application/octet-stream`` attachment.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import azure.functions as func
from aiohttp import ClientSession, ClientTimeout, encode_basic_auth
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from yarl import URL

from shared import conversations, retention, threads
from shared.conversations import MediaLink
from shared.identity import Caller
from shared.logs import log_outcome
from shared.problems import (
    Problem,
    invalid_field,
    invalid_request,
    not_found,
    store_unavailable,
)
from shared.settings import Settings
from shared.store import RETRY_AFTER, StoreUnavailable
from shared.twilio_client import client_for
from shared.twilio_errors import reading_twilio
from shared.urls import function_url

#: Twilio sends at most 10 media with a message (media-resource page): ``n`` is 0 to 9.
MAX_MEDIA = 10
#: Redirects followed from Twilio's media URL: Twilio sends one, to its CDN.
MAX_REDIRECTS = 3
_MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-f]{32}")
_INDEX = re.compile(r"[0-9]")
_MEDIA_SID = re.compile(r"ME[0-9a-fA-F]{32}")
_RECORDING_SID = re.compile(r"RE[0-9a-f]{32}")
#: What Twilio's Recording resource answers without an extension.
WAV = "audio/x-wav"
#: Types passed on as Twilio gave them: what a browser shows and never runs.
_INERT = re.compile(r"(image/(?!svg)|audio/|video/)[a-z0-9][a-z0-9.+-]{0,126}"
                    r"|text/(plain|vcard|x-vcard|csv|calendar|directory)|application/pdf")
DOWNLOAD = "application/octet-stream"


@dataclass(frozen=True)
class MediaRef:
    """Which media a client asks for: file ``index`` of incoming message ``sid``."""

    sid: str
    index: int


@dataclass(frozen=True)
class Media:
    """A file as passed on: its bytes and the type Twilio gave it."""

    body: bytes
    content_type: str


def read_media_ref(route: Mapping[str, str]) -> MediaRef:
    """``{message_sid}/{n}`` of the route (a voicemail's recording SID, file 0); 400
    naming the field that is not one."""
    sid, index = route.get("message_sid", ""), route.get("n", "")
    if not (_MESSAGE_SID.fullmatch(sid) or _RECORDING_SID.fullmatch(sid)):
        raise invalid_field("message_sid", "must be a Twilio message SID (SM or MM and 32 "
                            "hexadecimal digits) or a voicemail's recording SID (RE)")
    if not _INDEX.fullmatch(index):
        raise invalid_field("n", f"must be the media's position, 0 to {MAX_MEDIA - 1}")
    return MediaRef(sid, int(index))


async def find_source(settings: Settings, caller: Caller, ref: MediaRef,
                      now: datetime) -> Callable[[], Awaitable[Media]]:
    """How to fetch the caller's media or recording from Twilio, once it is found to be
    theirs; 404 alike for another user's and none at all, before anything is fetched."""
    if ref.sid.startswith("RE"):
        await find_recording(settings, caller, ref, now)
        return functools.partial(fetch_recording, settings, ref)
    sid = media_sid(await find_media_url(settings, caller, ref, now), settings, ref)
    return functools.partial(fetch_media, settings, ref, sid)


async def find_recording(settings: Settings, caller: Caller, ref: MediaRef,
                         now: datetime) -> None:
    """404 unless the recording is a voicemail on one of the caller's threads, within
    ``MESSAGE_RETENTION_DAYS``. A recording is one file: any other than 0 is none, as
    a message's file past its last is (404, not 400: the reference is well formed)."""
    if ref.index != 0:
        raise not_found(f"a recording has one file, 0: no file {ref.index} of {ref.sid}")
    store = conversations.required_store(settings, "voicemails")
    try:
        item = await threads.find(store, caller.owner, ref.sid)
    except StoreUnavailable:
        raise store_unavailable(RETRY_AFTER, "the store cannot be reached; retry later") from None
    if item is None or item.kind != "voicemail" or item.at <= retention.cutoff(settings, now):
        raise not_found(f"no voicemail {ref.sid} for this caller")


async def fetch_recording(settings: Settings, ref: MediaRef) -> Media:
    """The voicemail's recording from Twilio, as WAV: the Recording resource without
    extension (https://www.twilio.com/docs/voice/api/recording#fetch-a-recording-media-file),
    fetched as media are (credentials for the API's origin only, redirects, size)."""
    client = client_for(settings)
    url = (f"{settings.api_base_url}/2010-04-01/Accounts/{settings.account_sid}/Recordings/"
           f"{ref.sid}")
    body, _ = await reading_twilio(_content(settings, client, url), _gone())
    return Media(body, WAV)


async def find_media_url(settings: Settings, caller: Caller, ref: MediaRef,
                         now: datetime) -> str:
    """The Twilio URL of the caller's media; 404 alike for another user's and none at all."""
    urls = await conversations.incoming_media(settings, caller, ref.sid, now)
    if ref.index >= len(urls):
        raise not_found(f"no media {ref.index} in message {ref.sid} for this caller")
    return urls[ref.index]


def media_sid(url: str, settings: Settings, ref: MediaRef) -> str:
    """The ``ME`` SID of ``url`` if it is this message's Media resource on the configured
    Twilio API (the only URL ``fetch_media`` requests); 404 otherwise, the URL never
    fetched."""
    try:
        parts = urlsplit(url)
        origin = _origin(url)
    except ValueError:
        parts, origin = None, None
    path = f"/2010-04-01/Accounts/{settings.account_sid}/Messages/{ref.sid}/Media/"
    api = _origin(settings.api_base_url)
    if (parts is None or api is None or origin != api or parts.query
            or parts.fragment or not parts.path.startswith(path)
            or not _MEDIA_SID.fullmatch(parts.path.removeprefix(path))):
        problem = not_found(f"media {ref.index} of message {ref.sid} is not at Twilio's API: "
                            "the app fetches media from Twilio only")
        problem.cause = "MediaUrl not of TWILIO_API_BASE_URL, this account and message"
        raise problem
    return parts.path.removeprefix(path)


async def fetch_media(settings: Settings, ref: MediaRef, sid: str) -> Media:
    """The media from Twilio: its metadata, then its content (see the module's docstring)."""
    client = client_for(settings)
    metadata = await reading_twilio(client.messages(ref.sid).media(sid).fetch_async(), _gone())
    url = (f"{settings.api_base_url}/2010-04-01/Accounts/{settings.account_sid}/Messages/"
           f"{ref.sid}/Media/{sid}")
    body, declared = await reading_twilio(_content(settings, client, url), _gone())
    kind = (metadata.content_type or declared or DOWNLOAD).split(";", 1)[0].strip().lower()
    return Media(body, kind)


async def _content(settings: Settings, client: Client, url: str) -> tuple[bytes, str | None]:
    """The content at ``url``, following Twilio's redirects; its bytes and declared type."""
    session: ClientSession = client.http_client.session
    api = _origin(settings.api_base_url)
    credentials = {"Authorization": encode_basic_auth(client.username, client.password)}
    timeout = ClientTimeout(total=settings.timeout_seconds)
    for _ in range(MAX_REDIRECTS + 1):
        own = api is not None and _origin(url) == api
        async with session.get(url, headers=credentials if own else None,
                               allow_redirects=False, timeout=timeout) as answer:
            if answer.status in (301, 302, 303, 307, 308):
                url = _redirect(url, answer.headers.get("Location", ""), api)
                continue
            if not 200 <= answer.status < 300:
                raise _refused(answer.status, url, answer.headers.get("Retry-After"))
            limit = settings.media_max_bytes
            if (answer.content_length or 0) > limit:
                raise _too_large(limit)
            body = bytearray()
            async for chunk in answer.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > limit:
                    raise _too_large(limit)
            return bytes(body), answer.headers.get("Content-Type")
    raise _unreadable(f"more than {MAX_REDIRECTS} redirects")


def _refused(status: int, url: str, retry_after: str | None) -> TwilioRestException:
    """A refusal of the content GET, as the ``twilio`` library raises one of the metadata's,
    so that ``reading_twilio`` tells the client the same of both."""
    error = TwilioRestException(status, url, f"Twilio answered {status}")
    error.retry_after = retry_after  # type: ignore[attr-defined]  # read by twilio_errors
    return error


def _redirect(url: str, location: str, api: str | None) -> str:
    """Where a redirect leads: https, or the API's own origin (a local sandbox); else 502."""
    try:
        target = str(URL(url).join(URL(location)))
        allowed = bool(location) and (urlsplit(target).scheme == "https"
                                      or (api is not None and _origin(target) == api))
    except ValueError:
        allowed = False
    if not allowed:
        raise _unreadable("a redirect to neither https nor Twilio's API")
    return target


def _origin(url: str) -> str | None:
    """``scheme://host:port``, lower-cased, with the scheme's port written out: two
    spellings of one origin compare equal."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def _gone() -> Problem:
    return not_found("Twilio keeps no such media (any more)")


def _unreadable(cause: str) -> Problem:
    problem = Problem(502, "twilio-unavailable", "Twilio could not be reached or answered "
                      "with something unreadable; retry later", title="Upstream failure")
    problem.cause = cause
    return problem


def _too_large(limit: int) -> Problem:
    return Problem(502, "media-too-large", f"the media is over the {limit} bytes this app "
                   "passes on (MEDIA_MAX_BYTES)", title="Media too large")


def media_response(function: str, ref: MediaRef, media: Media) -> func.HttpResponse:
    """200 with the media, for its owner's eyes only (see the module's docstring)."""
    inert = _INERT.fullmatch(media.content_type) is not None
    kind = media.content_type if inert else DOWNLOAD
    headers = {"Content-Type": kind, "Cache-Control": "private",
               "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
    if not inert:
        headers["Content-Disposition"] = "attachment"
    log_outcome(function, 200, sid=ref.sid,
                outcome=f"{len(media.body)}_bytes{'' if inert else '_as_download'}")
    return func.HttpResponse(media.body, status_code=200, headers=headers, mimetype=kind)


def media_links(request_url: str, settings: Settings) -> MediaLink:
    """Links to ``media`` for a page of ``conversations/{number}`` (``request_url``): on
    the app's public origin and the request's route prefix.

    Worked out before the page is read, so that a request whose origin is unknown
    (no ``PUBLIC_BASE_URL``, a malformed ``Host``) is refused before reading the
    thread marks it read.
    """
    try:
        parts = urlsplit(request_url)
    except ValueError:  # a malformed Host header (unbalanced [ ]) got here
        raise invalid_request("the request URL cannot be parsed") from None
    listing = parts._replace(path=parts.path.rstrip("/").rsplit("/", 1)[0], query="")
    base = function_url(urlunsplit(listing), settings, "media")

    def link(sid: str, index: int) -> str:
        return f"{base}/{sid}/{index}"

    return link
