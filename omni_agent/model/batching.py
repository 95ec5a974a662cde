"""Dynamic batching keyed by the combination of modalities present.

Requests with the same modality combination (for example audio + image) pad
to the same token layout and run in one forward pass. Requests with another
combination wait for their own batch, so a text-only command never pays for
image tokens. A batch leaves when it is full (max_batch) or when its oldest
request has waited max_wait_s: a larger max_wait_s trades latency for
throughput.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Sequence, Tuple


@dataclass
class _Pending:
    item: object
    future: Future
    arrived_s: float


@dataclass
class BatchStats:
    batches: int = 0
    requests: int = 0
    sizes: Dict[int, int] = field(default_factory=dict)      # batch size -> count

    @property
    def mean_batch(self) -> float:
        return self.requests / self.batches if self.batches else 0.0


class DynamicBatcher:
    """Collects requests per key and runs `process(items) -> results` on one batch at a time.

    key_of(item) gives the batching key (e.g. the frozenset of modalities).
    submit() returns a Future; an exception in process() fails every future
    of that batch and the batcher keeps serving.
    """

    def __init__(self, process: Callable[[Sequence], List], key_of: Callable[[object], Hashable],
                 max_batch: int = 8, max_wait_s: float = 0.005, name: str = "omni_batcher"):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be 0 or more seconds, got {max_wait_s}")
        self.process = process
        self.key_of = key_of
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queues: Dict[Hashable, List[_Pending]] = {}
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, item) -> Future:
        future: Future = Future()
        with self._condition:
            if self._closed:
                raise RuntimeError("the batcher is closed; create a new one")
            self._queues.setdefault(self.key_of(item), []).append(_Pending(item, future, time.monotonic()))
            self._condition.notify()
        return future

    def _next_batch(self) -> Tuple[Hashable, List[_Pending]]:
        """Wait until some key has a full batch or a request that waited max_wait_s (called under the lock)."""
        while True:
            if self._closed and not any(self._queues.values()):
                return None, []
            now = time.monotonic()
            due, wait = None, None
            for key, queue in self._queues.items():
                if not queue:
                    continue
                remaining = queue[0].arrived_s + self.max_wait_s - now
                if len(queue) >= self.max_batch or remaining <= 0 or self._closed:
                    if due is None or queue[0].arrived_s < self._queues[due][0].arrived_s:
                        due = key
                else:
                    wait = remaining if wait is None else min(wait, remaining)
            if due is not None:
                queue = self._queues[due]
                batch, self._queues[due] = queue[:self.max_batch], queue[self.max_batch:]
                return due, batch
            self._condition.wait(timeout=wait)

    def _loop(self) -> None:
        while True:
            with self._condition:
                _, batch = self._next_batch()
            if not batch:
                return
            try:
                results = self.process([pending.item for pending in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch process returned {len(results)} results for {len(batch)} requests")
            except Exception as error:       # fail this batch, keep serving the next
                for pending in batch:
                    pending.future.set_exception(error)
                continue
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.sizes[len(batch)] = self.stats.sizes.get(len(batch), 0) + 1
            for pending, result in zip(batch, results):
                pending.future.set_result(result)

    def close(self, timeout_s: float = 5.0) -> None:
        """Serve what is queued, then stop the thread."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._thread.join(timeout=timeout_s)
