"""The ``streamseg`` command line. Subcommands load lazily, so ``run`` never imports torch."""

from __future__ import annotations

import importlib
import sys
import traceback

import click

from streamseg import logs
from streamseg.cli.command import examples
from streamseg.errors import StreamsegError

# name -> "module:attribute"; each subcommand lives in its own module
COMMANDS = {
    "run": "streamseg.cli.run:run",
    "batch": "streamseg.cli.batch:batch",
    "models": "streamseg.cli.models:models",
    "bench": "streamseg.cli.bench:bench",
    "build-engine": "streamseg.cli.build_engine:build_engine",
    "subscribe": "streamseg.cli.subscribe:subscribe",
    "report": "streamseg.cli.report:report",
    "datasets": "streamseg.cli.datasets:datasets",
    "train": "streamseg.cli.train:train",
    "quantize": "streamseg.cli.quantize:quantize",
    "eval": "streamseg.cli.eval:eval_command",
    "doctor": "streamseg.cli.doctor:doctor",
    "serve": "streamseg.cli.serve:serve",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples(
        "streamseg models export lraspp_mobilenet_v3_large -o model.onnx",
        "streamseg run street.mp4 -o out.mp4 -m model.onnx --size 260",
        "streamseg run --help",
    ),
)
@click.option("-v", "--verbose", count=True, help="More log lines: -v info, -vv debug.")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
@click.version_option(package_name="streamseg")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Real-time video semantic segmentation: decode, segment, overlay, publish."""
    logs.setup(verbose)
    ctx.obj = {"debug": debug}


def main(argv: list[str] | None = None) -> int:
    """Entry point: every failure becomes one line on stderr and a non-zero exit."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="streamseg", standalone_mode=False)
    except StreamsegError as err:
        click.echo(f"streamseg: error: {logs.redact(str(err))}", err=True)
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("streamseg: aborted", err=True)
        return 130
    except click.ClickException as err:
        click.echo(f"streamseg: error: {logs.redact(err.format_message())}", err=True)  # e.g. an extra URL argument
        return err.exit_code
    except KeyboardInterrupt:
        click.echo("streamseg: interrupted", err=True)
        return 130
    except Exception as err:  # noqa: BLE001 - the boundary: one line, not a traceback wall
        if debug:
            traceback.print_exc()
        reason = logs.redact(str(err).strip().splitlines()[0] if str(err).strip() else "")
        click.echo(
            f"streamseg: internal error: {type(err).__name__}: {reason} (rerun with --debug for details)", err=True
        )
        return 70
    return 0


def entry() -> None:
    sys.exit(main())
