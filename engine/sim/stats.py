"""What the simulator saw, served at ``GET /_sim/stats``.

Why it exists: the claims batchdeck makes about its client (no request sent into
an empty bucket, 304s saved, each blob fetched once, concurrency kept under
GitHub's 100) are checked against what the *server* observed, not against the
client's own bookkeeping. Counters are plain ints and ``Counter``s mutated from
the event loop only, so they need no locks. Endpoints are keyed by their route
template (``GET /repos/{o}/{r}/git/blobs/{sha}``) so a report stays readable
over thousands of repos. ``/_sim/*`` requests are never counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SimStats:
    requests_total: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    not_modified: int = 0
    limit_responses: Counter[str] = field(default_factory=lambda: Counter(primary=0, secondary=0))
    secondary_reasons: Counter[str] = field(default_factory=Counter)
    #: requests provably sent after their client was told (see engine.sim.limits): into a block
    #: on a connection that had carried a refusal of it, or into a bucket announced empty
    violations: int = 0
    #: refused by a secondary block, read before any refusal of it was written: on the wire
    #: before the client could know (GitHub refuses them all the same)
    in_flight_at_block: int = 0
    #: refused by a block, read after a refusal of it went out on another connection: sent
    #: before or after the client had read that refusal, which the server cannot tell
    after_refusal_elsewhere: int = 0
    violations_by_kind: Counter[str] = field(default_factory=lambda: Counter(primary=0, secondary=0,
                                                                                   content_creation=0))
    peak_concurrency: int = 0
    points_used: Counter[str] = field(default_factory=lambda: Counter(core=0, search=0, graphql=0))
    blob_fetches: Counter[str] = field(default_factory=Counter)
    graphql_queries: int = 0
    faults_injected: Counter[str] = field(default_factory=lambda: Counter(error=0, timeout=0, reset=0))
    bad_credentials: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "requests": dict(sorted(self.requests.items())),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "not_modified": self.not_modified,
            "limit_responses": dict(self.limit_responses),
            "secondary_reasons": dict(self.secondary_reasons),
            "violations": self.violations,
            "violations_by_kind": dict(self.violations_by_kind),
            "in_flight_at_block": self.in_flight_at_block,
            "after_refusal_elsewhere": self.after_refusal_elsewhere,
            "peak_concurrency": self.peak_concurrency,
            "points_used": dict(self.points_used),
            "blob_fetches": dict(self.blob_fetches),
            "graphql_queries": self.graphql_queries,
            "faults_injected": dict(self.faults_injected),
            "bad_credentials": self.bad_credentials,
        }
