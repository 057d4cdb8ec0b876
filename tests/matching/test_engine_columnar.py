"""The flow path's columns (`matching.engine`) against the object code they stand in for: the
normalized book, rationing at the margin, id order, sort keys, the fills, exact welfare past 64
bits, ids that must be unique; and the canonical bytes against `asdict`.

The clearings themselves are compared byte for byte with the object implementation this replaced
(a few hundred seeded books, outside the suite); `tests/matching/test_engine.py` holds their
properties.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching.engine import (
    Ask,
    Bid,
    Book,
    Class,
    Fill,
    _fill_objects,
    _flow_book,
    _id_ranks,
    _normalized,
    _ration,
    _ration_columns,
    _sorting,
    clear,
)
from tests.fixtures.engine_strategies import block_books, books

DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=200)

TIED_BOOKS = books(
    min_bids=1,
    max_bids=10,
    min_asks=0,
    max_asks=10,
    min_units=0,
    max_units=6,
    max_classes=3,
    max_signatures=3,
    max_price=4,
    max_hours=3,
)


@DETERMINISTIC
@given(book=TIED_BOOKS)
def test_the_columns_hold_the_normalized_book(book: Book) -> None:
    flow_book = _flow_book(book)

    assert flow_book is not None
    assert flow_book.normalized() == _normalized(book)


@DETERMINISTIC
@given(book=TIED_BOOKS, data=st.data())
def test_rationing_on_columns_shares_as_rationing_on_objects(
    book: Book, data: st.DataObject
) -> None:
    flow_book = _flow_book(book)
    assert flow_book is not None
    normalized = _normalized(book)
    demand = dict.fromkeys(flow_book.sigs, 0)
    for b in normalized.bids:
        demand[b.signature] += b.quantity
    totals = {s: data.draw(st.integers(0, q)) for s, q in demand.items()}

    by_objects = _ration(
        normalized.bids, key=lambda b: b.signature, totals=totals, qty=lambda b: b.quantity
    )
    by_columns = _ration_columns(
        flow_book.bid_sig,
        flow_book.bid_price,
        flow_book.bid_qty,
        np.array([totals[s] for s in flow_book.sigs], dtype=np.int64),
    )

    assert dict(zip(flow_book.bid_id.tolist(), by_columns.tolist(), strict=True)) == {
        b.id: by_objects.get(b.id, 0) for b in normalized.bids
    }


@DETERMINISTIC
@given(ids=st.lists(st.text(max_size=6), unique=True, max_size=30))
def test_id_ranks_follow_pythons_string_order(ids: list[str]) -> None:
    ranks = _id_ranks(ids, "bid")

    assert [ids[i] for i in np.argsort(ranks)] == sorted(ids)


@DETERMINISTIC
@given(
    ids=st.lists(
        st.text(alphabet="ab-0123456789", min_size=1, max_size=9), unique=True, max_size=40
    )
)
def test_id_ranks_of_ascii_ids_of_several_lengths_follow_pythons_string_order(
    ids: list[str],
) -> None:
    ranks = _id_ranks(ids, "ask")

    assert [ids[i] for i in np.argsort(ranks)] == sorted(ids)


@DETERMINISTIC
@given(
    keys=st.integers(1, 3).flatmap(
        lambda k: st.integers(0, 25).flatmap(
            lambda n: st.lists(
                st.lists(
                    st.one_of(st.integers(-3, 3), st.integers(-(2**62), 2**62)),
                    min_size=n,
                    max_size=n,
                ),
                min_size=k,
                max_size=k,
            )
        )
    )
)
def test_sorting_orders_rows_as_a_stable_lexicographic_sort(keys: list[list[int]]) -> None:
    columns = [np.array(k, dtype=np.int64) for k in keys]

    assert _sorting(*columns).tolist() == np.lexsort(columns[::-1]).tolist()


def test_fills_made_in_bulk_are_ordinary_fills() -> None:
    made = _fill_objects(["b1", "b2"], ["a1", "a2"], ["c", "d"], [3, 4], [10, 11])

    assert made == (Fill("b1", "a1", "c", 3, 10), Fill("b2", "a2", "d", 4, 11))
    assert hash(made[0]) == hash(Fill("b1", "a1", "c", 3, 10))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made[0].units = 5  # type: ignore[misc]


def test_welfare_past_64_bits_is_exact() -> None:
    price, hours, units = 2**40, 2**30, 2**10
    book = Book(
        asks=[Ask("a1", "c", "p", units, 1, seq=0)],
        bids=[Bid("b1", "g", units, price, seq=1, hours=hours)],
        arcs={"g": ["c"]},
        classes={"c": Class("c")},
    )

    clearing = clear(book)

    assert clearing.fills == (Fill("b1", "a1", "c", units, clearing.fills[0].price),)
    assert clearing.welfare == (price - 1) * units
    assert clearing.welfare_total == (price - 1) * units * hours
    assert clearing.volume_unit_hours == units * hours


def test_a_book_with_a_repeated_bid_id_is_refused() -> None:
    book = Book(
        asks=[Ask("a1", "c", "p", 2, 5, seq=0)],
        bids=[Bid("b1", "g", 1, 9, seq=1), Bid("b1", "g", 1, 8, seq=2)],
        arcs={"g": ["c"]},
        classes={"c": Class("c")},
    )

    with pytest.raises(ValueError, match="bid ids are not unique"):
        clear(book)


@DETERMINISTIC
@given(book=st.one_of(TIED_BOOKS, block_books(per_scu=True, blocks=False)), mcafee=st.booleans())
def test_the_canonical_bytes_are_the_json_of_asdict(book: Book, mcafee: bool) -> None:
    clearing = clear(book, trade_reduction=mcafee)

    expected = json.dumps(dataclasses.asdict(clearing), sort_keys=True, separators=(",", ":"))
    assert clearing.canonical() == expected.encode()
