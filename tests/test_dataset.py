"""IdMap (external <-> internal ids, append-only) and the strongest-event rule."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from recsys_cli.data.schema import CART, PURCHASE, VIEW
from recsys_cli.dataset import IdMap, csr_row, strongest_code


def test_ids_are_numbered_in_order_of_first_appearance():
    ids = IdMap.from_ids(["b", "a", "b", "c", "a"])
    assert list(ids.external_ids) == ["b", "a", "c"] and len(ids) == 3
    assert ids.to_internal(["a", "b", "c"]).tolist() == [1, 0, 2]
    assert ids.to_external(np.array([2, 0])).tolist() == ["c", "b"]


def test_unknown_ids_are_minus_one_not_an_error():
    ids = IdMap.from_ids(["p1", "p2"])
    assert ids.to_internal(["p2", "nope", "p1"]).tolist() == [1, -1, 0]
    assert ids.get("p2") == 1 and ids.get("nope") == -1
    assert ids.to_internal([]).tolist() == []


def test_ids_that_look_alike_stay_distinct():
    ids = IdMap.from_ids(["1", "01", "1.0", " 1", "a/b", "é"])
    assert ids.to_internal(["01", "1", " 1", "1.0", "é", "a/b"]).tolist() == [1, 0, 3, 2, 5, 4]


def test_add_ids_appends_and_never_moves_an_existing_mapping():
    before = IdMap.from_ids(["x", "y"])
    after = before.add_ids(["z", "y", "w", "z"])
    assert list(after.external_ids) == ["x", "y", "z", "w"]
    assert after.to_internal(["x", "y"]).tolist() == before.to_internal(["x", "y"]).tolist() == [0, 1]
    assert list(before.external_ids) == ["x", "y"]  # the original map is unchanged (frozen)


def test_encoding_a_column_extends_the_map_and_numbers_every_row():
    before = IdMap.from_ids(["x", "y"])
    column = pd.Series(["z", "y", "01", "z", "1", "x", "01"], dtype=object)
    after, internal = before.encode(column)
    assert list(after.external_ids) == ["x", "y", "z", "01", "1"]
    assert internal.tolist() == [2, 1, 3, 2, 4, 0, 3] and internal.dtype == np.int64
    assert after.to_internal(column).tolist() == internal.tolist()
    same, none = after.encode(pd.Series([], dtype=object))
    assert same is after and none.tolist() == []
    missing = pd.Series(["b", None, "c", "b", np.nan], dtype=object)  # factorize leaves these out: numbered as before
    expected = before.add_ids(missing)
    encoded, internal = before.encode(missing)
    assert list(encoded.external_ids[:4]) == list(expected.external_ids[:4]) and len(encoded) == len(expected)
    assert internal.tolist() == expected.to_internal(missing).tolist()
    assert internal[1] != internal[2], "a missing id is not the next customer's"


def test_add_ids_with_nothing_new_returns_the_same_map():
    ids = IdMap.from_ids(["x", "y"])
    assert ids.add_ids(["y", "x"]) is ids


def test_a_pickled_map_loads_with_the_same_positions():
    ids = IdMap.from_ids(["b", "a", "c"]).add_ids(["d"])
    loaded = pickle.loads(pickle.dumps(ids))
    assert list(loaded.external_ids) == ["b", "a", "c", "d"]
    assert loaded.to_internal(["d", "a", "zz"]).tolist() == [3, 1, -1]
    assert loaded.get("c") == 2
    empty = pickle.loads(pickle.dumps(IdMap.from_ids([])))
    assert len(empty) == 0 and empty.to_internal(["a"]).tolist() == [-1]


@pytest.mark.parametrize("as_frame", [True, False])
def test_the_strongest_event_wins_purchase_over_cart_over_view(as_frame):
    counts = {"n_view": np.array([3, 1, 0, 2]), "n_cart": np.array([0, 2, 1, 0]), "n_purchase": np.array([0, 1, 0, 0])}
    codes = strongest_code(pd.DataFrame(counts) if as_frame else counts)
    assert codes.tolist() == [VIEW, PURCHASE, CART, VIEW] and codes.dtype == np.int8


@pytest.mark.parametrize("indices", [[3, 7, 40], [40, 3, 7], [5], []], ids=["sorted", "unsorted", "one", "empty"])
def test_a_cheap_one_customer_row_behaves_like_scipys_own(indices):
    """csr_row skips scipy's validation: products, arithmetic and the sorted-indices flag must still be right."""
    from scipy import sparse

    indices = np.array(indices, dtype=np.int32)
    values = np.arange(1, len(indices) + 1, dtype=np.float32)
    cheap = csr_row(50, values, indices)
    scipys = sparse.csr_matrix((values, indices, np.array([0, len(indices)])), shape=(1, 50))
    assert cheap.shape == (1, 50) and cheap.nnz == len(indices)
    np.testing.assert_array_equal(cheap.toarray(), scipys.toarray())
    assert cheap.has_sorted_indices == scipys.has_sorted_indices
    assert cheap.has_canonical_format == scipys.has_canonical_format
    weights = np.arange(50 * 4, dtype=np.float32).reshape(50, 4)
    np.testing.assert_array_equal(cheap @ weights, scipys @ weights)
    np.testing.assert_array_equal((cheap + scipys).toarray(), 2 * scipys.toarray())
    np.testing.assert_array_equal(cheap.sorted_indices().indices, np.sort(indices))


def test_a_few_ids_and_many_ids_map_the_same_way():
    """to_internal looks a handful of ids up one by one and builds an index for more: same answers."""
    ids = IdMap.from_ids([f"p{i}" for i in range(100)])
    asked = ["p3", "nope", "p99", "", "p3"] * 10  # 50 ids: the index path
    many = ids.to_internal(asked)
    few = np.concatenate([ids.to_internal(asked[i : i + 5]) for i in range(0, len(asked), 5)])
    np.testing.assert_array_equal(few, many)
    assert many[:5].tolist() == [3, -1, 99, -1, 3]
    assert ids.to_internal([["p3"], None, 3]).tolist() == [-1, -1, -1]  # not ids at all: unknown, never an error
