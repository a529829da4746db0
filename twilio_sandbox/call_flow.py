"""A call's TwiML followed to its end, as Twilio follows it, on a simulated clock.

The call's first document (its Url's, signed) is played verb by verb; a ``<Dial>``
or ``<Record>`` with an ``action`` asks that URL (signed, with Twilio's parameters)
and goes on with the document it answers, until a document ends, a ``<Hangup>``,
or the caller hangs up (https://www.twilio.com/docs/voice/twiml: "Twilio ... will
execute the TwiML verbs in order"; the call ends when the document does).

What the people on the call do is :class:`Parties`: whether the party a ``<Dial>``
rings answers, declines or lets it ring, how long they talk, what the caller says
into a ``<Record>``. Nothing waits real seconds: each verb moves the call's own
clock (a ``<Pause>`` its length, a ``<Dial>`` its ringing or the talk, a ``<Record>``
the message), and the call's ``duration`` is that clock's (its timestamps are the
sandbox's real ones), so a 30-second ring costs a test nothing.

Verbs: ``Say``, ``Play``, ``Pause``, ``Hangup``, ``Reject``, ``Dial`` (``Number``,
``Client`` with ``Identity``/``Parameter``), ``Record``, ``Redirect``. What happened
is recorded on the call step by step (``actions``), what the caller heard in
``heard``, each number or client dialed in ``dialed`` with its outcome, each
recording in ``recordings``; what Twilio's debugger would log in ``notifications``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import aiohttp
import yarl

from .callbacks import answer_document, first_value, heard_in, pick_up, signed_request
from .errors import ActionError, TwilioApiError
from .magic import ACCOUNT_NUMBERS
from .overrides import split
from .recordings import MAX_MESSAGE_SECONDS, Recording, recording_path, transcription_path
from .resources import API_VERSION, Resource, build_call, new_sid, now, rfc2822

if TYPE_CHECKING:
    from .state import SandboxState

log = logging.getLogger(__name__)

#: What the party a ``<Dial>`` rings does: picks up, declines, or lets it ring out.
ANSWERS = ("answer", "decline", "no-answer")
#: The longest talk a simulated answerer holds: ``<Dial timeLimit>``'s default, 4 hours
#: (https://www.twilio.com/docs/voice/twiml/dial#timelimit).
MAX_HOLD_SECONDS = 14400
#: What the caller says into a ``<Record>`` unless told: words for the transcription.
DEFAULT_TRANSCRIPT = "Hi, this is a message left in the Twilio sandbox. Please call me back."
#: Documents one call follows at most: Twilio loops as long as the app answers (a
#: ``<Redirect>`` to itself), the sandbox stops there and says so (sandbox-only).
MAX_DOCUMENTS = 25
#: Seconds a console request waits for its call to end (and its recordings' callbacks to
#: go out) before it answers 504; the call goes on (sandbox-only).
RUN_SECONDS = 60.0
#: Seconds a ``<Say>`` lasts per word: about 150 words a minute (sandbox-only estimate).
SECONDS_PER_WORD = 0.4

#: "Client name should not contain control, space, delims, or unwise characters and
#: should not be longer than 256 characters" (https://www.twilio.com/docs/api/errors/31105):
#: RFC 2396's excluded US-ASCII characters (section 2.4.3).
INVALID_CLIENT_NAME = 31105
MAX_IDENTITY = 256
_EXCLUDED = re.compile(r'[\x00-\x20\x7f<>#%"{}|\\^\[\]`]')
#: "callerId must be the calling number, called number, or a validated outgoing number
#: ... if the calling leg is a client leg, the caller ID is required and must be a
#: validated outgoing number" (https://www.twilio.com/docs/api/errors/13214).
INVALID_CALLER_ID = 13214


def client_name_problem(identity: str) -> str | None:
    """Why Twilio refuses ``identity`` as a client name (31105), or None."""
    if not identity or len(identity) > MAX_IDENTITY:
        return f"Invalid client name: 1 to {MAX_IDENTITY} characters, not {len(identity)}"
    bad = _EXCLUDED.search(identity)
    if bad:
        return f"Invalid client name: it contains {bad.group()!r}"
    return None


def shown(number: str | None) -> str:
    """A number as the sandbox's records show it: ``+14155552671`` -> ``+1415•••2671``."""
    if not number or not number.startswith("+") or len(number) < 10:
        return number or "(none)"
    return f"{number[:5]}•••{number[-4:]}"


