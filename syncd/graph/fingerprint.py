"""Fingerprints of what `map_user` is given: a Graph user object as Graph returned it, with every other input
of its mapping, so that a full read can take an earlier mapping of an unchanged user from a cache instead of
mapping (and parsing the phone numbers of) everyone again (`syncd.graph.mapping_cache`).

A fingerprint is a 64-bit blake2b digest (never Python's `hash()`, which is salted per process) of:
- the inputs shared by every user of a read, hashed once per `Fingerprints`: MAPPING_VERSION, the
  phonenumbers version (its metadata decides which numbers are valid), the Unicode database version (phone
  text is NFKC-normalised and checked for letters and spaces by category), the tenant ID, the phone source
  chain, `graph.default_region` and `graph.filter` as configured;
- per user, `repr((excluded_by, user))`: the excluded group holding the user (or None) and the whole user
  object, every key and value. `repr` of parsed JSON is injective (strings quoted and escaped, `True` is not
  `1`, `1.0` is not `1`), so two users that differ in anything, keys Graph added and key order included,
  have different texts; a reordering only costs a cache miss, never a wrong hit. It is also about twice as
  cheap as `json.dumps(sort_keys=True)` or `repr(sorted(user.items()))`.

Two different inputs share a fingerprint with probability 2**-64. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Sequence
from typing import Any

import phonenumbers

MAPPING_VERSION = 1
"""Bump it whenever what `map_user` returns for some input may change (syncd/graph/mapping.py,
syncd/core/scope_filter.py, the phone attributes of syncd/core/model.py): every cached mapping is then taken
for a miss and mapped again. tests/unit/test_fingerprint.py pins a digest of those sources to remind you."""

MAX_KEY_LENGTH = 64
"""The longest object ID whose mapping is cached (the cache's key column is String(64)); longer ones, which
Graph never sends, are mapped every time."""

_PERSON = b"syncd-mapping"


def cache_key(user: object) -> str | None:
    """Pure: the object ID `map_user` gives this user (its `id`, stripped), or None when the mapping is not to
    be cached: not a JSON object, no usable `id`, or one longer than MAX_KEY_LENGTH."""
    if not isinstance(user, dict):
        return None
    object_id = user.get("id")
    if not isinstance(object_id, str):
        return None
    object_id = object_id.strip()
    if not object_id or len(object_id) > MAX_KEY_LENGTH:
        return None
    return object_id


class Fingerprints:
    """The fingerprints of one read's users: the inputs shared by all of them are hashed once."""

    def __init__(
        self, *, tenant_id: str, phone_sources: Sequence[str], default_region: str, scope_filter: str
    ) -> None:
        """`scope_filter` is `graph.filter` as configured (text; "" without one)."""
        shared = {
            "mapping_version": MAPPING_VERSION,
            "phonenumbers": phonenumbers.__version__,
            "unicode": unicodedata.unidata_version,
            "tenant_id": tenant_id,
            "phone_sources": list(phone_sources),
            "default_region": default_region,
            "filter": scope_filter,
        }
        text = json.dumps(shared, sort_keys=True, ensure_ascii=True)
        self._shared = hashlib.blake2b(text.encode(), digest_size=8, person=_PERSON)

    def of(self, user: dict[str, Any], excluded_by: str | None = None) -> int | None:
        """Pure: the user's fingerprint as a signed 64-bit integer (what a BIGINT column holds); None when it
        cannot be computed (JSON nested too deep for `repr`): such a user is mapped, not cached."""
        try:
            text = repr((excluded_by, user))
        except RecursionError:
            return None
        digest = self._shared.copy()
        # repr escapes lone surrogates (they are not printable), so the text always encodes.
        digest.update(text.encode())
        return int.from_bytes(digest.digest(), "big", signed=True)
