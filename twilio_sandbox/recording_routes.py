"""Twilio's Recordings and Transcriptions REST paths, and the console's way to play one.

REST (behind the account's Basic Auth like every ``/2010-04-01`` path, server.py),
as in Twilio's OpenAPI description (``/2010-04-01/Accounts/{AccountSid}/Recordings...``):

- ``GET .../Recordings.json`` (``CallSid`` filter, paged), ``GET|DELETE
  .../Recordings/{RE}.json``; ``GET .../Recordings/{RE}`` or ``.wav``: the audio; ``.mp3``:
  404, the sandbox makes no MP3 (recordings.py);
- ``GET .../Recordings/{RE}/Transcriptions.json``, ``GET .../Transcriptions.json``,
  ``GET|DELETE .../Transcriptions/{TR}.json``.

The console cannot send the account's credentials (it must never hold them), so it
plays a recording from ``GET /_sandbox/recordings/{RE}``: the same audio, for the
sandbox's own origin only (cross_site.py marks ``/_sandbox/`` answers
``Cross-Origin-Resource-Policy: same-origin`` and refuses other sites' requests), as
media are shown from ``/_sandbox/media/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from localhttp.problem import problem_response

from .errors import TwilioApiError
from .recordings import WAV_TYPE, Recording, Transcription
from .resources import Resource

if TYPE_CHECKING:
    from .state import SandboxState

RE = "{sid:RE[0-9a-fA-F]{32}}"
TR = "{sid:TR[0-9a-fA-F]{32}}"
#: The console's own path to a recording's audio.
CONSOLE_AUDIO = "/_sandbox/recordings/"

Lister = Callable[..., web.Response]


def add_routes(app: web.Application, key: web.AppKey[SandboxState], account_route: str,
               account: web.RequestKey[str], list_page: Lister) -> None:
    """Serve the REST paths under ``account_route`` (the request's account is
    ``request[account]``, checked by the REST middleware) and the console's audio path;
    ``list_page`` answers a page of resources as the other lists do."""

    def sandbox(request: web.Request) -> SandboxState:
        return request.app[key]

    def not_found(request: web.Request) -> TwilioApiError:
        return TwilioApiError(404, 20404, f"The requested resource {request.path} was not found")

    def recording(request: web.Request) -> Recording:
        found = sandbox(request).recordings.find(request.match_info["sid"])
        if found is None or found.account_sid != request[account]:
            raise not_found(request)
        return found

    def transcription(request: web.Request) -> Transcription:
        found = sandbox(request).recordings.find_transcription(request.match_info["sid"])
        if found is None or found.account_sid != request[account]:
            raise not_found(request)
        return found

    def listed(request: web.Request, key_name: str, items: list[Resource]) -> web.Response:
        # Oldest first here; a page lists the newest first, as the other lists do.
        return list_page(request, key_name, items, ())

    async def list_recordings(request: web.Request) -> web.Response:
        base = sandbox(request).base_url
        call_sid = request.query.get("CallSid")
        kept = [r.resource(base) for r in sandbox(request).recordings.all()
                if r.account_sid == request[account]
                and (call_sid is None or r.call_sid == call_sid)]
        return listed(request, "recordings", kept)

    async def fetch_recording(request: web.Request) -> web.Response:
        return web.json_response(recording(request).resource(sandbox(request).base_url))

    async def delete_recording(request: web.Request) -> web.Response:
        sandbox(request).recordings.delete(recording(request))
        return web.Response(status=204)

    async def audio(request: web.Request) -> web.Response:
        return _wav(recording(request))

    async def mp3(request: web.Request) -> web.Response:
        recording(request)  # an unknown one is the usual 404
        raise TwilioApiError(404, 20404, "The sandbox keeps recordings as WAV only: fetch "
                                         "the recording without an extension or with .wav")

    async def list_transcriptions(request: web.Request) -> web.Response:
        of = request.match_info.get("sid")
        if of is not None:
            recording(request)
        kept = [t.resource() for t in sandbox(request).recordings.all_transcriptions()
                if t.account_sid == request[account] and of in (None, t.recording_sid)]
        return listed(request, "transcriptions", kept)

    async def fetch_transcription(request: web.Request) -> web.Response:
        return web.json_response(transcription(request).resource())

    async def delete_transcription(request: web.Request) -> web.Response:
        sandbox(request).recordings.delete_transcription(transcription(request))
        return web.Response(status=204)

    async def console_audio(request: web.Request) -> web.StreamResponse:
        found = sandbox(request).recordings.find(request.match_info["sid"])
        if found is None:
            return problem_response(404, "No recording with this SID is kept (any more).",
                                    title="Not found")
        return _wav(found)

    recordings = f"{account_route}/Recordings"
    router = app.router
    router.add_get(f"{recordings}.json", list_recordings)
    router.add_get(f"{recordings}/{RE}.json", fetch_recording)
    router.add_delete(f"{recordings}/{RE}.json", delete_recording)
    router.add_get(f"{recordings}/{RE}.wav", audio)
    router.add_get(f"{recordings}/{RE}.mp3", mp3)
    router.add_get(f"{recordings}/{RE}", audio)
    router.add_get(f"{recordings}/{RE}/Transcriptions.json", list_transcriptions)
    router.add_get(f"{account_route}/Transcriptions.json", list_transcriptions)
    router.add_get(f"{account_route}/Transcriptions/{TR}.json", fetch_transcription)
    router.add_delete(f"{account_route}/Transcriptions/{TR}.json", delete_transcription)
    router.add_get(f"{CONSOLE_AUDIO}{RE}", console_audio)


def _wav(recording: Recording) -> web.Response:
    """The audio, never sniffed as anything else."""
    return web.Response(body=recording.body, headers={
        "Content-Type": WAV_TYPE, "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private"})

