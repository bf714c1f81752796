"""A long-lived process's memory of the agents list its last full cycle read: the body's digest with the
agents parsed from it, so that the next full cycle takes an unchanged list as it is instead of parsing
every agent again.

A daemon's full cycle lists every agent of the account. When nothing changed, SmartCommunicator sends the
very body it sent last time, byte for byte; `AgentsMemo` keeps a 128-bit blake2b digest of that body with
the agents parsed from it. A body with another digest is parsed as usual, after the memo has let go of the
old agents (never two lists alive at once). `Agent` is immutable, and the list is handed out for reading
only. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from syncd.core.model import Agent


def body_digest(body: bytes) -> bytes:
    """Pure: the digest of an answer's whole body (16 bytes of blake2b)."""
    return hashlib.blake2b(body, digest_size=16).digest()


class AgentsMemo:
    """The agents parsed from the last agents list body."""

    def __init__(self) -> None:
        self._digest: bytes | None = None
        self._agents: Sequence[Agent] = ()
        self.recalled = 0
        """How many times a list was taken from the memo (for tests and the log)."""

    def recall(self, digest: bytes) -> Sequence[Agent] | None:
        """The agents parsed from a body of this `body_digest`, if that is the one kept; else None, and the
        memo lets go of what it kept."""
        if digest == self._digest:
            self.recalled += 1
            return self._agents
        self._digest, self._agents = None, ()
        return None

    def keep(self, digest: bytes, agents: Sequence[Agent]) -> None:
        """Keep the agents parsed from a body of this digest."""
        self._digest, self._agents = digest, agents
