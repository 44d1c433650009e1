import numpy as np
import pyarrow as pa

from facesieve.index.reader import exact_sims, shortlist, tie_keys, top_k


def test_top_k_equals_a_full_sort_with_ties_and_missing_values() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, w, k = 20, int(rng.integers(1, 300)), int(rng.integers(1, 40))
        sims = rng.choice(np.linspace(-1, 1, 20).astype(np.float32), size=(n, w))  # many ties
        sims[rng.random((n, w)) < 0.1] = -np.inf
        ids = rng.permutation(n * w * 10)[: n * w].reshape(n, w).astype(np.int64)
        ties = rng.integers(0, 2**60, size=(n, w)).astype(np.uint64)
        got_ids, got_sims = top_k(ids, sims, ties, k)
        order = np.lexsort((ties, -sims.astype(np.float64)), axis=1)[:, :k]
        want_sims = np.take_along_axis(sims, order, 1)
        want_ids = np.where(np.isfinite(want_sims), np.take_along_axis(ids, order, 1), -1)
        pad = ((0, 0), (0, k - want_ids.shape[1]))
        assert np.array_equal(got_ids, np.pad(want_ids, pad, constant_values=-1))
        assert np.array_equal(got_sims, np.pad(want_sims, pad, constant_values=-np.inf))


def test_tie_keys_are_image_id_bits_then_the_face_index_capped_at_15() -> None:
    ids = ["0123456789abcdef0123#0", "fedcba9876543210ffff#17", "00000000000000a0#3"]
    expected = [(int(f[:15], 16) << 4) | min(int(f.rsplit("#", 1)[1]), 15) for f in ids]
    assert tie_keys(pa.array(ids)).tolist() == expected
    assert tie_keys(pa.chunked_array([ids[:1], ids[1:]])).tolist() == expected
    assert tie_keys(pa.array([], pa.string())).shape == (0,)


def test_the_float32_shortlist_keeps_the_float64_top_k() -> None:
    """Re-ranking a shortlist gives what re-ranking every candidate gives, ties included:
    neighbours that are exact copies of one another, near-equal scores, missing candidates."""
    rng = np.random.default_rng(3)
    n, d, q, c, k = 400, 512, 64, 120, 32
    emb = rng.normal(size=(n, d)).astype(np.float32)
    emb[200:260] = emb[199]  # 61 copies of one face: equal scores for every query
    emb[300:340] = emb[299] + rng.normal(scale=1e-6, size=(40, d)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    queries = np.concatenate([emb[199:200] * 0.9 + emb[:63] * 0.1, emb[299:300]])
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    cand = np.stack([rng.permutation(n)[:c] for _ in range(q)])
    cand[:, :70] = np.arange(195, 265)  # every query sees the copies
    cand[-1, :50] = np.arange(295, 345)
    cand[5, 100:] = -1  # fewer candidates than asked for
    ties = rng.permutation(n).astype(np.uint64)
    rows = emb[np.maximum(cand, 0)]

    def rerank(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sims = exact_sims(queries, emb[np.maximum(ids, 0)])
        sims[ids < 0] = -np.inf
        return top_k(ids, sims, ties[np.maximum(ids, 0)], k)

    cut, cols = shortlist(queries, cand, rows, k)
    assert cut.shape[1] < c  # something was dropped, or the test shows nothing
    kept = cut >= 0
    assert np.array_equal(cut[kept], np.take_along_axis(cand, cols, 1)[kept])
    for got, want in zip(rerank(cut), rerank(cand), strict=True):
        np.testing.assert_array_equal(got, want)
