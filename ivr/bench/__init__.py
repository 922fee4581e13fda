"""``hotline bench``: how much one machine carries, our server beside native Asterisk.

One run against the real Asterisk 22 measures two arms with the same callers
and agents, both Local channels so that the load generator stays out of the
way:

- arm A: the 12345 dial plan driven by our server over AsyncAGI, tickets
  written (``from-pstn`` -> ``yht-hotline``);
- arm B: the same dial plan compiled to native dialplan by
  :mod:`routing.native` (``yht-native``), no server in the loop.

Modules: :mod:`~ivr.bench.settings` (what a run does), :mod:`~ivr.bench.stack`
(Asterisk, Mosquitto, the server process, the bench's own AMI session and its
agents), :mod:`~ivr.bench.calls` (originating callers and following them),
:mod:`~ivr.bench.proc` (CPU from /proc), :mod:`~ivr.bench.micro` (parser and
ticket store on recorded data), :mod:`~ivr.bench.report` (results.json, the
chart, docs/performance.md) and :mod:`~ivr.bench.run` (the whole run).
"""
