"""Inbound media, kept as Twilio keeps it: one Media resource per file, behind Basic Auth.

Twilio "creates a Media subresource and stores the contents of the media when ... you
receive media in a message sent to one of your Twilio numbers", keeps it "until you
delete the related Media subresource instance", and "enforces HTTP Basic
Authentication for all media URLs"; the resource's URL without an extension returns
the media itself, with ``.json`` its metadata
(https://www.twilio.com/docs/messaging/api/media-resource). A fetch of the media
"will redirect you to a secure URL that is only valid for 4 hours"
(https://help.twilio.com/articles/223183748): here a URL of the sandbox's own, under
``/_sandbox/media/``, that needs no credentials (and does not expire).

The simulated texter supplies each file as bytes (base64 in the console's JSON) or as
a URL the sandbox fetches once. Both are bounded by what Twilio documents for a
message's media, 10 files of 5 MB in all (the same page; it documents no other limit
for media received). What the sandbox keeps is bounded too: the media of its last
``history`` messages, and ``MAX_BYTES_KEPT`` in all, the oldest going first.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from .errors import ActionError
from .resources import new_sid, now

#: Twilio's limits on a message's media: 10 files, 5 MB in all (media-resource page).
MAX_FILES = 10
MAX_MESSAGE_BYTES = 5 * 1024 * 1024
#: What the sandbox keeps of all messages' media together, at most.
MAX_BYTES_KEPT = 64 * 1024 * 1024
#: The largest request body the sandbox reads: an SMS with a message's worth of media in
#: base64 JSON (4 characters per 3 bytes), and room for the rest.
MAX_JSON_BYTES = (MAX_MESSAGE_BYTES + 2) // 3 * 4 + 64 * 1024
#: How long the sandbox waits for a media URL it fetches, all redirects included.
FETCH_SECONDS = 10.0
MAX_REDIRECTS = 5
OCTET_STREAM = "application/octet-stream"
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")


@dataclass(frozen=True)
class Upload:
    """One file the texter sends: its bytes and their media type."""

    content_type: str
    body: bytes


@dataclass(frozen=True)
class StoredMedia:
    """One Media resource: a file of a message, as Twilio keeps it."""

    sid: str
    account_sid: str
    message_sid: str
    content_type: str
    body: bytes
    created: datetime


def _invalid(detail: str) -> ActionError:
    return ActionError(400, "Invalid field", detail)


def media_type(text: Any, name: str | None = None) -> str:
    """``text`` as a media type without parameters, else one guessed from ``name``."""
    if isinstance(text, str) and text.strip():
        kind = text.split(";", 1)[0].strip().lower()
        if not _MEDIA_TYPE.fullmatch(kind):
            raise _invalid("'content_type' must be a media type such as image/jpeg")
        return kind
    return (mimetypes.guess_type(name)[0] if name else None) or OCTET_STREAM


def read_uploads(data: dict[str, Any]) -> tuple[list[Upload], list[str]]:
    """The files given as base64 (``media``) and the URLs to fetch (``media_url``); 400 if not.

    ``media``: ``[{"data": <base64>, "content_type"?, "filename"?}]``; ``media_url``: an
    http(s) URL or a list of them.
    """
    files = data.get("media") or []
    urls = data.get("media_url") or []
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(files, list) or not isinstance(urls, list):
        raise _invalid("'media' and 'media_url' must be lists")
    if len(files) + len(urls) > MAX_FILES:
        raise _invalid(f"a message carries at most {MAX_FILES} media files")
    if not all(isinstance(url, str) and url.startswith(("https://", "http://")) for url in urls):
        raise _invalid(f"'media_url' takes up to {MAX_FILES} http(s) URLs")
    uploads = [_decoded(item) for item in files]
    _check_total(uploads)
    return uploads, urls


def _decoded(item: Any) -> Upload:
    if not isinstance(item, dict) or not isinstance(item.get("data"), str):
        raise _invalid("each of 'media' is {\"data\": <base64>, \"content_type\"?, "
                       "\"filename\"?}")
    encoded = item["data"]
    if len(encoded) > (MAX_MESSAGE_BYTES + 2) // 3 * 4:
        raise _too_large()
    try:
        body = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("'media' data must be base64") from None
    filename = item.get("filename")
    return Upload(media_type(item.get("content_type"),
                             filename if isinstance(filename, str) else None), body)


def _too_large() -> ActionError:
    return _invalid(f"a message's media are at most {MAX_MESSAGE_BYTES} bytes in all")


def _check_total(uploads: list[Upload]) -> None:
    if sum(len(upload.body) for upload in uploads) > MAX_MESSAGE_BYTES:
        raise _too_large()


async def fetch_all(urls: list[str], uploads: list[Upload]) -> list[Upload]:
    """``uploads``, then each URL's content fetched once, within the message's byte limit.

    A URL that fails (not 2xx, too slow, too large, unreachable) is a 502 naming it:
    Twilio would not deliver the message's media either.
    """
    fetched = list(uploads)
    if not urls:
        return fetched
    timeout = aiohttp.ClientTimeout(total=FETCH_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for url in urls:
            room = MAX_MESSAGE_BYTES - sum(len(upload.body) for upload in fetched)
            fetched.append(await _fetch(session, url, room))
    return fetched


async def _fetch(session: aiohttp.ClientSession, url: str, room: int) -> Upload:
    too_large = f"it is over the {MAX_MESSAGE_BYTES} bytes a message's media may take"
    try:
        async with session.get(url, max_redirects=MAX_REDIRECTS) as answer:
            if not 200 <= answer.status < 300:
                raise _unfetched(url, f"it answered {answer.status}")
            if (answer.content_length or 0) > room:
                raise _unfetched(url, too_large)
            body = bytearray()
            async for chunk in answer.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > room:
                    raise _unfetched(url, too_large)
            declared = answer.headers.get("Content-Type", "")
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise _unfetched(url, type(error).__name__) from None
    try:
        kind = media_type(declared, url)
    except ActionError:  # the server's own type is malformed: guess, as from no type
        kind = media_type(None, url)
    return Upload(kind, bytes(body))


def _unfetched(url: str, why: str) -> ActionError:
    return ActionError(502, "Media not fetched", f"the sandbox could not fetch {url[:200]!r}: "
                       f"{why}")


class MediaStore:
    """The media of the last ``history`` messages that carried some, ``max_bytes`` at most."""

    def __init__(self, history: int, max_bytes: int = MAX_BYTES_KEPT) -> None:
        self.history = history
        self.max_bytes = max_bytes
        self.total_bytes = 0
        self._messages: OrderedDict[str, list[StoredMedia]] = OrderedDict()
        self._by_sid: dict[str, StoredMedia] = {}

    def keep(self, account_sid: str, message_sid: str, uploads: list[Upload]) -> list[StoredMedia]:
        """Store a message's files as Media resources (``ME`` SIDs), in the order given."""
        created = now()
        stored = [StoredMedia(new_sid("ME"), account_sid, message_sid, upload.content_type,
                              upload.body, created) for upload in uploads]
        self._messages[message_sid] = stored
        for media in stored:
            self._by_sid[media.sid] = media
            self.total_bytes += len(media.body)
        while self._messages and (len(self._messages) > self.history
                                  or self.total_bytes > self.max_bytes):
            _, forgotten = self._messages.popitem(last=False)
            for media in forgotten:
                self._forget(media)
        return stored

    def of(self, account_sid: str, message_sid: str) -> list[StoredMedia]:
        """The message's media still kept, in their order."""
        return [media for media in self._messages.get(message_sid, ())
                if media.account_sid == account_sid]

    def find(self, media_sid: str) -> StoredMedia | None:
        return self._by_sid.get(media_sid)

    def delete(self, media: StoredMedia) -> None:
        """Twilio's DELETE of a Media resource: gone for good."""
        kept = self._messages.get(media.message_sid, [])
        if media in kept:
            kept.remove(media)
            self._forget(media)

    def _forget(self, media: StoredMedia) -> None:
        if self._by_sid.pop(media.sid, None) is not None:
            self.total_bytes -= len(media.body)

    def clear(self) -> None:
        self._messages.clear()
        self._by_sid.clear()
        self.total_bytes = 0
