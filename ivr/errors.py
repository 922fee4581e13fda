"""The exceptions yihaotong raises, one tree with one root.

    HotlineError
    ├── ConfigError                  bad configuration (names the file and key)
    ├── DialplanError                a dial plan that cannot be served (file:line)
    ├── AmiError                     anything from the Asterisk Manager link
    │   ├── AmiConnectionLost        (also ConnectionError) the link dropped
    │   ├── AmiLoginError            (also PermissionError) secret or user refused
    │   ├── AmiTimeout               (also TimeoutError) no reply in time
    │   └── AmiActionError           Asterisk answered Response: Error
    │       └── AmiCommandError      a CLI command failed; carries its output
    ├── AgiError                     an AsyncAGI command failed or the channel left
    │   └── AgiHangup                the caller hung up during a command
    ├── TicketStoreError             the ticket store could not do what was asked
    ├── AgentCommandError            an agent command names no agent or cannot be done
    └── PbxError                     Asterisk could not be provisioned or started

Foreign errors (sqlite3, aiomqtt, OSError from sockets) are translated where we
wrap them, so callers only need to know this tree.
"""

from __future__ import annotations


class HotlineError(Exception):
    """Root of every error yihaotong raises on purpose."""


class ConfigError(HotlineError):
    pass


class DialplanError(HotlineError):
    """A dial plan problem; ``problems`` holds one ``FILE:LINE: message`` each."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class AmiError(HotlineError):
    pass


class AmiConnectionLost(AmiError, ConnectionError):
    pass


class AmiLoginError(AmiError, PermissionError):
    pass


class AmiTimeout(AmiError, TimeoutError):
    pass


class AmiActionError(AmiError):
    def __init__(self, action: str, message: str, response=None):
        self.action = action
        self.response = response
        super().__init__(f"{action} failed: {message}")


class AmiCommandError(AmiActionError):
    def __init__(self, command: str, output: list[str], response=None):
        self.output = output
        text = "; ".join(line for line in output if line.strip()) or "no output"
        super().__init__(f"Command {command!r}", text, response)


class AgiError(HotlineError):
    pass


class AgiHangup(AgiError):
    pass


class TicketStoreError(HotlineError):
    pass


class PbxError(HotlineError):
    pass


class AgentCommandError(HotlineError):
    """An agent login, logout, pause or unpause that cannot be done."""


class EventBusError(HotlineError):
    """The MQTT event bus was misused or its spool file cannot be used."""
