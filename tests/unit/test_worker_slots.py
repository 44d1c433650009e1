"""The rules that keep a step going when Ray workers are lost (facesieve/runner/slots.py): a
unit goes only to a worker whose setup finished, so a replacement the cluster has no room for
holds no unit; a step none of whose workers can start ends instead of waiting for ever."""

from __future__ import annotations

import pytest

from facesieve.runner.slots import BUSY, LOADING, READY, Slots


def test_only_a_loaded_worker_takes_a_unit() -> None:
    slots = Slots(2, start_timeout_s=10, now=0.0)
    assert not slots.free() and not slots.busy()
    slots.loaded(1, {"node_id": "b"}, now=1.0)
    assert slots.free()
    assert slots.take() == 1 and slots.state(1) == BUSY and slots.where(1) == {"node_id": "b"}
    assert not slots.free()  # worker 0 is still loading: it gets nothing
    with pytest.raises(ValueError):
        slots.take()
    slots.finished(1)
    assert slots.state(1) == READY and slots.take() == 1


def test_a_lost_worker_is_loading_again_and_the_others_keep_working() -> None:
    slots = Slots(3, start_timeout_s=10, now=0.0)
    for w in range(3):
        slots.loaded(w, {"node_id": str(w)}, now=0.0)
    taken = [slots.take() for _ in range(3)]
    slots.lost(taken[0])  # its node is gone; the replacement may never find room
    assert slots.state(taken[0]) == LOADING and slots.where(taken[0]) == {}
    slots.finished(taken[1])
    assert slots.free() and slots.take() == taken[1]  # the retried unit goes to a live one
    assert slots.loading() == [taken[0]]
    assert not slots.stuck(now=1000.0)  # workers are busy: not stuck, however long


def test_a_step_with_no_worker_that_can_start_is_stuck_after_the_start_timeout() -> None:
    slots = Slots(2, start_timeout_s=10, now=0.0)
    slots.loaded(0, {}, now=0.0)
    slots.take()
    assert not slots.stuck(now=5.0)  # the last moment a worker was usable: 5.0
    slots.lost(0)
    assert not slots.stuck(now=14.0)
    assert slots.stuck(now=15.5)
    slots.loaded(1, {}, now=16.0)
    assert not slots.stuck(now=100.0)


def test_finished_leaves_a_replaced_worker_loading() -> None:
    slots = Slots(1, start_timeout_s=10, now=0.0)
    slots.loaded(0, {}, now=0.0)
    slots.take()
    slots.lost(0)
    slots.finished(0)
    assert slots.state(0) == LOADING and not slots.free()
