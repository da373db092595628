"""Options several commands share, spelled and typed once.

``config_option("codec")`` makes the flag that sets RunConfig's ``encoder.codec``: its spelling comes from the
config field (``--codec``), and a field typed as a ``Literal`` gives the choice list, so click and pydantic refuse
the same values. ``model_option`` and ``output_option`` are the ``-m/--model`` and ``-o/--output`` of every command.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import click

from streamseg.choices import BACKENDS, PRECISIONS
from streamseg.config import CONFIG_LEAVES, config_field, flag_names

F = TypeVar("F", bound=Callable[..., Any])


def literal_choices(kind: Any) -> tuple[str, ...] | None:
    """The values of a ``Literal`` annotation (also inside ``X | None``), else None."""
    if get_origin(kind) is Literal:
        return tuple(str(v) for v in get_args(kind))
    if get_origin(kind) in (Union, types.UnionType):
        for member in get_args(kind):
            found = literal_choices(member)
            if found is not None:
                return found
    return None


def config_option(leaf: str, *, negation: str | None = None, **attrs: Any) -> Callable[[F], F]:
    """A flag that sets the RunConfig option ``leaf``; its value is passed on as ``leaf`` (default None: not given).

    ``negation`` adds an off switch (``--no-winograd``). A bool option without one is a plain flag.
    """
    if leaf not in CONFIG_LEAVES:
        raise TypeError(f"{leaf}: not a RunConfig option")
    field = config_field(leaf)
    names = flag_names(leaf)
    if negation:
        names[-1] = f"{names[-1]}/{negation}"
    choices = literal_choices(field.annotation)
    if choices is not None:
        attrs.setdefault("type", click.Choice(choices))
    elif field.annotation is bool and not negation:
        attrs.setdefault("is_flag", True)
    attrs.setdefault("default", None)
    written = names[-1].split("/")[0]
    if written != "--" + leaf.replace("_", "-") and "help" in attrs:
        attrs["help"] += f" [config: {'.'.join(CONFIG_LEAVES[leaf])}]"  # where the flag's spelling is not the key's
    return click.option(*names, leaf, **attrs)


def backend_option(
    default: str | None = None,
    help: str = "Inference backend [default: auto].",
    name: str = "--backend",
    dest: str = "backend",
) -> Callable[[F], F]:
    """``--backend``: the choices RunConfig takes (``streamseg.choices``), for commands outside ``run`` too."""
    return click.option(
        name, dest, type=click.Choice(BACKENDS), default=default, show_default=default is not None, help=help
    )


def precision_option(default: str | None = None, help: str = "fp32, fp16, bf16 or int8.") -> Callable[[F], F]:
    return click.option(
        "--precision", type=click.Choice(PRECISIONS), default=default, show_default=default is not None, help=help
    )


def model_option(
    help: str = "Built-in name (see `models list`), NAME:int8, or PATH.onnx.", **attrs: Any
) -> Callable[[F], F]:
    return click.option("-m", "--model", "model", help=help, **attrs)


def output_option(help: str, dest: str = "output", **attrs: Any) -> Callable[[F], F]:
    return click.option("-o", "--output", dest, help=help, **attrs)


def size_option(
    help: str = "Short side of the model input (FCN: 520).", dest: str = "input_size", **attrs: Any
) -> Callable[[F], F]:
    """``--size``: the model input's short side, an int, wherever a command takes one."""
    return click.option("--size", dest, type=click.IntRange(min=16), help=help, **attrs)


class BitRate(click.ParamType):
    """Bits per second: ``2M``, ``800k`` or ``1500000``."""

    name = "bitrate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value)
        scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
        try:
            return int(float(text[:-1] if scale > 1 else text) * scale)
        except ValueError:
            self.fail(f"{text!r}: expected bits per second, e.g. 2M or 800k", param, ctx)
