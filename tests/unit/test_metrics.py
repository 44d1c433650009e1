from __future__ import annotations

import numpy as np
import pytest

from facesieve.evaluate.metrics import bcubed, detection, pairwise


def test_perfect_clustering_scores_one() -> None:
    truth = np.array(["a", "a", "b", "b", "b"])
    assert bcubed(truth, np.array([0, 0, 1, 1, 1])).f == 1.0
    assert pairwise(truth, np.array([5, 5, 2, 2, 2])).f == 1.0


def test_bcubed_by_hand() -> None:
    # cluster 0 = {a, a, b}, cluster 1 = {b}; precision per item 2/3,2/3,1/3,1; recall 1,1,1/2,1/2
    s = bcubed(np.array(["a", "a", "b", "b"]), np.array([0, 0, 0, 1]))
    assert s.precision == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1) / 4, abs=1e-4)
    assert s.recall == pytest.approx(0.75, abs=1e-4)


def test_noise_points_are_singletons() -> None:
    truth = np.array(["a", "a", "a"])
    s = bcubed(truth, np.array([-1, -1, -1]))
    assert s.precision == 1.0
    assert s.recall == pytest.approx(1 / 3, abs=1e-4)
    assert pairwise(truth, np.array([-1, -1, -1])).recall == 0.0


def test_detection() -> None:
    s = detection({"x", "y", "z"}, {"x", "y", "w", "v"})
    assert (s.precision, s.recall) == (pytest.approx(2 / 3, abs=1e-4), 0.5)
