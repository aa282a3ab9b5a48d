"""Prompts before background encoding: an encoder in another thread of the process waits between its blocks while
a prompt is decoded.

A prefetcher embedding neighbours in the GUI process (the desktop without a compute worker) otherwise takes the
cores a click needs: on the shared 2-core machine a 512 px click beside a busy encoder took 0.7-1.7 s instead of
0.2 s. The encoder loses at most one block of time per prompt (ViT-B has 12).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

# An encoder never waits longer than this for prompts (a stuck prompt must not stop background work for good).
LONGEST_WAIT_S = 5.0


class PromptPriority:
    """Counts the prompts being served per thread; `wait_for_prompts()` returns when no other thread serves one (or
    after `longest_wait_s`). A thread that serves a prompt and encodes for it (a click on a slice not embedded yet)
    never waits for itself."""

    def __init__(self, longest_wait_s: float = LONGEST_WAIT_S) -> None:
        self.longest_wait_s = float(longest_wait_s)
        self._condition = threading.Condition()
        self._serving = {}  # thread ident -> prompts it is serving

    @contextmanager
    def serving(self):
        """Hold this while a prompt is decoded (re-entrant; any thread)."""
        me = threading.get_ident()
        with self._condition:
            self._serving[me] = self._serving.get(me, 0) + 1
        try:
            yield
        finally:
            with self._condition:
                self._serving[me] -= 1
                if not self._serving[me]:
                    del self._serving[me]
                    self._condition.notify_all()

    def _others_serving(self) -> bool:
        return any(thread != threading.get_ident() for thread in self._serving)

    @property
    def busy(self) -> bool:
        with self._condition:
            return bool(self._serving)

    def wait_for_prompts(self) -> bool:
        """Called by an encoder between blocks; True when it had to wait."""
        with self._condition:
            if not self._others_serving():
                return False
            self._condition.wait_for(lambda: not self._others_serving(), timeout=self.longest_wait_s)
            return True
