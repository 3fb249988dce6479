"""Click options derived from :class:`schemas.settings.Settings`.

A settings option shows the field's default and environment variable in ``--help``; its value,
when given, overrides the environment for this run. Commands read the merged result with
:func:`settings`. The environment itself is read only by ``Settings.from_env``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from schemas.settings import Settings, SettingsError, describe

F = TypeVar("F", bound=Callable[..., Any])


class _State:
    def __init__(self) -> None:
        self.overrides: dict[str, Any] = {}
        self._settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings.from_env().replace(**self.overrides)
            except SettingsError as exc:
                raise click.UsageError(str(exc)) from exc
        return self._settings


def _state(ctx: click.Context) -> _State:
    root = ctx.find_root()
    if not isinstance(root.obj, _State):
        root.obj = _State()
    return root.obj


def settings(ctx: click.Context | None = None) -> Settings:
    """The settings of this invocation: defaults < environment < command-line options."""
    return _state(ctx or click.get_current_context()).settings()


def setting_option(name: str, *flags: str, **kwargs: Any) -> Callable[[F], F]:
    """An option bound to the settings field ``name`` (flag defaults to ``--name-with-dashes``)."""
    help_text, default, env = describe(name)
    shown = default if str(default) not in ("", ".") else '""'
    flags = flags or (f"--{name.replace('_', '-')}",)

    def remember(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            state = _state(ctx)
            state.overrides[name] = value
            state._settings = None

    return click.option(
        *flags,
        default=None,
        expose_value=False,
        callback=remember,
        metavar=kwargs.pop("metavar", type(default).__name__.upper() if not isinstance(default, str) else "TEXT"),
        help=f"{help_text}  [default: {shown}; env: {env}]",
        **kwargs,
    )


def kafka_options(func: F) -> F:
    """The Kafka connection options every Kafka-facing command takes."""
    for name in reversed(("kafka_bootstrap", "topic_prefix")):
        func = setting_option(name)(func)
    return func
