"""What every streamseg command has: examples in its ``--help``, and old flag spellings that still work.

A renamed flag keeps its old spelling for one release: ``Command(renamed={"--out": "--output"})`` rewrites the old
spelling before click parses, with one warning line on stderr, so the old flag needs no hidden option of its own
and never shows in ``--help``.
"""

from __future__ import annotations

from typing import Any

import click


def examples(*lines: str) -> str:
    """An ``epilog`` listing example command lines, kept as written (click's ``\\b``)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


class Command(click.Command):
    """A command whose renamed flags (old spelling -> new) still work, with a deprecation warning."""

    def __init__(self, *args: Any, renamed: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.renamed = dict(renamed or {})
        for new in self.renamed.values():
            if not any(new in param.opts for param in self.params):
                raise TypeError(f"{self.name}: {new} renames a flag the command does not have")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self.rewrite(args))

    def rewrite(self, args: list[str]) -> list[str]:
        """``args`` with each old spelling replaced by the new one (``--out X``, ``--out=X``); warns once per flag."""
        out: list[str] = []
        warned: set[str] = set()
        for i, arg in enumerate(args):
            if arg == "--":  # the rest are arguments, even if they look like flags
                return out + args[i:]
            old, eq, value = arg.partition("=")
            new = self.renamed.get(old)
            if new is None:
                out.append(arg)
                continue
            if old not in warned:
                warned.add(old)
                click.echo(f"streamseg: warning: {old} is deprecated, use {self.spelling(new)}", err=True)
            out.append(new + eq + value)
        return out

    def spelling(self, flag: str) -> str:
        """Every name of the option ``flag`` belongs to, as ``--help`` lists them: ``-o/--output``."""
        for param in self.params:
            if flag in param.opts:
                return "/".join(sorted(param.opts, key=len))
        return flag
