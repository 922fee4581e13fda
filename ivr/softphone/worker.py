"""The PJSUA2 worker process: headless SIP phones driven over JSON lines.

Run as ``python -m ivr.softphone.worker --tag w1 --record-dir DIR``.  Commands
arrive on stdin (``{"id": 7, "cmd": "call", ...}``), replies (``{"reply": 7,
"ok": true, "result": {...}}``) and events (``{"event": "state", ...}``) leave
on stdout, logs go to stderr.

PJSUA2 lives here, not in the asyncio process, so that its C threads, its GIL
use and its aborts at exit stay out of the server and the tests.  Every PJSUA2
call happens on the main thread: the library runs with no worker threads and
``mainThreadOnly``, and the loop below alternates ``libHandleEvents`` with the
commands a reader thread queued.  Stdin closing (the parent died) shuts down.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import heapq
import itertools
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pjsua2 as pj

from ivr import log

STATES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}
MEDIA_STATUS = {
    pj.PJSUA_CALL_MEDIA_NONE: "NONE",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "ACTIVE",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "LOCAL_HOLD",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "REMOTE_HOLD",
    pj.PJSUA_CALL_MEDIA_ERROR: "ERROR",
}
CLOCK_RATE = 8000  # PCMU's rate: no resampling between the calls and the bridge
# A WAV file is finalised when its media port is destroyed, which the conference
# bridge may do on its next clock tick: report the file only after that.
RECORDING_SETTLE = 0.2
LOOPBACK = "127.0.0.1"

logger = log.phones


def _mask_uri(uri: str) -> str:
    """Mask the user part of a SIP URI: it is often a citizen's number."""
    head, at, tail = uri.partition("@")
    if not at:
        return uri
    scheme, colon, user = head.rpartition(":")
    return f"{scheme}{colon}{log.mask_number(user)}@{tail}"


