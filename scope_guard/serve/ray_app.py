"""The same ASGI app as a Ray Serve deployment: each replica builds its own guard (reader,
risk log) from a :class:`~scope_guard.serve.spec.GuardSpec`, and its own micro-batcher.

Ray Serve's HTTP proxy routes requests to the replicas; several replicas writing one SQLite
log is safe (the log is process-safe), one shared database log scales further. Give a replica
a GPU with ``ray_actor_options={"num_gpus": 1}``.
"""

from __future__ import annotations

from typing import Any

from scope_guard.serve._extras import require
from scope_guard.serve.settings import ServeSettings
from scope_guard.serve.spec import GuardSpec

__all__ = ["DEPLOYMENT_NAME", "ray_application", "run_on_ray"]

DEPLOYMENT_NAME = "scope-guard"


class GuardReplica:
    """One replica: its guard and app, built in the replica's process."""

    def __init__(self, spec: dict[str, Any], settings: dict[str, Any]) -> None:
        from scope_guard.serve.app import create_app

        guard = GuardSpec.model_validate(spec).build()
        self._app = create_app(guard, ServeSettings.model_validate(settings))

    def __serve_build_asgi_app__(self) -> Any:  # Ray Serve's hook for a late-bound app
        return self._app


def ray_application(
    spec: GuardSpec,
    settings: ServeSettings | None = None,
    *,
    num_replicas: int = 1,
    ray_actor_options: dict[str, Any] | None = None,
) -> Any:
    """A bound Ray Serve application serving ``spec``'s guard.

    Raises:
        MissingExtraError: ray[serve] is not installed (the ``ray`` extra).
    """
    serve: Any = require("ray.serve", "ray")
    ingress = serve.ingress()(GuardReplica)
    deployment = serve.deployment(
        name=DEPLOYMENT_NAME,
        num_replicas=num_replicas,
        ray_actor_options=ray_actor_options or {"num_cpus": 1},
    )(ingress)
    return deployment.bind(spec.model_dump(), (settings or ServeSettings()).model_dump())


def run_on_ray(
    spec: GuardSpec,
    settings: ServeSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    num_replicas: int = 1,
    blocking: bool = True,
) -> Any:
    """Deploy on Ray Serve behind its HTTP proxy at ``host:port`` (route prefix ``/``).

    Args:
        address: A running Ray cluster (``ray://...`` or ``auto``); ``None`` starts a local one.
        blocking: Serve until interrupted (the CLI); ``False`` returns the deployment handle.

    Raises:
        MissingExtraError: ray[serve] is not installed (the ``ray`` extra).
    """
    ray: Any = require("ray", "ray")
    serve: Any = require("ray.serve", "ray")
    if not ray.is_initialized():
        ray.init(address=address or "local", include_dashboard=False)
    serve.start(http_options={"host": host, "port": port})
    app = ray_application(spec, settings, num_replicas=num_replicas)
    return serve.run(app, name=DEPLOYMENT_NAME, route_prefix="/", blocking=blocking)
