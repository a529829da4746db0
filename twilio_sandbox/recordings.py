"""Recordings and their transcriptions, kept as Twilio keeps them: resources behind Basic Auth.

A ``<Record>`` leaves a Recording resource (``RE`` SID) whose URL without an extension,
or with ``.wav``, returns the audio as WAV; ``.mp3`` returns MP3
(https://www.twilio.com/docs/voice/twiml/record, "RecordingUrl"; and
https://www.twilio.com/docs/voice/api/recording, "Fetch a Recording's media file"),
and ``.json`` the metadata, in the shape of OpenAPI ``api.v2010.account.recording``.
The sandbox generates no MP3 (no encoder in the standard library): ``.mp3`` answers
Twilio's 404 with a message saying so (sandbox-only; fetch the WAV). Every URL is
behind the account's credentials, as with Twilio's Voice setting "Enforce HTTP Auth
on Media URLs" on (https://help.twilio.com/articles/15827821586843), which is what an
app must be ready for.

The audio is what the simulated caller "said": a quiet 400 Hz tone of the message's
length, 8 kHz, 8-bit mono (Twilio's own encoding is not reproduced; the sandbox keeps
files small). What is kept is bounded like media: the last ``history`` recordings and
``MAX_BYTES_KEPT`` of audio in all, the oldest going first; a deleted one is gone.
"""

from __future__ import annotations

import io
import math
import wave
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .resources import API_VERSION, Resource, account_path, new_sid, now, rfc2822

#: Samples per second of the generated audio (a telephone's).
RATE = 8000
#: The generated tone: 400 Hz is 20 samples a period at 8 kHz, so a period repeats exactly.
_PERIOD = bytes(128 + round(24 * math.sin(2 * math.pi * i / 20)) for i in range(20))
#: The longest message a simulated caller leaves, in seconds (about 4.8 MB of audio).
MAX_MESSAGE_SECONDS = 600
#: What the sandbox keeps of all recordings' audio together, at most.
MAX_BYTES_KEPT = 64 * 1024 * 1024
WAV_TYPE = "audio/x-wav"


