"""The ``--ray`` options: where and how wide the reader actors run, and joining the runtime.

Light on purpose (pydantic only): the CLI builds its parsers from it; ``ray`` is imported when
a runtime is joined, with a :class:`ConfigError` naming the extra when it is missing.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from scope_guard.errors import ConfigError

__all__ = [
    "RayOptions",
    "join_ray",
    "ray_error_cause",
    "ray_session",
    "require_ray",
]

logger = logging.getLogger(__name__)

_INSTALL = "pip install 'scope-guard[ray]'"
_OWN_ERROR = re.compile(r"scope_guard\.errors\.(\w+Error): ([^\n]*)")


def require_ray() -> Any:
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
        import ray.data  # Ray Data ships in the extra, not in bare ray
    except ImportError as exc:
        msg = f"--ray needs Ray (ray[data]), which is not installed: {_INSTALL}"
        raise ConfigError(msg) from exc
    return ray


class RayOptions(BaseModel):
    """Where and how wide the Ray extraction runs.

    Attributes:
        address: The cluster to join (``"auto"``, ``"ray://host:10001"``, ``host:6379``);
            ``None`` joins ``RAY_ADDRESS`` when set, else starts a local runtime.
        actors: Reader actors (one model load each); on GPUs, one per GPU.
        cpus_per_actor: CPUs each actor reserves (its torch threads).
        gpus_per_actor: GPUs each actor reserves (``1`` on GPU nodes; ``0`` on CPUs).
        device: The actors' reader device (default: ``cuda`` with GPUs, else the driver's).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str | None = None
    actors: int = Field(default=1, ge=1)
    cpus_per_actor: float = Field(default=1.0, gt=0)
    gpus_per_actor: float = Field(default=0.0, ge=0)
    device: str | None = None


def join_ray(options: RayOptions) -> bool:
    """Join the runtime ``options`` name unless one is up; whether this call started it.

    Actors are owned by this process: they end when it disconnects, and Ray disconnects at
    exit, so a command that joins once need not shut down.

    Raises:
        ConfigError: Ray is not installed.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    logger.info("joining Ray at %s", options.address or "RAY_ADDRESS, else a local runtime")
    ray.init(
        address=options.address,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    return True


class ray_session:  # noqa: N801  (used as a context manager, like open())
    """Join (or start) a Ray runtime for the block; shut down only what it started.

    An already initialised runtime (a test's, a notebook's) is used as it is.
    """

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self.started = False

    def __enter__(self) -> ray_session:
        self.started = join_ray(self.options)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            require_ray().shutdown()


def ray_error_cause(exc: BaseException) -> str:
    """What went wrong on the actor, in one line: our own typed error when the chain holds one
    (Ray wraps it in its task or actor errors, sometimes only as traceback text), else the last
    line of Ray's message."""
    from scope_guard.errors import ScopeGuardError

    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        inner = todo.pop()
        if any(inner is s for s in seen):
            continue
        seen.append(inner)
        if isinstance(inner, ScopeGuardError):
            return f"{type(inner).__name__}: {inner}"
        todo.extend(
            e
            for e in (inner.__cause__, inner.__context__, getattr(inner, "cause", None))
            if isinstance(e, BaseException)
        )
    for inner in seen:
        found = _OWN_ERROR.findall(str(inner))
        if found:
            name, message = found[-1]
            return f"{name}: {message.strip()}"
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
