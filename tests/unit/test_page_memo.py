"""`PageMemo`, `mapping_inputs` and `AgentsMemo` on plain data: a page is taken only from its own place with
its own body, under the same mapping inputs, and only what a whole read kept survives it; behind memory, a
`PageStore` (here a dict) is asked only for places memory has nothing for, is written every page a read
mapped or first took while it could not write, and forgets what a whole read did not reach."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from syncd.core.model import Agent, Member, Skipped, SkipReason
from syncd.graph.page_memo import Mapped, PageMemo, mapping_inputs, page_digest
from syncd.smartcomm.memo import AgentsMemo, body_digest

ADA = Member("a1", "t1", "ada@contoso.com", "+14155550100", None, "businessPhones")
BOB = Skipped("b2", "bob@contoso.com", SkipReason.NO_PHONE, "businessPhones is empty")
INPUTS = mapping_inputs("settings", {})


class DictPages:
    """A `PageStore` in a dict, by (group, number): what a real store holds, with the calls it received."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], tuple[str, str, list[Mapped], str | None]] = {}
        self.writable = True
        self.asked: list[tuple[str, int]] = []

    def stored_page(
        self, group_id: str, number: int, digest: str, inputs: str
    ) -> tuple[Sequence[Mapped], str | None] | None:
        self.asked.append((group_id, number))
        row = self.rows.get((group_id, number))
        if row is None or row[:2] != (digest, inputs):
            return None
        return list(row[2]), row[3]

    def store_page(
        self,
        group_id: str,
        number: int,
        digest: str,
        inputs: str,
        mapped: Sequence[Mapped],
        next_link: str | None,
    ) -> bool:
        if self.writable:
            self.rows[(group_id, number)] = (digest, inputs, list(mapped), next_link)
        return self.writable

    def trim_pages(self, last_pages: Mapping[str, int]) -> int:
        stale = [place for place in self.rows if place[1] > last_pages.get(place[0], 0)]
        for place in stale:
            del self.rows[place]
        return len(stale)


def test_a_fresh_memo_takes_a_stored_page_with_the_same_body_and_inputs_only() -> None:
    pages = DictPages()
    first = PageMemo()
    first.begin(INPUTS, pages)
    first.keep("g1", 1, page_digest(b"one"), [ADA], "next")
    first.keep("g1", 2, page_digest(b"two"), [BOB], None)
    first.end()
    assert set(pages.rows) == {("g1", 1), ("g1", 2)}

    fresh = PageMemo()  # a new process: nothing in memory
    fresh.begin(INPUTS, pages)
    taken = fresh.recall("g1", 1, page_digest(b"one"))
    assert taken is not None
    assert (list(taken.mapped), taken.next_link) == ([ADA], "next")
    assert fresh.recall("g1", 2, page_digest(b"two, changed")) is None
    assert fresh.take_recalled() == {"pages_unchanged": 1, "pages_from_store": 1}

    other = PageMemo()  # other mapping inputs: nothing stored is taken
    other.begin(mapping_inputs("other settings", {}), pages)
    assert other.recall("g1", 1, page_digest(b"one")) is None


def test_memory_comes_first_and_the_store_is_asked_only_for_places_memory_has_nothing_for() -> None:
    pages = DictPages()
    memo = PageMemo()
    memo.begin(INPUTS, pages)
    memo.keep("g1", 1, page_digest(b"one"), [ADA], "next")
    memo.end()
    memo.begin(INPUTS, pages)
    assert memo.recall("g1", 1, page_digest(b"one")) is not None  # from memory: the store is not asked
    assert memo.recall("g1", 2, page_digest(b"two")) is None
    assert pages.asked == [("g1", 2)]
    assert memo.take_recalled() == {"pages_unchanged": 1, "pages_from_store": 0}


def test_a_page_taken_while_the_store_could_not_write_is_written_by_the_next_read_that_can() -> None:
    pages = DictPages()
    pages.writable = False  # a dry run
    memo = PageMemo()
    memo.begin(INPUTS, pages)
    memo.keep("g1", 1, page_digest(b"one"), [ADA], None)
    memo.end()
    assert pages.rows == {}
    pages.writable = True
    memo.begin(INPUTS, pages)
    assert memo.recall("g1", 1, page_digest(b"one")) is not None  # from memory
    assert pages.rows == {("g1", 1): (page_digest(b"one").hex(), INPUTS.hex(), [ADA], None)}
    memo.end()
    pages.rows.clear()
    memo.begin(INPUTS, pages)
    assert memo.recall("g1", 1, page_digest(b"one")) is not None
    assert pages.rows == {}  # written once: the memo does not write a page it knows the store holds


def test_a_whole_read_trims_the_store_and_a_failed_one_does_not() -> None:
    pages = DictPages()
    memo = PageMemo()
    memo.begin(INPUTS, pages)
    for number in (1, 2, 3):
        memo.keep("g1", number, page_digest(b"%d" % number), [ADA], None)
    memo.keep("g2", 1, page_digest(b"g2"), [BOB], None)
    memo.end()
    memo.begin(INPUTS, pages)
    assert memo.recall("g1", 1, page_digest(b"1")) is not None
    memo.abandon()  # failed after one page: nothing forgotten
    assert len(pages.rows) == 4
    memo.begin(INPUTS, pages)
    assert memo.recall("g1", 1, page_digest(b"1")) is not None
    memo.end()  # a whole read of g1's first page only (g2 no longer configured, g1 shrank)
    assert set(pages.rows) == {("g1", 1)}


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
    assert memo.take_recalled() == {"pages_unchanged": 1, "pages_from_store": 0}
    assert memo.take_recalled() == {"pages_unchanged": 0, "pages_from_store": 0}


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
