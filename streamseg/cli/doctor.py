"""``streamseg doctor``: versions, codecs, accelerators and the backend ``auto`` would pick."""

from __future__ import annotations

import json

import click

from streamseg.cli.command import examples


@click.command(epilog=examples("streamseg doctor", "streamseg doctor --json > doctor.json"))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def doctor(as_json: bool) -> None:
    """Report what this machine offers streamseg (paste it into bug reports). Always exits 0."""
    from streamseg.doctor import as_text, gather

    facts = gather()
    click.echo(json.dumps(facts, indent=2) if as_json else as_text(facts))
