"""The guard as a service: an ASGI app (Starlette) with micro-batching and Prometheus metrics.

``scope-guard serve --bundle PATH`` runs it under uvicorn, or with ``--ray`` as a Ray Serve
deployment; :func:`create_app` builds the app for any ASGI server. The web dependencies come
with the ``serve`` extra and are imported only when an app is built.
"""

from __future__ import annotations

from scope_guard.serve._extras import MissingExtraError
from scope_guard.serve.app import create_app
from scope_guard.serve.batcher import MicroBatcher
from scope_guard.serve.settings import ServeSettings
from scope_guard.serve.spec import GuardSpec

__all__ = ["GuardSpec", "MicroBatcher", "MissingExtraError", "ServeSettings", "create_app"]
