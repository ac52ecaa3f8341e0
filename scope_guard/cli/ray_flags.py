"""The ``--ray`` flags of ``calibrate`` and ``score`` (argparse only: ``--help`` stays light)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scope_guard.errors import ConfigError

if TYPE_CHECKING:
    from calibration.ray_options import RayOptions

__all__ = ["add_ray_arguments", "ray_options"]


def add_ray_arguments(p: Any) -> None:
    """The ``--ray`` flags of ``calibrate`` and ``score``."""
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="read on a Ray actor pool: join ADDRESS (auto, host:6379, ray://host:10001), "
        "else RAY_ADDRESS, else start a local runtime (needs the ray extra)",
    )
    p.add_argument("--ray-actors", type=int, default=1, help="reader actors (one per GPU)")
    p.add_argument("--ray-cpus", type=float, default=1.0, help="CPUs per reader actor")
    p.add_argument("--ray-gpus", type=float, default=0.0, help="GPUs per reader actor")


def ray_options(args: Any) -> RayOptions | None:
    """The :class:`RayOptions` of parsed ``--ray`` flags; ``None`` without ``--ray``.

    Raises:
        ConfigError: a bad pool width or resource count, or Ray is not installed (said before
            any work starts).
    """
    if args.ray is None:
        return None
    from pydantic import ValidationError

    from calibration.ray_options import RayOptions, require_ray

    require_ray()

    try:
        return RayOptions(
            address=args.ray or None,
            actors=args.ray_actors,
            cpus_per_actor=args.ray_cpus,
            gpus_per_actor=args.ray_gpus,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        msg = f"bad --ray options: {problems}"
        raise ConfigError(msg) from None
