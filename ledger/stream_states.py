"""A connection's state as of any one of its events, for the live streams.

A stream tells each event with the connection as it stood right after it (not as it stands
now), so a replayed `connection.activated` still says ACTIVE. The state is the projection's
own fold (Projection.apply) over the connection's stream, kept per connection and advanced one
event at a time; it is the same for every reader, so one cache serves a whole process.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from .envelope import Envelope
from .projections import Projection

SIZE = 10_000  # connections kept


class StatesAt:
    """(state, bindings) of a connection right after one of its events."""

    def __init__(self, store, size: int = SIZE):
        self.store, self.size = store, size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple] = OrderedDict()   # connection id -> (version, state, bindings)

    def at(self, env: Envelope) -> tuple:
        """The connection of a `connection:<id>` event right after it: (ConnectionState | None, bindings)."""
        cid = env.stream.partition(":")[2]
        # One lock around the whole fold: every stream of the process asks about a new event at
        # once, and only the first should read the connection's history; the rest find it here.
        with self._lock:
            cached = self._cache.get(cid)
            if cached is not None and cached[0] == env.version:
                return cached[1], cached[2]
            if cached is not None and cached[0] == env.version - 1:
                state, bound = self._apply(cid, cached[1], cached[2], [env])
            else:
                history = [e for e in self.store.read_stream(env.stream) if e.version <= env.version]
                state, bound = self._apply(cid, None, (), history)
            self._cache[cid] = (env.version, state, bound)
            self._cache.move_to_end(cid)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return state, bound

    def audience(self, env: Envelope) -> set:
        """Who an event is for (the feed's audience keys): its stream, and for a connection's
        event the connection's owner and tenant."""
        keys = {"stream:" + env.stream}
        if env.stream.startswith("connection:"):
            state, _ = self.at(env)
            if state is not None:
                keys.add("tenant:" + state.tenant)
                if state.user_id:
                    keys.add("user:" + state.user_id)
        return keys

    @staticmethod
    def _apply(cid: str, state, bound: tuple, envs) -> tuple:
        p = Projection({cid: state} if state is not None else {}, {cid: bound} if bound else {})
        for e in envs:
            p.apply(e)
        return p.connections.get(cid), p.bindings.get(cid, ())
