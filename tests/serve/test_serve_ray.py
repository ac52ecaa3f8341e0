"""The same app as a Ray Serve deployment on a local Ray runtime the test starts: a replica
builds its guard from the spec, and the remote guard is answered through Ray's HTTP proxy."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_builders import exchange, free_port

pytest.importorskip("ray.serve", reason="the ray extra is not installed")


@pytest.mark.slow
def test_a_ray_serve_replica_assesses_and_logs(tmp_path: Path, ray_runtime: object) -> None:
    from ray import serve

    from scope_guard.risklog import read_risk_log
    from scope_guard.serve import GuardSpec
    from scope_guard.serve.client import RemoteGuard
    from scope_guard.serve.ray_app import run_on_ray

    log = tmp_path / "risk.db"
    port = free_port()
    try:
        run_on_ray(GuardSpec(risk_log=str(log)), port=port, blocking=False)
        with RemoteGuard(f"http://127.0.0.1:{port}", retries=0, timeout_s=60) as guard:
            assert guard.healthz()["status"] == "ok"
            reports = [guard.assess(exchange(i)) for i in range(3)]
        assert [r.request_id for r in reports] == ["req-0", "req-1", "req-2"]
        assert all(r.error is None for r in reports)
    finally:
        serve.shutdown()
    assert sorted(r.request_id for r in read_risk_log(log).records()) == ["req-0", "req-1", "req-2"]