@dataclass(frozen=True)
class Parties:
    """What the people on a call do (the sandbox plays them).

    answer: what the party a ``<Dial>`` rings does, ``answer`` (the default: a phone
    that rings is picked up, as every call the sandbox places is unless a magic number
    says otherwise), ``decline`` or ``no-answer``. hold_seconds: how long they talk
    once answered. message_seconds: how long the caller speaks into a ``<Record>``
    before hanging up (0: hangs up without a word). transcript: what they say.
    """

    answer: str = "answer"
    hold_seconds: int = 30
    message_seconds: int = 5
    transcript: str = DEFAULT_TRANSCRIPT

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Parties:
        """From a console request's ``answer``, ``hold_seconds``, ``message`` and
        ``transcript``; ActionError 400 when one is not what it must be."""
        answer = data.get("answer", "answer")
        if answer not in ANSWERS:
            raise _invalid(f"'answer' must be one of {', '.join(ANSWERS)}")
        hold = _seconds(data, "hold_seconds", 30, MAX_HOLD_SECONDS)
        message = _seconds(data, "message", 5, MAX_MESSAGE_SECONDS)
        transcript = data.get("transcript", DEFAULT_TRANSCRIPT)
        if not isinstance(transcript, str) or len(transcript) > 4000:
            raise _invalid("'transcript' must be text of at most 4000 characters")
        return cls(answer, hold, message, transcript)


def _invalid(detail: str) -> ActionError:
    return ActionError(400, "Invalid field", detail)


