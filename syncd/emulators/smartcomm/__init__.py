"""A faithful emulator of IntelePeer's SmartCommunicator agents API, for tests and demos.

Tests and demos drive syncd's real HTTP client against `SmartCommEmulator.app`, in-process through
`httpx.ASGITransport` or as a real HTTPS server (`syncd.emulators.server.serve_https`). It implements the
published API (docs/spec/smartcommunicator-agents-api.md): JWT authentication, the onboarding rules and their
400 messages, the differently shaped error bodies of each endpoint, and `key_id` lookups. On top of that it
injects faults (latency, 5xx, 429 with Retry-After, dropped connections, scripted one-shot faults) and
records every request, so tests check what the service received rather than how our code called it.

A control API under `/_emulator/` (not part of the emulated service, never logged, no auth) exposes the
same controls to another process.

`SmartCommEmulator` (in `emulator`) is put together from mixins, one per module, over the shared state:
`store` (agents, registries, lookups, the request log), `auth` (authenticate and tokens), `agents` (the
agents endpoints), `control` (the public methods and the /_emulator/ routes) and `ratelimit` (an optional
token bucket answering 429). `wire` below them holds the paths, requests, replies and error bodies.
"""

from syncd.emulators.common import Faults, ScriptedFault
from syncd.emulators.smartcomm.emulator import (
    DEFAULT_CUSTOMER_ID,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    SmartCommEmulator,
)
from syncd.emulators.smartcomm.ratelimit import RateLimit
from syncd.emulators.smartcomm.store import AgentStatus, KeyId
from syncd.emulators.smartcomm.wire import AUTH_PATH, SMARTCOMM_PREFIX, RecordedRequest

__all__ = [
    "AUTH_PATH",
    "DEFAULT_CUSTOMER_ID",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "SMARTCOMM_PREFIX",
    "AgentStatus",
    "Faults",
    "KeyId",
    "RateLimit",
    "RecordedRequest",
    "ScriptedFault",
    "SmartCommEmulator",
]
