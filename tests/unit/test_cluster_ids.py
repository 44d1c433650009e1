import numpy as np

from facesieve.cluster.ids import stable_ids


def _ids(labels, previous, sizes, next_id=0):
    return stable_ids(np.array(labels), np.array(previous), sizes, next_id)


def test_unchanged_clusters_keep_their_ids_whatever_hdbscan_calls_them() -> None:
    ids, nxt, ch = _ids([1, 1, 0, 0, -1], [7, 7, 3, 3, -1], {7: 2, 3: 2}, 8)
    assert ids.tolist() == [7, 7, 3, 3, -1] and nxt == 8
    assert (ch.kept, ch.inherited, ch.new, ch.retired) == (2, 0, 0, 0)


def test_grown_and_shrunk_clusters_keep_their_ids_new_ones_get_fresh_ids() -> None:
    # cluster 3 grows by a new face, cluster 7 lost a face, a new cluster appears
    ids, nxt, ch = _ids([0, 0, 0, 1, 2, 2], [3, 3, -1, 7, -1, -1], {3: 2, 7: 2}, 8)
    assert ids.tolist() == [3, 3, 3, 7, 8, 8] and nxt == 9
    assert (ch.kept, ch.inherited, ch.new, ch.retired) == (0, 2, 1, 0)


def test_merges_keep_the_larger_id_splits_keep_it_for_the_larger_part() -> None:
    merged, _, ch = _ids([0, 0, 0, 0, 0], [1, 1, 1, 2, 2], {1: 3, 2: 2}, 5)
    assert set(merged.tolist()) == {1} and ch.retired == 1
    split, nxt, _ = _ids([0, 0, 1, 1, 1], [4, 4, 4, 4, 4], {4: 5}, 5)
    assert split.tolist() == [5, 5, 4, 4, 4] and nxt == 6  # the larger part keeps 4


def test_retired_ids_are_never_issued_again() -> None:
    ids, nxt, ch = _ids([0, 0], [-1, -1], {9: 4}, 12)
    assert ids.tolist() == [12, 12] and nxt == 13 and ch.retired == 1
    none, nxt, _ = _ids([-1, -1], [-1, -1], {}, 13)
    assert none.tolist() == [-1, -1] and nxt == 13
