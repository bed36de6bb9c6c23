"""The in-memory scenario used by the demo, the SDK tests and the benchmarks."""

from __future__ import annotations

import pytest

from credentials import jws
from elicence.scenario import build_world, issue_licence, licence_claims

NOW = 1_790_000_000


@pytest.mark.parametrize("seed", [1, 8, 36])  # 8 and 36 are branches: no registered capital
def test_every_synthetic_licence_issues(seed: int) -> None:
    world = build_world(now=NOW, status_size=1000)
    claims = licence_claims(seed)
    credential = issue_licence(world, claims, idx=5, now=NOW)
    payload = jws.parse(credential.split("~")[0]).payload
    assert payload["uscc"] == claims["uscc"]
    assert len(payload["_sd"]) == 1  # the one digest of the recursive 'registration' disclosure
