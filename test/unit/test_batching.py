"""Dynamic batching keyed by the modality combination."""
import threading
import time

import pytest

from omni_agent.model.batching import DynamicBatcher


def test_batcher_groups_by_modalities():
    seen = []
    gate = threading.Event()

    def process(items):
        gate.wait(5)                       # hold the first batch so that the others queue up
        seen.append([key for key, _ in items])
        return [value * 10 for _, value in items]

    batcher = DynamicBatcher(process, key_of=lambda item: item[0], max_batch=4, max_wait_s=0.05)
    keys = [frozenset({"audio"}), frozenset({"audio", "image"}), frozenset({"text"})]
    futures = [batcher.submit((keys[i % 3], i)) for i in range(12)]
    gate.set()
    assert [f.result(timeout=5) for f in futures] == [i * 10 for i in range(12)]
    for batch in seen:
        assert len(set(batch)) == 1, f"a batch mixed modality combinations: {batch}"
        assert len(batch) <= 4
    assert batcher.stats.requests == 12
    assert batcher.stats.mean_batch > 1.0
    batcher.close()


def test_batcher_lone_request_after_wait():
    batcher = DynamicBatcher(lambda items: list(items), key_of=lambda item: "k", max_batch=8, max_wait_s=0.01)
    assert batcher.submit(7).result(timeout=2) == 7
    assert batcher.stats.sizes == {1: 1}
    batcher.close()


def test_batcher_error_fails_batch_only():
    def process(items):
        if "bad" in items:
            raise RuntimeError("model failed")
        return items

    batcher = DynamicBatcher(process, key_of=lambda item: item, max_batch=2, max_wait_s=0.0)
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.submit("bad").result(timeout=2)
    assert batcher.submit("good").result(timeout=2) == "good"
    batcher.close()


def test_batcher_close_serves_queue():
    batcher = DynamicBatcher(lambda items: [time.sleep(0.01) or i for i in items], key_of=lambda i: 0,
                             max_batch=2, max_wait_s=1.0)
    futures = [batcher.submit(i) for i in range(3)]
    batcher.close()
    assert [f.result(timeout=2) for f in futures] == [0, 1, 2]
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(4)


def test_batcher_bad_settings():
    with pytest.raises(ValueError, match="max_batch"):
        DynamicBatcher(list, key_of=id, max_batch=0)
    with pytest.raises(ValueError, match="max_wait_s"):
        DynamicBatcher(list, key_of=id, max_wait_s=-1)
