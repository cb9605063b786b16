"""Session affinity: consistent hashing on the session id (the first prefix-block hash when the
trace has no sessions), with the load-balance escape of consistent_hash.py."""

from __future__ import annotations

from simulator.serving.routers.base import ROUTERS, RouterKind
from simulator.serving.routers.consistent_hash import AffinityRouter


@ROUTERS.register(RouterKind.SESSION_AFFINITY)
class SessionAffinityRouter(AffinityRouter):
    """Consistent hash on the session id."""

    by_session = True