def tone_wav(seconds: int) -> bytes:
    """A WAV file of ``seconds`` of a quiet tone (what the caller said, as far as it matters)."""
    with io.BytesIO() as out:
        with wave.open(out, "wb") as audio:
            audio.setnchannels(1)
            audio.setsampwidth(1)
            audio.setframerate(RATE)
            audio.writeframes(_PERIOD * (RATE * seconds // len(_PERIOD)))
        return out.getvalue()


def recording_path(account_sid: str, sid: str) -> str:
    """A Recording's URL path without extension: where its audio is fetched."""
    return f"{account_path(account_sid)}/Recordings/{sid}"


def transcription_path(account_sid: str, sid: str) -> str:
    return f"{account_path(account_sid)}/Transcriptions/{sid}"


@dataclass
class Transcription:
    """One Transcription resource (``TR`` SID) of a recording."""

    sid: str
    account_sid: str
    recording_sid: str
    duration: int
    status: str
    text: str | None
    created: datetime

    def resource(self) -> Resource:
        """As Twilio answers its fetch (OpenAPI ``api.v2010.account.transcription``).
        ``type`` ``fast`` is not documented by Twilio as the value for ``<Record
        transcribe>``: chosen because Twilio's example answers show it."""
        stamp = rfc2822(self.created)
        return {
            "account_sid": self.account_sid, "api_version": API_VERSION,
            "date_created": stamp, "date_updated": stamp, "duration": str(self.duration),
            "price": None, "price_unit": "USD", "recording_sid": self.recording_sid,
            "sid": self.sid, "status": self.status, "transcription_text": self.text,
            "type": "fast", "uri": f"{transcription_path(self.account_sid, self.sid)}.json",
        }


@dataclass
class Recording:
    """One Recording resource: a ``<Record>``'s audio, of a call."""

    sid: str
    account_sid: str
    call_sid: str
    duration: int
    body: bytes
    started: datetime
    created: datetime = field(default_factory=now)
    transcriptions: list[str] = field(default_factory=list)

    def resource(self, base_url: str) -> Resource:
        """As Twilio answers its fetch (OpenAPI ``api.v2010.account.recording``): status
        ``completed``, one channel, source ``RecordVerb``
        (https://www.twilio.com/docs/voice/twiml/record, recordingStatusCallback). ``price``
        stays null as Twilio's does until the call is rated."""
        path = recording_path(self.account_sid, self.sid)
        return {
            "account_sid": self.account_sid, "api_version": API_VERSION,
            "call_sid": self.call_sid, "conference_sid": None,
            "date_created": rfc2822(self.created), "date_updated": rfc2822(self.created),
            "start_time": rfc2822(self.started), "duration": str(self.duration),
            "sid": self.sid, "price": None, "price_unit": "USD", "status": "completed",
            "channels": 1, "source": "RecordVerb", "error_code": None,
            "uri": f"{path}.json", "encryption_details": None,
            "subresource_uris": {
                "add_on_results": f"{path}/AddOnResults.json",
                "transcriptions": f"{path}/Transcriptions.json",
            },
            "media_url": base_url + path,
        }


class RecordingStore:
    """The last ``history`` recordings, ``max_bytes`` of audio at most, and their
    transcriptions (which go when deleted, or with their recording)."""

    def __init__(self, history: int, max_bytes: int = MAX_BYTES_KEPT) -> None:
        self.history = history
        self.max_bytes = max_bytes
        self.total_bytes = 0
        self._recordings: OrderedDict[str, Recording] = OrderedDict()
        self._transcriptions: dict[str, Transcription] = {}

    def keep(self, account_sid: str, call_sid: str, seconds: int,
             started: datetime) -> Recording:
        """A new recording of ``seconds`` of audio, on the call ``call_sid``."""
        recording = Recording(new_sid("RE"), account_sid, call_sid, seconds,
                              tone_wav(seconds), started)
        self._recordings[recording.sid] = recording
        self.total_bytes += len(recording.body)
        while len(self._recordings) > 1 and (len(self._recordings) > self.history
                                             or self.total_bytes > self.max_bytes):
            self.delete(next(iter(self._recordings.values())))
        return recording

    def transcribe(self, recording: Recording, text: str | None,
                   status: str) -> Transcription:
        transcription = Transcription(new_sid("TR"), recording.account_sid, recording.sid,
                                      recording.duration, status, text, now())
        self._transcriptions[transcription.sid] = transcription
        recording.transcriptions.append(transcription.sid)
        return transcription

    def find(self, sid: str) -> Recording | None:
        return self._recordings.get(sid)

    def find_transcription(self, sid: str) -> Transcription | None:
        return self._transcriptions.get(sid)

    def all(self) -> list[Recording]:
        """Oldest first."""
        return list(self._recordings.values())

    def all_transcriptions(self) -> list[Transcription]:
        return list(self._transcriptions.values())

    def delete(self, recording: Recording) -> None:
        """Twilio's DELETE of a Recording: gone for good, its audio and its transcriptions
        with it (also what forgetting the oldest does, so that they stay bounded too)."""
        if self._recordings.pop(recording.sid, None) is not None:
            self.total_bytes -= len(recording.body)
        for sid in recording.transcriptions:
            self._transcriptions.pop(sid, None)
        recording.transcriptions.clear()

    def delete_transcription(self, transcription: Transcription) -> None:
        self._transcriptions.pop(transcription.sid, None)
        recording = self._recordings.get(transcription.recording_sid)
        if recording is not None and transcription.sid in recording.transcriptions:
            recording.transcriptions.remove(transcription.sid)

    def clear(self) -> None:
        self._recordings.clear()
        self._transcriptions.clear()
        self.total_bytes = 0

    def state(self, base_url: str) -> dict[str, list[dict[str, Any]]]:
        """What ``_sandbox/state`` shows: every kept recording and transcription."""
        return {"recordings": [r.resource(base_url) for r in self.all()],
                "transcriptions": [t.resource() for t in self.all_transcriptions()]}
