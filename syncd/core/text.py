"""Text from remote data or the command line made safe for where it goes: a terminal (`printable`), and one
segment of a URL path (`path_segment`).

Display names, UPNs, numbers and error texts come from Graph, SmartCommunicator and our database, so anyone
who can edit a directory entry chooses what they hold. Printed raw, a control character acts on the
admin's terminal instead of being shown (ESC starts colour, cursor and title sequences; CR and BS overwrite
what came before), and a bidi override (U+202E) reorders the characters after it, so a line can read as
something it does not say. `printable` shows each such character as a visible escape instead.

The text renderers (`syncd explain`, `syncd status`, the sync summary, the history table) pass what they
print through it. Machine-readable output (JSON, CSV) stays exact: JSON escapes control characters itself.

A key put in a URL path (`/users/{key}`) must name that one resource. Percent-encoding (msgraph-sdk's URL
templates do it) keeps "/", "?" and "#" inside the segment, but not the dot segments: "." and ".." are
resolved by URL normalisation (`/v1.0/users/..` is sent as `/v1.0`), and an empty key names the collection.
`path_segment` refuses those.
"""

from __future__ import annotations

import re

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""The embeddings, overrides and isolates (LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI): the characters of
"Trojan Source" (CVE-2021-42574). The marks LRM, RLM and ALM only nudge neutral characters and are kept."""

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029" + "".join(sorted(BIDI_CONTROLS)) + "]")
"""C0 controls (tab, LF and CR included), DEL, C1 controls, the line and paragraph separators, and the bidi
controls above."""


def escape_char(char: str) -> str:
    """Pure: the visible escape of one character: `\\x1b` below U+0100, else `\\u202e` (Python's spelling)."""
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """Pure: `text` with every control character (C0 with tab, LF and CR; DEL; C1), line or paragraph
    separator and bidi embedding, override or isolate replaced by its escape ("\\x1b[31m" becomes the
    eight characters `\\x1b[31m`); everything else, accents, scripts and emoji included, is kept.

    Idempotent (an escape is plain ASCII). A backslash is not doubled: the result is for reading, not for
    parsing back, so a name that holds the four characters `\\x1b` reads the same as one holding ESC; the
    JSON outputs are the exact form.
    """
    return _UNPRINTABLE.sub(lambda match: escape_char(match[0]), text)


def path_segment(key: str) -> str | None:
    """Pure: `key` when, percent-encoded, it stays one segment of a URL path in its place; None for the
    empty key and the dot segments "." and ".." (no encoding keeps those in place: RFC 3986 lets a
    normaliser decode `%2E` back to "."). No Graph object ID or UPN is one of them."""
    return None if key in ("", ".", "..") else key


__all__ = ["BIDI_CONTROLS", "escape_char", "path_segment", "printable"]
