"""What the softphone farm raises; every error is a :class:`HotlineError`.

SoftphoneError
├── WorkerDied            (also ConnectionError) a PJSUA2 worker process exited
├── SoftphoneTimeout      (also TimeoutError) no reply or no event in time
├── CommandFailed         the worker refused or PJSUA2 raised
├── RegistrationFailed    REGISTER did not end in 2xx; carries the SIP code
└── CallDisconnected      the call ended while waiting for something else
"""

from __future__ import annotations

from ivr.errors import HotlineError


class SoftphoneError(HotlineError):
    pass


class WorkerDied(SoftphoneError, ConnectionError):
    pass


class SoftphoneTimeout(SoftphoneError, TimeoutError):
    pass


class CommandFailed(SoftphoneError):
    pass


class RegistrationFailed(SoftphoneError):
    def __init__(self, phone: str, code: int, reason: str):
        self.phone = phone
        self.code = code
        self.reason = reason
        super().__init__(f"phone {phone}: registration failed: {code} {reason}")


class CallDisconnected(SoftphoneError):
    def __init__(self, message: str, code: int | None, reason: str):
        self.code = code
        self.reason = reason
        super().__init__(message)
