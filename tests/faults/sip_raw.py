"""A bare SIP client on UDP for hostile tests: it can speak from any local
address (127.0.0.2, ...), which the softphones cannot, and answers a digest
challenge with whatever password it is given."""

from __future__ import annotations

import hashlib
import re
import secrets
import socket


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class RawSip:
    def __init__(self, source: str, server_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(3)
        self.source = source
        self.port = self.sock.getsockname()[1]
        self.server = ("127.0.0.1", server_port)
        self._cseq = 0

    def close(self) -> None:
        self.sock.close()

    def register(self, user: str, password: str) -> list[int]:
        """REGISTER as ``user``; the status codes of the answers, in order."""
        call_id = secrets.token_hex(8)
        tag = secrets.token_hex(4)
        codes: list[int] = []
        auth = ""
        for _ in range(2):
            reply = self._send(user, call_id, tag, auth)
            code = int(reply.split(" ", 2)[1])
            codes.append(code)
            challenge = re.search(r"^WWW-Authenticate: Digest (.*)$", reply, re.M)
            if code != 401 or challenge is None or auth:
                break
            auth = self._answer(user, password, challenge[1].strip())
        return codes

    def _send(self, user: str, call_id: str, tag: str, auth: str) -> str:
        self._cseq += 1
        uri = f"sip:127.0.0.1:{self.server[1]}"
        lines = [
            f"REGISTER {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.source}:{self.port};rport;"
            f"branch=z9hG4bK{secrets.token_hex(6)}",
            "Max-Forwards: 70",
            f"From: <sip:{user}@127.0.0.1>;tag={tag}",
            f"To: <sip:{user}@127.0.0.1>",
            f"Call-ID: {call_id}",
            f"CSeq: {self._cseq} REGISTER",
            f"Contact: <sip:{user}@{self.source}:{self.port}>",
            "Expires: 60",
        ]
        if auth:
            lines.append(f"Authorization: {auth}")
        message = "\r\n".join([*lines, "Content-Length: 0", "", ""])
        self.sock.sendto(message.encode(), self.server)
        while True:
            data, _ = self.sock.recvfrom(65535)
            text = data.decode(errors="replace")
            status = text.split(" ", 2)
            # Skip provisional answers (100 Trying).
            if len(status) > 1 and status[1].isdigit() and int(status[1]) >= 200:
                return text

    def _answer(self, user: str, password: str, challenge: str) -> str:
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        realm, nonce = fields["realm"], fields["nonce"]
        uri = f"sip:127.0.0.1:{self.server[1]}"
        ha1 = _md5(f"{user}:{realm}:{password}")
        ha2 = _md5(f"REGISTER:{uri}")
        cnonce, nc = secrets.token_hex(4), "00000001"
        if "auth" in fields.get("qop", ""):
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            extra = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
            extra = ""
        opaque = f', opaque="{fields["opaque"]}"' if "opaque" in fields else ""
        return (
            f'Digest username="{user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{response}", algorithm=MD5{extra}{opaque}'
        )