def _guarded(method):
    """PJSUA2 callbacks must never raise into C++: log the error and go on."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception:
            logger.error(
                "callback %s failed:\n%s", method.__name__, traceback.format_exc()
            )
        return None

    return wrapper


def _sip_headers(whole_msg: str) -> dict[str, str]:
    """Header fields of a SIP message (the first of each name wins)."""
    headers: dict[str, str] = {}
    for line in whole_msg.split("\r\n")[1:]:
        if not line:
            break
        name, colon, value = line.partition(":")
        if colon:
            headers.setdefault(name.strip(), value.strip())
    return headers


class Pending:
    """Returned by a command handler whose reply is sent later."""


PENDING = Pending()


class CommandError(Exception):
    pass


class PhoneCall(pj.Call):
    def __init__(
        self,
        worker: Worker,
        account: PhoneAccount,
        call_id: str,
        pj_call_id: int = pj.PJSUA_INVALID_ID,
    ):
        super().__init__(account, pj_call_id)
        self.worker = worker
        self.account = account
        self.cid = call_id
        self.state = "NULL"
        self.recorder: pj.AudioMediaRecorder | None = None
        self.recording_path: str | None = None
        self.recording_done = False
        self.source: pj.AudioMedia | None = None  # tone or file played into the call
        self.audio: pj.AudioMedia | None = None
        self.last_dtmf: tuple[str, int] | None = None

    def emit(self, event: str, **fields) -> None:
        self.worker.emit(
            event=event, account=self.account.name, call=self.cid, **fields
        )

    @_guarded
    def onCallState(self, prm):
        ci = self.getInfo()
        self.state = STATES.get(ci.state, str(ci.state))
        logger.info(
            "call %s (%s): %s %s %s",
            self.cid,
            self.account.name,
            self.state,
            ci.lastStatusCode,
            ci.lastReason,
        )
        if self.state == "DISCONNECTED":
            self.audio = None
            self.stop_source()
            self.finish_recording()
        self.emit(
            "state",
            state=self.state,
            code=ci.lastStatusCode,
            reason=ci.lastReason,
            remote_uri=ci.remoteUri,
            sip_call_id=ci.callIdString,
        )
        if self.state == "DISCONNECTED":
            self.worker.retire(self)

    @_guarded
    def onCallMediaState(self, prm):
        ci = self.getInfo()
        status = "NONE"
        for mi in ci.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            status = MEDIA_STATUS.get(mi.status, str(mi.status))
            if mi.status in (
                pj.PJSUA_CALL_MEDIA_ACTIVE,
                pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
            ):
                self.audio = self.getAudioMedia(mi.index)
                self.connect_audio()
            break
        self.emit("media", status=status)

    @_guarded
    def onDtmfEvent(self, prm):
        # One RFC 4733 event comes as many packets; a re-INVITE (hold) restarts
        # the stream, which then takes the event's trailing packets for a new
        # digit.  The event's timestamp is the sender's, so it names the press.
        key = (prm.digit, prm.timestamp)
        if prm.method == pj.PJSUA_DTMF_METHOD_RFC2833 and key == self.last_dtmf:
            return
        self.last_dtmf = key
        logger.info("call %s: DTMF %s", self.cid, prm.digit)
        self.emit("dtmf", digit=prm.digit)

    def connect_audio(self) -> None:
        if self.audio is None:
            return
        if self.recorder is None and not self.recording_done:
            if self.worker.record_dir:
                name = f"{self.account.name}-{self.cid}.wav"
                path = Path(self.worker.record_dir) / name
                self.recorder = pj.AudioMediaRecorder()
                self.recorder.createRecorder(str(path))
                self.recording_path = str(path)
        if self.recorder is not None:
            self.audio.startTransmit(self.recorder)
        if self.source is not None:
            self.source.startTransmit(self.audio)

    def play(self, source: pj.AudioMedia) -> None:
        self.stop_source()
        self.source = source
        self.connect_audio()

    def stop_source(self) -> None:
        if self.source is not None:
            # Destroying the port disconnects it from the bridge.
            self.worker.bury(self.source)
            self.source = None

    def finish_recording(self, reply: Callable[[dict], None] | None = None) -> None:
        """Close the WAV file, then report it (event, or reply to a command)."""
        if self.recording_done:
            if reply:
                reply({"path": self.recording_path})
            return
        self.recording_done = True
        if self.recorder is not None:
            self.worker.bury(self.recorder)
            self.recorder = None

        def report():
            if reply:
                reply({"path": self.recording_path})
            else:
                self.emit("recording", path=self.recording_path)

        self.worker.later(RECORDING_SETTLE if self.recording_path else 0, report)


class PhoneAccount(pj.Account):
    def __init__(
        self, worker: Worker, name: str, *, auto_answer: bool, answer_delay: float
    ):
        super().__init__()
        self.worker = worker
        self.name = name
        self.auto_answer = auto_answer
        self.answer_delay = answer_delay
        self.registered = False
        self.transport_id = -1

    @_guarded
    def onRegState(self, prm):
        info = self.getInfo()
        self.registered = info.regIsActive
        logger.info(
            "phone %s: registration %s %s (active=%s)",
            self.name,
            prm.code,
            prm.reason,
            info.regIsActive,
        )
        self.worker.emit(
            event="reg",
            account=self.name,
            code=prm.code,
            reason=prm.reason,
            active=info.regIsActive,
            expires=prm.expiration,
        )

    @_guarded
    def onIncomingCall(self, prm):
        call = PhoneCall(self.worker, self, self.worker.new_call_id(), prm.callId)
        self.worker.calls[call.cid] = call
        ci = call.getInfo()
        call.state = STATES.get(ci.state, "INCOMING")
        logger.info(
            "phone %s: incoming call %s from %s",
            self.name,
            call.cid,
            _mask_uri(ci.remoteUri),
        )
        call.emit(
            "incoming",
            state=call.state,
            remote_uri=ci.remoteUri,
            sip_call_id=ci.callIdString,
            headers=_sip_headers(prm.rdata.wholeMsg),
        )
        ringing = pj.CallOpParam(True)
        ringing.statusCode = 180
        call.answer(ringing)
        if self.auto_answer:
            self.worker.later(self.answer_delay, lambda: self.worker.answer(call))


class Worker:
    def __init__(self, tag: str, record_dir: str | None, debug: bool, out_fd: int):
        self.tag = tag
        self.record_dir = record_dir
        self.debug = debug
        self.out_fd = out_fd
        self.ep = pj.Endpoint()
        self.accounts: dict[str, PhoneAccount] = {}
        self.calls: dict[str, PhoneCall] = {}
        self.commands: queue.Queue[dict | None] = queue.Queue()
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.call_ids = itertools.count(1)
        # PJSUA2 objects are freed here, outside the callbacks that retire them.
        self.graveyard: list[object] = []
        self.running = True

    # -- plumbing -----------------------------------------------------------

    def emit(self, **msg) -> None:
        data = (json.dumps(msg, ensure_ascii=False) + "\n").encode()
        while data:
            data = data[os.write(self.out_fd, data) :]

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self.seq), fn))

    def bury(self, obj: object) -> None:
        self.graveyard.append(obj)

    def retire(self, call: PhoneCall) -> None:
        self.calls.pop(call.cid, None)
        self.bury(call)

    def new_call_id(self) -> str:
        return f"{self.tag}.{next(self.call_ids)}"

    def read_stdin(self) -> None:
        """Reader thread: only parses lines, never touches PJSUA2."""
        for line in sys.stdin.buffer:
            try:
                self.commands.put(json.loads(line))
            except ValueError:
                logger.error("bad command line: %r", line[:200])
        self.commands.put(None)  # EOF: the parent is gone or closing

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        # The build caps this at PJSUA_MAX_CALLS (4); the farm places phones so.
        cfg.uaConfig.maxCalls = 4
        cfg.uaConfig.userAgent = f"yihaotong-softphone/{self.tag}"
        cfg.uaConfig.natTypeInSdp = 0
        cfg.uaConfig.stunIgnoreFailure = True
        level = 5 if self.debug else 1
        cfg.logConfig.level = level
        cfg.logConfig.consoleLevel = level
        cfg.logConfig.msgLogging = self.debug
        cfg.medConfig.clockRate = CLOCK_RATE
        cfg.medConfig.sndClockRate = CLOCK_RATE
        cfg.medConfig.noVad = True  # keep RTP flowing through silence
        cfg.medConfig.ecTailLen = 0
        self.ep.libInit(cfg)
        self.ep.audDevManager().setNullDev()
        for codec in self.ep.codecEnum2():
            # PCMU only (PCMA as fallback): what the hotline's Asterisk speaks.
            prio = {"PCMU/8000/1": 255, "PCMA/8000/1": 254}.get(codec.codecId, 0)
            self.ep.codecSetPriority(codec.codecId, prio)
        self.ep.libStart()
        self.emit(
            event="ready",
            pid=os.getpid(),
            tag=self.tag,
            pjsua=self.ep.libVersion().full,
        )

    def run(self) -> None:
        threading.Thread(target=self.read_stdin, name="stdin", daemon=True).start()
        while self.running:
            self.ep.libHandleEvents(10)
            self.run_commands()
            self.run_timers()
            self.graveyard.clear()
        self.shutdown()

    def run_commands(self) -> None:
        while self.running:
            try:
                msg = self.commands.get_nowait()
            except queue.Empty:
                return
            if msg is None:
                logger.info("stdin closed: shutting down")
                self.running = False
                return
            self.dispatch(msg)

    def run_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, fn = heapq.heappop(self.timers)
            try:
                fn()
            except Exception:
                logger.error("timer failed:\n%s", traceback.format_exc())

    def dispatch(self, msg: dict) -> None:
        rid = msg.pop("id", None)
        cmd = msg.pop("cmd", "")
        handler = getattr(self, f"cmd_{cmd}", None)

        def reply(result: dict) -> None:
            self.emit(reply=rid, ok=True, result=result)

        try:
            if handler is None:
                raise CommandError(f"unknown command {cmd!r}")
            result = handler(reply=reply, **msg)
        except (CommandError, TypeError, ValueError) as exc:
            self.emit(reply=rid, ok=False, error=str(exc))
        except pj.Error as exc:
            self.emit(reply=rid, ok=False, error=f"{cmd}: {exc.info()}")
        except Exception as exc:
            logger.error("command %s failed:\n%s", cmd, traceback.format_exc())
            self.emit(reply=rid, ok=False, error=f"{cmd}: {exc!r}")
        else:
            if result is not PENDING:
                reply(result or {})

    def shutdown(self) -> None:
        """Hang up, unregister, destroy the library; the caller then _exits."""
        try:
            self.ep.hangupAllCalls()
        except pj.Error as exc:
            logger.warning("hangupAllCalls: %s", exc.info())
        deadline = time.monotonic() + 2.0
        while self.calls and time.monotonic() < deadline:
            self.ep.libHandleEvents(10)
        self.run_timers()
        for call in list(self.calls.values()):
            call.stop_source()
            call.recorder = None
        self.unregister_all()
        for acc in self.accounts.values():
            acc.shutdown()
        self.graveyard.clear()
        # Whatever PJSUA2 still references must not be freed by Python after
        # libDestroy: that is the abort at exit.
        for obj in [*self.calls.values(), *self.accounts.values()]:
            obj.thisown = False
        # NO_RX_MSG: skip libDestroy's fixed one-second wait for responses; the
        # un-REGISTERs were answered above.
        self.ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)

    def unregister_all(self, timeout: float = 1.0) -> None:
        """Un-REGISTER the registered phones and wait (a little) for the 200s."""
        waiting = [acc for acc in self.accounts.values() if acc.registered]
        for acc in waiting:
            try:
                acc.setRegistration(False)
            except pj.Error as exc:
                logger.warning("phone %s: unregister: %s", acc.name, exc.info())
        deadline = time.monotonic() + timeout
        while any(acc.registered for acc in waiting) and time.monotonic() < deadline:
            self.ep.libHandleEvents(10)

    # -- commands -----------------------------------------------------------

    def _account(self, name: str) -> PhoneAccount:
        try:
            return self.accounts[name]
        except KeyError:
            raise CommandError(f"no phone named {name!r}") from None

    def _call(self, call: str) -> PhoneCall:
        try:
            return self.calls[call]
        except KeyError:
            raise CommandError(f"call {call} is over") from None

    def cmd_add_account(
        self,
        reply,
        *,
        name: str,
        user: str,
        password: str = "",
        domain: str = LOOPBACK,
        port: int | None = None,
        register: bool = True,
        auth_user: str | None = None,
        caller_id: str | None = None,
        display_name: str | None = None,
        auto_answer: bool = False,
        answer_delay: float = 0.0,
    ):
        if name in self.accounts:
            raise CommandError(f"phone {name!r} exists")
        tcfg = pj.TransportConfig()
        tcfg.port = 0  # any free port
        tcfg.boundAddress = LOOPBACK
        tid = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        local_port = int(self.ep.transportGetInfo(tid).localName.rpartition(":")[2])

        acfg = pj.AccountConfig()
        from_user = caller_id or user
        aor = f"sip:{from_user}@{domain}"
        if display_name:
            quoted = display_name.replace("\\", "\\\\").replace('"', '\\"')
            acfg.idUri = f'"{quoted}" <{aor}>'
        else:
            acfg.idUri = aor
        if register:
            acfg.regConfig.registrarUri = f"sip:{domain}:{port}"
        acfg.regConfig.registerOnAdd = register
        acfg.regConfig.retryIntervalSec = 0  # a failure is reported, not retried
        if password:
            acfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", auth_user or user, 0, password)
            )
        acfg.sipConfig.transportId = tid
        nat = acfg.natConfig
        nat.iceEnabled = False
        nat.turnEnabled = False
        nat.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        nat.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        nat.contactRewriteUse = 0
        nat.viaRewriteUse = 0
        nat.sdpNatRewriteUse = 0
        nat.sipOutboundUse = 0
        nat.udpKaIntervalSec = 0
        acfg.mediaConfig.transportConfig.boundAddress = LOOPBACK
        acfg.mediaConfig.transportConfig.port = 0

        acc = PhoneAccount(
            self, name, auto_answer=auto_answer, answer_delay=answer_delay
        )
        self.accounts[name] = acc
        try:
            acc.create(acfg)
        except pj.Error:
            del self.accounts[name]
            self.ep.transportClose(tid)
            raise
        acc.transport_id = tid
        logger.info(
            "phone %s: %s on %s:%s%s",
            name,
            log.mask_number(from_user),
            LOOPBACK,
            local_port,
            f", registering at {domain}:{port}" if register else "",
        )
        return {
            "local_port": local_port,
            "contact": f"sip:{from_user}@{LOOPBACK}:{local_port}",
        }

    def cmd_remove_account(self, reply, *, name: str):
        acc = self.accounts.pop(name, None)
        if acc is not None:
            acc.shutdown()
            self.bury(acc)
            # A graceful close: the un-REGISTER in flight still goes out.
            self.ep.transportClose(acc.transport_id)
        return {}

    def cmd_register(self, reply, *, name: str, on: bool):
        self._account(name).setRegistration(on)
        return {}

    def cmd_call(
        self, reply, *, name: str, uri: str, headers: dict[str, str] | None = None
    ):
        acc = self._account(name)
        call = PhoneCall(self, acc, self.new_call_id())
        prm = pj.CallOpParam(True)  # True: default settings, i.e. one audio stream
        for hname, hvalue in (headers or {}).items():
            hdr = pj.SipHeader()
            hdr.hName = hname
            hdr.hValue = hvalue
            prm.txOption.headers.append(hdr)
        self.calls[call.cid] = call
        logger.info("phone %s: call %s to %s", name, call.cid, _mask_uri(uri))
        try:
            call.makeCall(uri, prm)
        except pj.Error:
            self.retire(call)
            raise
        return {"call": call.cid}

    def answer(self, call: PhoneCall, code: int = 200) -> None:
        if call.state not in ("INCOMING", "EARLY"):
            return  # hung up (or answered) meanwhile
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        call.answer(prm)

    def cmd_answer(self, reply, *, call: str, code: int = 200):
        c = self._call(call)
        if c.state not in ("INCOMING", "EARLY"):
            raise CommandError(f"call {call} is {c.state}, cannot answer")
        self.answer(c, code)
        return {}

    def cmd_hangup(self, reply, *, call: str, code: int | None = None):
        c = self.calls.get(call)
        if c is None or c.state == "DISCONNECTED":
            return {}  # already over: hanging up twice is fine
        prm = pj.CallOpParam(True)
        if code:
            prm.statusCode = code
        c.hangup(prm)
        return {}

    def cmd_dtmf(self, reply, *, call: str, digit: str):
        prm = pj.CallSendDtmfParam()
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        prm.digits = digit
        self._call(call).sendDtmf(prm)
        return {}

    def cmd_hold(self, reply, *, call: str):
        self._call(call).setHold(pj.CallOpParam(True))
        return {}

    def cmd_unhold(self, reply, *, call: str):
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self._call(call).reinvite(prm)
        return {}

    def cmd_play_tone(self, reply, *, call: str, hz: int = 440):
        c = self._call(call)
        tone = pj.ToneGenerator()
        tone.createToneGenerator(CLOCK_RATE, 1)
        desc = pj.ToneDesc()
        desc.freq1 = hz
        desc.freq2 = 0
        desc.on_msec = 1000
        desc.off_msec = 0
        desc.volume = 0  # library default
        tones = pj.ToneDescVector()
        tones.append(desc)
        tone.play(tones, True)
        c.play(tone)
        return {}

    def cmd_play_wav(self, reply, *, call: str, path: str, loop: bool = False):
        c = self._call(call)
        player = pj.AudioMediaPlayer()
        player.createPlayer(path, 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        c.play(player)
        return {}

    def cmd_stop_playing(self, reply, *, call: str):
        self._call(call).stop_source()
        return {}

    def cmd_stop_recording(self, reply, *, call: str):
        c = self.calls.get(call)
        if c is None:
            raise CommandError(f"call {call} is over")
        c.finish_recording(reply)
        return PENDING

    def cmd_shutdown(self, reply):
        self.running = False
        return {}


def _line_buffer_c_stdout() -> None:
    """PJSIP logs with printf: flush per line so a crash leaves its last words."""
    try:
        libc = ctypes.CDLL(None)
        libc.setvbuf(ctypes.c_void_p.in_dll(libc, "stdout"), None, 1, 0)  # _IOLBF
    except (OSError, ValueError, AttributeError):
        pass  # not glibc: logs are only delayed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="w")
    parser.add_argument("--record-dir")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)

    # PJSIP prints to fd 1: give the protocol a private copy of stdout and send
    # everything else written to fd 1 to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    _line_buffer_c_stdout()
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.debug else logging.INFO,
        format=f"%(asctime)s %(levelname)-7s phones[{args.tag}]: %(message)s",
    )
    worker = Worker(args.tag, args.record_dir, args.debug, out_fd)
    code = 0
    try:
        worker.start()
        worker.run()
    except Exception:
        logger.critical("worker failed:\n%s", traceback.format_exc())
        code = 1
    sys.stderr.flush()
    # Skip interpreter teardown: PJSUA2's destructors abort after libDestroy.
    os._exit(code)


if __name__ == "__main__":
    main()
