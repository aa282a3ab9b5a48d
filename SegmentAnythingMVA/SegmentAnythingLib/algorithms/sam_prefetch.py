"""Background computation of slice embeddings around the current slice.

The caller hands over an ordered list of ``(key, image_provider)`` pairs (nearest slices first);
one daemon worker thread embeds those not cached yet. A new request replaces the pending list, so
scrolling never queues stale work; nothing here blocks the caller.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Hashable, Iterable, List, Optional, Tuple

import numpy as np

from .sam_errors import CheckpointError, SamInputError

ImageProvider = Callable[[], np.ndarray]
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrefetchStatus:
    """Counts for a status line, over the keys of the latest request."""

    ready: int
    pending: int
    failed: int
    running: bool
    last_error: Optional[str] = None

    def summary(self) -> str:
        """e.g. "SAM: 5 slices ready, 3 pending, 1 failed"."""
        text = f"SAM: {self.ready} slices ready, {self.pending} pending"
        return text + (f", {self.failed} failed" if self.failed else "")


class EmbeddingPrefetcher:
    """Embeds requested slices in a background thread through ``engine.embed``.

    Parameters
    ----------
    engine : SamEngine
        Its cache receives the embeddings; its in-flight bookkeeping stops the worker and an
        interactive click from computing the same slice twice.
    """

    def __init__(self, engine) -> None:
        self.engine = engine
        self._condition = threading.Condition()
        self._pending: List[Tuple[Hashable, ImageProvider]] = []
        self._requested: List[Hashable] = []
        self._failed: dict = {}
        self._current: Optional[Hashable] = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sam-prefetch", daemon=True)
        self._thread.start()

    def request(self, items: Iterable[Tuple[Hashable, ImageProvider]]) -> None:
        """Replace the pending work with ``items`` (highest priority first); returns at once."""
        items = list(items)
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 2 and callable(item[1])):
                raise SamInputError("Prefetch items must be (key, image_provider) pairs with a callable provider.")
        with self._condition:
            if self._stopped:
                raise SamInputError("The prefetcher was stopped; create a new one.")
            self._requested = [key for key, _ in items]
            self._pending = [(key, provider) for key, provider in items if key not in self._failed]
            self._condition.notify_all()

    def cancel(self) -> None:
        """Drop all pending work (a slice being embedded finishes and is cached)."""
        with self._condition:
            self._pending = []
            self._requested = []

    def status(self) -> PrefetchStatus:
        """Ready / pending / failed counts over the latest request."""
        with self._condition:
            requested, failed = list(self._requested), dict(self._failed)
            running = self._current is not None
        ready = sum(1 for key in requested if self.engine.has_embedding(key))
        failed_count = sum(1 for key in requested if key in failed)
        last_error = next((failed[key] for key in reversed(requested) if key in failed), None)
        return PrefetchStatus(ready, len(requested) - ready - failed_count, failed_count, running, last_error)

    def wait_idle(self, timeout_s: Optional[float] = None) -> bool:
        """Block until nothing is pending or running (for tests and scripts); False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._pending and self._current is None, timeout_s)

    def stop(self, timeout_s: Optional[float] = 5.0) -> None:
        """Cancel pending work and end the worker thread."""
        with self._condition:
            self._stopped = True
            self._pending = []
            self._condition.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending or self._stopped)
                if self._stopped:
                    return
                key, provider = self._pending.pop(0)
                self._current = key
            try:
                if self.engine.has_embedding(key):
                    self.engine.cache.get(key)  # brings a stored or on-disk embedding into memory
                else:
                    self.engine.embed(key, provider)
            except (SamInputError, CheckpointError, OSError, RuntimeError, ValueError) as error:
                # A slice that cannot be embedded is reported in the status, not raised here.
                _LOG.warning("Prefetch of %r failed: %s", key, error)
                with self._condition:
                    self._failed[key] = str(error)
            finally:
                with self._condition:
                    self._current = None
                    self._condition.notify_all()
