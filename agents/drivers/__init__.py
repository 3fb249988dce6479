"""Runtime drivers and their registry: driver name → factory building it for a node.

Built in: ``sim``, ``process``, ``function`` and ``qemu`` (the last only where its module and
QEMU are available; building it raises :class:`~agents.drivers.base.DriverUnavailable`
otherwise). Modules are imported only when a driver is built, so a node without QEMU never
imports ``qemu.qmp``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from agents.drivers.base import Driver, DriverContext, DriverUnavailable, InvalidSpec

DriverFactory = Callable[[DriverContext], Driver]

# name -> "module:Class"; the class is built with Class.create(ctx) unless a factory says otherwise.
_BUILTIN: dict[str, str] = {
    "sim": "agents.drivers.sim:SimDriver",
    "process": "agents.drivers.process:ProcessDriver",
    "function": "agents.drivers.function:FunctionDriver",
    "qemu": "agents.drivers.qemu:QemuDriver",
}
_FACTORIES: dict[str, DriverFactory] = {}


def register_driver(name: str, factory: DriverFactory) -> None:
    """Add (or replace) a driver by name: ``factory(ctx)`` returns the driver for one node."""
    _FACTORIES[name] = factory


def driver_names() -> tuple[str, ...]:
    """Every driver name this build knows (available or not)."""
    return tuple(dict.fromkeys([*_BUILTIN, *_FACTORIES]))


def _load_class(name: str) -> type[Driver]:
    module_name, _, class_name = _BUILTIN[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DriverUnavailable(f"driver {name!r} cannot be loaded: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverUnavailable(f"driver {name!r}: {_BUILTIN[name]} is not a Driver class")
    return cls


def create_driver(name: str, ctx: DriverContext) -> Driver:
    """Build driver ``name`` for a node; InvalidSpec if unknown, DriverUnavailable if it cannot run here."""
    if name in _FACTORIES:
        return _FACTORIES[name](ctx)
    if name not in _BUILTIN:
        raise InvalidSpec(f"unknown driver {name!r}; known: {', '.join(driver_names())}")
    cls = _load_class(name)
    if name == "qemu" and "create" not in vars(cls):
        # QemuDriver takes the state directory itself; its VMs live in <state-dir>/qemu/<id>.
        return cls(ctx.state_dir)  # type: ignore[arg-type]
    return cls.create(ctx)
