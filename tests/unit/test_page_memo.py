"""`PageMemo`, `mapping_inputs` and `AgentsMemo` on plain data: a page is taken only from its own place with
its own body, under the same mapping inputs, and only what a whole read kept survives it."""

from __future__ import annotations

from syncd.core.model import Agent, Member, Skipped, SkipReason
from syncd.graph.page_memo import PageMemo, mapping_inputs, page_digest
from syncd.smartcomm.memo import AgentsMemo, body_digest

ADA = Member("a1", "t1", "ada@contoso.com", "+14155550100", None, "businessPhones")
BOB = Skipped("b2", "bob@contoso.com", SkipReason.NO_PHONE, "businessPhones is empty")
INPUTS = mapping_inputs("settings", {})


def test_a_page_is_taken_only_at_its_place_with_its_body() -> None:
    memo = PageMemo()
    memo.begin(INPUTS)
    body = b'{"value": [{"id": "a1"}], "@odata.nextLink": "https://graph/next"}'
    assert memo.recall("g1", 1, page_digest(body)) is None
    memo.keep("g1", 1, page_digest(body), [ADA], "https://graph/next")
    memo.end()

    memo.begin(INPUTS)
    kept = memo.recall("g1", 1, page_digest(body))
    assert kept is not None
    assert list(kept.mapped) == [ADA]
    assert kept.next_link == "https://graph/next"
    assert memo.recall("g1", 2, page_digest(body)) is None  # another place
    assert memo.recall("g2", 1, page_digest(body)) is None  # another group
    assert memo.recall("g1", 1, page_digest(body.replace(b"a1", b"a2"))) is None  # another body
    assert memo.take_recalled() == 1
    assert memo.take_recalled() == 0


def test_other_mapping_inputs_forget_every_page() -> None:
    memo = PageMemo()
    memo.begin(INPUTS)
    memo.keep("g1", 1, page_digest(b"page"), [ADA], None)
    memo.end()
    memo.begin(mapping_inputs("settings", {"a1": "excluded-group"}))
    assert memo.recall("g1", 1, page_digest(b"page")) is None
    assert len(memo) == 0


def test_mapping_inputs_cover_the_settings_and_who_is_excluded_by_which_group() -> None:
    seen = {
        mapping_inputs("settings", {}),
        mapping_inputs("other settings", {}),
        mapping_inputs("settings", {"a1": "g9"}),
        mapping_inputs("settings", {"a1": "g8"}),
        mapping_inputs("settings", {"b2": "g9"}),
        mapping_inputs("settings", {"a1": "g9", "b2": "g9"}),
    }
    assert len(seen) == 6
    assert mapping_inputs("s", {"a1": "g", "b2": "g"}) == mapping_inputs("s", {"b2": "g", "a1": "g"})


def test_a_read_keeps_each_place_once_and_a_whole_read_forgets_what_it_did_not_reach() -> None:
    memo = PageMemo()
    memo.begin(INPUTS)
    memo.keep("g1", 1, page_digest(b"one"), [ADA], "next")
    memo.keep("g1", 2, page_digest(b"two"), [BOB], None)
    memo.end()

    # A read that fails at its second page, whose first changed: the new first page is kept (the old one
    # let go of when its place was read), and the second page, not reached, stays.
    memo.begin(INPUTS)
    assert memo.recall("g1", 1, page_digest(b"one, changed")) is None
    assert len(memo) == 1
    memo.keep("g1", 1, page_digest(b"one, changed"), [BOB], "next")
    memo.abandon()
    memo.begin(INPUTS)
    assert memo.recall("g1", 2, page_digest(b"two")) is not None
    assert memo.recall("g1", 1, page_digest(b"one, changed")) is not None
    memo.end()

    # A whole read of the first page only: the page it did not reach is forgotten.
    memo.begin(INPUTS)
    assert memo.recall("g1", 1, page_digest(b"one, changed")) is not None
    memo.end()
    assert len(memo) == 1
    memo.begin(INPUTS)
    assert memo.recall("g1", 2, page_digest(b"two")) is None


def test_the_agents_memo_takes_only_the_same_body_and_lets_go_of_any_other() -> None:
    memo = AgentsMemo()
    agents = [Agent("a1", "t1", "+14155550100", "active")]
    assert memo.recall(body_digest(b"list")) is None
    memo.keep(body_digest(b"list"), agents)
    assert memo.recall(body_digest(b"list")) is agents
    assert memo.recall(body_digest(b"other list")) is None
    assert memo.recall(body_digest(b"list")) is None  # let go when another body came
    assert memo.recalled == 1