def _seconds(data: dict[str, Any], name: str, default: int, most: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise _invalid(f"'{name}' must be whole seconds, 0 to {most}")
    return value


def step(call: Resource, text: str) -> None:
    """Record what the call did (the console lists it)."""
    call["actions"] = [*call["actions"], text]


def notify(call: Resource, text: str) -> None:
    """What Twilio's debugger would log for the call; the call goes on."""
    call["notifications"] = [*call["notifications"], text]
    step(call, text)


def caller_id_problem(call: Resource, caller_id: str | None,
                      owns: Callable[[str], bool]) -> str | None:
    """Why Twilio would not dial a number with ``caller_id`` on this call (13214), or None."""
    if call["from"].startswith("client:"):
        if caller_id is None:
            return "Dial: a caller ID is required when the calling leg is a client"
        return None if owns(caller_id) else (
            f"Dial: invalid callerId {shown(caller_id)}: a client leg needs a number of the "
            "account")
    if caller_id is None or caller_id in (call["from"], call["to"]) or owns(caller_id):
        return None
    return (f"Dial: invalid callerId {shown(caller_id)}: not the calling or called number, "
            "nor one of the account")


def _int(verb: ET.Element, name: str, default: int, low: int, high: int) -> int:
    """A whole-number attribute, kept within Twilio's range; its default when not a number."""
    try:
        value = int(verb.get(name, default))
    except ValueError:
        return default
    return min(max(value, low), high)


def _true(verb: ET.Element, name: str, default: bool) -> bool:
    value = verb.get(name)
    return default if value is None else value.strip().lower() == "true"


@dataclass
class Ended:
    """The call is over (a hangup, a reject, the caller gone)."""


@dataclass
class Next:
    """Go on with another document (an ``action``'s or a ``Redirect``'s answer)."""

    root: ET.Element
    url: str


Outcome = Ended | Next | None  # None: on with the next verb


@dataclass
class Flow:
    """One call being played: who is on it, its clock, what is still being sent."""

    sandbox: SandboxState
    session: aiohttp.ClientSession
    call: Resource
    auth_token: str
    parties: Parties
    owns: Callable[[str], bool]
    #: Parameters the first request carries over the usual ones (Voice SDK: Caller...).
    first_params: dict[str, str] = field(default_factory=dict)
    #: Simulated seconds since the call was answered.
    clock: float = 0.0
    answered: bool = False
    #: Callbacks still being sent after their verb (recording status, transcription).
    followups: list[asyncio.Task[None]] = field(default_factory=list)

    # --- the whole call --------------------------------------------------------------

    async def play(self) -> None:
        """Fetch the first document and follow the call to its end."""
        call = self.call
        call.setdefault("recordings", [])
        params = {"CallStatus": call["status"], **self.first_params}
        root = await answer_document(self.session, call, self.auth_token, params)
        if call["error"]:
            step(call, f"TwiML failed: {call['error']}")
        url = first_value(call["request"], "Url") or ""
        if len(root) == 0:
            # "Using <Reject> as the first verb in your response is the only way to prevent
            # Twilio from answering a call. Any other response will result in an answered
            # call" (https://www.twilio.com/docs/voice/twiml/reject): an empty <Response/>
            # too, which then ends at once, completed.
            self.pick_up()
        for _ in range(MAX_DOCUMENTS):
            outcome = await self.document(root, url)
            if not isinstance(outcome, Next):
                break
            root, url = outcome.root, outcome.url
        else:
            notify(call, f"the sandbox stopped the call after {MAX_DOCUMENTS} documents")
        if call["status"] not in ("busy", "no-answer", "completed"):
            self.end("completed" if self.answered else "no-answer")

    async def document(self, root: ET.Element, url: str) -> Outcome:
        """Carry out one document's verbs; what comes after it."""
        for verb in root:
            if verb.tag == "Reject":
                return self.reject(verb)
            bridging = verb.tag == "Dial" and _true(verb, "answerOnBridge", False)
            if not self.answered and not bridging:
                self.pick_up()
            outcome = await self.verb(verb, url)
            if outcome is not None:
                return outcome
        return None

    def pick_up(self) -> None:
        """Twilio answers the call: any verb but ``<Reject>`` does (a ``<Dial
        answerOnBridge>`` once its callee answers, https://www.twilio.com/docs/voice/twiml/dial#answeronbridge)."""
        self.answered = True
        pick_up(self.call)

    def end(self, status: str) -> None:
        """The call ends: an answered one lasted its clock (a second at least), any
        other none."""
        stamp = rfc2822(now())
        seconds = max(1, math.ceil(self.clock)) if self.answered else 0
        self.call.update(status=status, end_time=stamp, date_updated=stamp,
                         duration=str(seconds))
        log.info("call %s %s after %d s", self.call["sid"], status, seconds)

    # --- verbs -----------------------------------------------------------------------

    async def verb(self, verb: ET.Element, url: str) -> Outcome:
        call = self.call
        heard, warnings = heard_in(_alone(verb))
        for warning in warnings:
            notify(call, f"not said: {warning}")
        call["heard"] = [*call["heard"], *(h for h in heard if h["verb"] != "Gather")]
        text = " ".join("".join(verb.itertext()).split())
        if verb.tag == "Say":
            if not warnings:
                step(call, f"said: {text}")
                self.clock += SECONDS_PER_WORD * len(text.split())
        elif verb.tag == "Play":
            step(call, f"played {text}")
        elif verb.tag == "Pause":
            # https://www.twilio.com/docs/voice/twiml/pause: length, default 1 second.
            seconds = _int(verb, "length", 1, 1, 86400)
            step(call, f"paused {seconds} s")
            self.clock += seconds
        elif verb.tag == "Hangup":
            step(call, "hung up")
            self.end("completed")
            return Ended()
        elif verb.tag == "Dial":
            return await self.dial(verb, url)
        elif verb.tag == "Record":
            return await self.record(verb, url)
        elif verb.tag == "Redirect":
            # https://www.twilio.com/docs/voice/twiml/redirect: method POST by default.
            target = urljoin(url, text)
            step(call, f"redirected to {target.partition('#')[0]}")
            return await self.follow(target, verb.get("method") or "POST", {})
        else:
            step(call, f"ignored <{verb.tag}>: not a verb the sandbox plays")
        return None

    def reject(self, verb: ET.Element) -> Outcome:
        """``<Reject>``: as the first verb the call is never answered nor billed, and
        ends ``busy`` (reason busy) or ``no-answer`` (reason rejected, the default)
        (https://www.twilio.com/docs/voice/twiml/reject). After an answered verb it is
        too late to reject: the call just ends (sandbox reading of that page)."""
        reason = verb.get("reason", "rejected")
        step(self.call, f"rejected ({reason})")
        if self.answered:
            self.end("completed")
        else:
            self.end("busy" if reason == "busy" else "no-answer")
        return Ended()

    async def dial(self, verb: ET.Element, url: str) -> Outcome:
        """``<Dial>`` (https://www.twilio.com/docs/voice/twiml/dial): rings its nouns for
        ``timeout`` seconds (default 30, 5 to 600); the first to answer is bridged for
        at most ``timeLimit`` (14400). Then its ``action`` (POST by default) hears
        DialCallStatus, DialCallSid, DialCallDuration and DialBridged, and the call goes
        on with the answer (verbs after a ``<Dial>`` with an action are unreachable);
        without an action, with the next verb.

        A rung party that declines is ``busy``: a Voice SDK client rejecting the invite
        reaches ``<Dial>`` as a busy callee (the Dial page's "busy: Twilio received a
        busy signal when trying to connect"; seen by users as DialCallStatus=busy,
        https://github.com/twilio/voice-quickstart-ios/issues/238)."""
        call = self.call
        timeout = _int(verb, "timeout", 30, 5, 600)
        limit = _int(verb, "timeLimit", MAX_HOLD_SECONDS, 1, MAX_HOLD_SECONDS)
        rung = self.nouns(verb)
        leg_sid = new_sid("CA")
        if not rung:
            status, seconds = "failed", 0
        elif self.parties.answer == "answer":
            status, seconds = "completed", min(self.parties.hold_seconds, limit)
            if not self.answered:
                self.pick_up()  # answerOnBridge: the caller is answered with the callee
            self.clock += seconds
        elif self.parties.answer == "decline":
            status, seconds = "busy", 0
        else:
            status, seconds = "no-answer", 0
            self.clock += timeout if self.answered else 0
        for dialed in rung:
            dialed.update(status=status, duration=seconds, call_sid=leg_sid)
        # How each ended is on its ``dialed`` entry (the console shows it there).
        call["dialed"] = [*call["dialed"], *rung]
        action = verb.get("action")
        if not action:
            return None
        return await self.follow(urljoin(url, action), verb.get("method") or "POST", {
            "DialCallStatus": status, "DialCallSid": leg_sid,
            "DialCallDuration": str(seconds), "DialBridged": str(status == "completed").lower(),
        })

    def nouns(self, verb: ET.Element) -> list[dict[str, Any]]:
        """The numbers and clients a ``<Dial>`` rings (those Twilio would dial)."""
        call, caller_id = self.call, verb.get("callerId")
        nouns = [child for child in verb if child.tag in ("Number", "Client")]
        text = " ".join((verb.text or "").split())
        targets: list[tuple[str, str, ET.Element | None]] = [
            (child.tag, _target(child), child) for child in nouns]
        if not targets and text:  # <Dial>+14155552671</Dial>: a number with no attributes
            targets = [("Number", text, None)]
        for child in verb:
            if child.tag not in ("Number", "Client"):
                step(call, f"ignored <Dial><{child.tag}>")
        rung: list[dict[str, Any]] = []
        for kind, target, noun in targets:
            if kind == "Number":
                refused = caller_id_problem(call, caller_id, self.owns)
                if refused is not None:
                    notify(call, f"not dialed {shown(target)}: {INVALID_CALLER_ID} {refused}")
                    continue
                step(call, f"dialed {shown(target)} with caller ID {shown(caller_id)}")
            else:
                problem = client_name_problem(target)
                if problem is not None:
                    notify(call, f"not rung: {INVALID_CLIENT_NAME} {problem}")
                    continue
                step(call, f"rang client {target}")
            dialed: dict[str, Any] = {"kind": kind.lower(), "to": target, "caller_id": caller_id}
            if noun is not None:
                parameters = {p.get("name", ""): p.get("value", "")
                              for p in noun.iter("Parameter")}
                if parameters:
                    dialed["parameters"] = parameters
                if noun.get("statusCallback"):  # relative to the document's URL
                    dialed.update(status_callback=urljoin(first_value(call["request"], "Url") or "",
                                                          noun.get("statusCallback", "")),
                                  events=noun.get("statusCallbackEvent") or "completed")
            rung.append(dialed)
        return rung

    async def record(self, verb: ET.Element, url: str) -> Outcome:
        """``<Record>`` (https://www.twilio.com/docs/voice/twiml/record): the caller
        speaks ``message_seconds`` (at most ``maxLength``, default 3600) and hangs up,
        or is cut off at ``maxLength`` and stays. A Recording is made; its ``action``
        (default: the current document, POST) hears RecordingUrl, RecordingDuration and
        Digits (``hangup`` when the caller hung up); verbs after it are unreachable.
        "If Twilio receives an empty recording, it will not make a request to the
        action URL" and goes on with the next verb (same page). Once the caller has
        hung up the call is over: what the action answers is not played.

        The recordingStatusCallback and transcribeCallback go out once the action has
        answered, recording first, "the transcription arrives after the recording" (same
        page).

        The simulated caller always hangs up after ``message_seconds`` (or is cut off at
        ``maxLength``): the page's other endings, ``timeout`` seconds of silence and
        ``finishOnKey``, are not played (docs/sandbox.md says so).
        """
        call = self.call
        max_length = _int(verb, "maxLength", 3600, 1, 86400)
        if _true(verb, "playBeep", True):
            step(call, "beep")
        spoken = min(self.parties.message_seconds, max_length)
        hung_up = self.parties.message_seconds <= max_length
        self.clock += spoken
        if spoken == 0:
            step(call, "recorded nothing: the caller hung up without a word")
            self.followups.append(self.spawn(self.report_absent(verb, url)))
            self.end("completed")
            return Ended()
        recording = self.sandbox.recordings.keep(call["account_sid"], call["sid"], spoken, now())
        recording_url = self.sandbox.base_url + recording_path(call["account_sid"],
                                                               recording.sid)
        summary: dict[str, Any] = {"sid": recording.sid, "duration": spoken,
                                   "transcription": None, "transcription_status": None}
        call["recordings"] = [*call["recordings"], summary]
        step(call, f"recorded {spoken} s ({recording.sid})"
             + (", then the caller hung up" if hung_up else ", cut off at maxLength"))
        if hung_up:
            self.end("completed")
        action = urljoin(url, verb.get("action") or url)
        method = verb.get("method") or "POST"
        params = {"RecordingUrl": recording_url, "RecordingDuration": str(spoken),
                  "Digits": "hangup" if hung_up else ""}
        answer = await self.follow(action, method, params)
        # Only once the action has answered, so that the documented order holds by design.
        self.followups.append(self.spawn(self.after_recording(verb, url, recording,
                                                               recording_url)))
        return Ended() if hung_up else answer

    # --- requests to the app -----------------------------------------------------------

    async def follow(self, url: str, method: str, params: dict[str, str]) -> Next:
        """Ask ``url`` (signed, with the call's parameters and ``params``) what comes
        next; Twilio's error message when it cannot be had, as for the first document."""
        call = self.call
        asking = {**call, "request": {"Url": url, "Method": method.upper()}}
        root = await answer_document(self.session, asking, self.auth_token,
                                     {"CallStatus": call["status"], **params})
        if asking["error"]:
            call["error"] = asking["error"]
            step(call, f"TwiML failed: {asking['error']}")
        return Next(root, url)

    async def callback(self, url: str, method: str, params: dict[str, str], kind: str) -> None:
        """A signed callback to ``url`` (its connection overrides honoured), logged."""
        target, overrides = split(url)
        signed, body, headers = signed_request(target, method.upper(), params, self.auth_token)
        await self.sandbox.webhooks.send(
            self.session, method.upper(), yarl.URL(signed, encoded=True), headers=headers,
            data=body, kind=kind, sid=self.call["sid"], overrides=overrides)

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return self.sandbox.spawn(work, f"recording callbacks {self.call['sid']}")

    def _base(self) -> dict[str, str]:
        call = self.call
        return {"AccountSid": call["account_sid"], "CallSid": call["sid"],
                "ApiVersion": API_VERSION}

    async def report_absent(self, verb: ET.Element, url: str) -> None:
        """An empty recording: ``absent`` to the recordingStatusCallback if it asked."""
        target = verb.get("recordingStatusCallback")
        events = (verb.get("recordingStatusCallbackEvent") or "completed").split()
        if target and "absent" in events:
            await self.callback(urljoin(url, target),
                                verb.get("recordingStatusCallbackMethod") or "POST",
                                {**self._base(), "RecordingStatus": "absent",
                                 "RecordingSource": "RecordVerb"}, "recording-status")

    async def after_recording(self, verb: ET.Element, url: str, recording: Recording,
                              recording_url: str) -> None:
        """The recording's status callbacks (the events ``recordingStatusCallbackEvent``
        names, ``completed`` by default), then its transcription if ``transcribe``."""
        target = verb.get("recordingStatusCallback")
        if target:
            events = (verb.get("recordingStatusCallbackEvent") or "completed").split()
            for event in ("in-progress", "completed"):
                if event in events:
                    await self.callback(
                        urljoin(url, target), verb.get("recordingStatusCallbackMethod") or "POST",
                        self.recording_params(recording, recording_url, event),
                        "recording-status")
        if _true(verb, "transcribe", False):
            await self.transcribe(verb, url, recording, recording_url)

    def recording_params(self, recording: Recording, recording_url: str,
                         status: str) -> dict[str, str]:
        """recordingStatusCallback's parameters (the Record page's table)."""
        return {**self._base(), "RecordingSid": recording.sid, "RecordingUrl": recording_url,
                "RecordingStatus": status,
                "RecordingDuration": str(recording.duration) if status == "completed" else "",
                "RecordingChannels": "1", "RecordingSource": "RecordVerb",
                "RecordingStartTime": rfc2822(recording.started)}

    async def transcribe(self, verb: ET.Element, url: str, recording: Recording,
                         recording_url: str) -> None:
        """Twilio transcribes recordings of 2 to 120 seconds only (Record page,
        "transcribe"); the sandbox gives the others a ``failed`` transcription (what
        Twilio answers for them is not documented: chosen because the app hears of the
        transcription either way), posted to ``transcribeCallback`` with the call's
        parameters."""
        call = self.call
        done = 2 <= recording.duration <= 120
        text = self.parties.transcript if done else None
        transcription = self.sandbox.recordings.transcribe(
            recording, text, "completed" if done else "failed")
        call["recordings"] = [
            {**item, "transcription": text, "transcription_status": transcription.status}
            if item["sid"] == recording.sid else item for item in call["recordings"]]
        step(call, f"transcribed {recording.sid}: {transcription.status}")
        target = verb.get("transcribeCallback")
        if not target:
            return
        await self.callback(urljoin(url, target), "POST", {
            **self._base(), "From": call["from"], "To": call["to"],
            "CallStatus": call["status"], "Direction": call["direction"],
            "TranscriptionSid": transcription.sid, "TranscriptionText": text or "",
            "TranscriptionStatus": transcription.status,
            "TranscriptionUrl": self.sandbox.base_url + transcription_path(
                call["account_sid"], transcription.sid),
            "RecordingSid": recording.sid, "RecordingUrl": recording_url,
            "ApiVersion": API_VERSION,
        }, "transcription")


def _target(noun: ET.Element) -> str:
    """A ``<Number>``'s number, a ``<Client>``'s identity (its ``<Identity>`` or its text)."""
    identity = noun.find("Identity")
    text = identity.text if identity is not None else noun.text
    return " ".join((text or "").split())


def _alone(verb: ET.Element) -> ET.Element:
    """A ``<Response>`` holding only ``verb``: what it makes the caller hear."""
    root = ET.Element("Response")
    root.append(verb)
    return root


# --- running a call -----------------------------------------------------------------------


async def run(sandbox: SandboxState, call: Resource, parties: Parties,
              first_params: dict[str, str]) -> Resource:
    """Store ``call`` and play it to its end with :class:`Flow`; return it once it has
    ended and its recordings' callbacks have gone out (so a caller of the console API
    reads the whole story in the answer)."""
    flows: list[Flow] = []

    async def play(session: aiohttp.ClientSession, record: Resource, auth_token: str) -> None:
        flow = Flow(sandbox, session, record, auth_token, parties, account_numbers(sandbox),
                    first_params)
        flows.append(flow)
        await flow.play()
        for dialed in record["dialed"]:  # the call waits on <Dial> until its legs end
            if dialed.get("status_callback"):
                await dial_leg(sandbox, record, dialed)

    record = sandbox.record_call(call, play=play)
    try:
        async with asyncio.timeout(RUN_SECONDS):
            await sandbox.wait_for_twiml(record["sid"], timeout=RUN_SECONDS)
            if flows and flows[0].followups:
                await asyncio.gather(*flows[0].followups, return_exceptions=True)
    except TimeoutError:
        raise ActionError(
            504, "App too slow",
            f"The call {record['sid']} was still waiting on the app after {RUN_SECONDS:g} s; "
            "it goes on in the sandbox (see /_sandbox/history).") from None
    return record


async def dial_leg(sandbox: SandboxState, parent: Resource, dialed: dict[str, Any]) -> None:
    """The call ``<Dial>`` places to one noun, reporting to its statusCallback (Twilio's
    child call: https://www.twilio.com/docs/voice/twiml/dial#dial-child-call-status)."""
    form = {"From": dialed["caller_id"] or parent["from"], "To": dialed["to"],
            "StatusCallback": dialed["status_callback"]}
    # The TwiML attribute lists its events space-separated; the leg, like a REST call,
    # holds one a value.
    leg = build_call(parent["account_sid"], form,
                     {**form, "StatusCallbackEvent": dialed["events"].split()})
    leg.update(direction="outbound-dial", parent_call_sid=parent["sid"])
    leg = sandbox.record_call(leg)
    await sandbox.wait_for_twiml(leg["sid"], timeout=30)


def account_numbers(sandbox: SandboxState) -> Callable[[str], bool]:
    """Whether a number is the account's ("a validated outgoing number"): the magic valid
    sender and the number the sandbox is configured with (``default_number``), and in
    ``live-like`` mode any number its check takes as a call's ``From``."""
    own = ACCOUNT_NUMBERS | {sandbox.default_number}

    def owns(number: str) -> bool:
        if number in own:
            return True
        if not number.startswith("+"):
            return False
        try:
            sandbox.check_numbers("call", number, number, None)
        except TwilioApiError:
            return False
        return True

    return owns
