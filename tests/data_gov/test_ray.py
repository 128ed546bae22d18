"""``--engine ray`` runs the same batch function on a local Ray instance: same results."""

from __future__ import annotations

import pytest
from tests.data_gov.conftest import make_policy
from tests.data_gov.test_checks import diverse, rec

from finegate.data import scan_records

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'finegate[ray]')")


def test_ray_engine_matches_local() -> None:
    recs = diverse(120)
    recs[5] = rec(5, "key AKIA2E0A8F3B244C9986", "mail jane.roe@acme-mail.com")
    recs[9] = rec(9, "hello", "Ship\u200bping soon")
    pol = make_policy()
    local = scan_records(recs, pol, batch_size=16)
    try:
        dist = scan_records(recs, pol, engine="ray", batch_size=16, workers=2)
    finally:
        ray.shutdown()
    assert dist.engine == "ray"
    assert dist.findings == local.findings and dist.flagged == local.flagged
    assert 5 in dist.flagged and 9 in dist.flagged
