"""Real SIP softphones (PJSUA2 in worker processes) driven from asyncio."""

from ivr.softphone.audio import Loudness, loudness
from ivr.softphone.errors import (
    CallDisconnected,
    CommandFailed,
    RegistrationFailed,
    SoftphoneError,
    SoftphoneTimeout,
    WorkerDied,
)
from ivr.softphone.farm import SoftphoneFarm
from ivr.softphone.phone import Call, Phone

__all__ = [
    "Call",
    "CallDisconnected",
    "CommandFailed",
    "Loudness",
    "Phone",
    "RegistrationFailed",
    "SoftphoneError",
    "SoftphoneFarm",
    "SoftphoneTimeout",
    "WorkerDied",
    "loudness",
]
