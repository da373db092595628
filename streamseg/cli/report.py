"""``streamseg report SUMMARY``: class area fractions over time, as a PNG plot and a CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import click
import numpy as np

from streamseg.cli.command import examples
from streamseg.cli.flags import output_option
from streamseg.errors import ConfigError, MissingExtraError, SinkError
from streamseg.outputs.files.summary import ClassSeries, read_summary

OTHER = "other"


@click.command(
    epilog=examples(
        "streamseg report run.csv",
        "streamseg report labels/ -o classes.png --top 5",
        "streamseg report run.mcap --source street",
        "streamseg report segmented/",
    )
)
@click.argument("summary", type=click.Path(exists=True))
@output_option("PNG plot [default: SUMMARY-report.png].", type=click.Path(dir_okay=False))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="CSV out [default: the PNG's name + .csv].")
@click.option(
    "--top",
    type=click.IntRange(1, 20),
    default=8,
    show_default=True,
    help="Plot this many classes; the rest add up to 'other'.",
)
@click.option("--source", help="An MCAP file's source (its topic name) [default: the first].")
def report(summary: str, output: str | None, csv_path: str | None, top: int, source: str | None) -> None:
    """Plot class area fractions over time from a run's --summary file (.csv/.jsonl), --labels-out folder
    or MCAP file (-o run.mcap), or per video from a `streamseg batch` OUTDIR."""
    from streamseg.batch.manifest import MANIFEST_NAME

    path = Path(summary)
    if path.is_dir() and (path / MANIFEST_NAME).exists():
        return _report_batch(path, output, csv_path, top)
    if path.is_dir():
        path = path / "summary.csv"
    series = read_mcap(path, source) if path.suffix.lower() == ".mcap" else read_summary(path)
    png = Path(output) if output else path.with_name(path.stem + "-report.png")
    table = Path(csv_path) if csv_path else png.with_suffix(".csv")
    if table.resolve() == path.resolve():
        raise ConfigError(f"{table}: is the summary being read; give --csv another file")
    order = np.argsort(-series.fractions.mean(axis=0), kind="stable")
    seen = [int(i) for i in order if series.fractions[:, i].max() > 0]
    write_csv(table, series, seen)
    plot(png, series, seen[:top])
    click.echo(f"wrote {png} and {table} ({len(series.index)} frames, {len(seen)} classes seen)")
    for i in seen[:top]:
        column = series.fractions[:, i]
        click.echo(
            f"  {series.classes[i]:<16} mean {100 * column.mean():5.1f}%  max {100 * column.max():5.1f}%  "
            f"in {100 * (column > 0).mean():5.1f}% of frames"
        )


def _report_batch(outdir: Path, output: str | None, csv_path: str | None, top: int) -> None:
    """A batch: each finished video's mean class areas, one bar per video."""
    from streamseg.batch.classes import plot_batch, read_batch, write_batch_csv

    batch = read_batch(outdir)
    png = Path(output) if output else outdir / "batch-classes.png"
    table = Path(csv_path) if csv_path else png.with_suffix(".csv")
    order = np.argsort(-batch.overall, kind="stable")
    seen = [int(i) for i in order if batch.means[:, i].max() > 0]
    write_batch_csv(table, batch, seen)
    plot_batch(png, batch, seen[:top])
    click.echo(
        f"wrote {png} and {table} ({len(batch.videos)} videos, {sum(batch.frames)} frames, {len(seen)} classes seen)"
    )
    for i in seen[:top]:
        click.echo(
            f"  {batch.classes[i]:<16} mean {100 * batch.overall[i]:5.1f}%  "
            f"in {int((batch.means[:, i] > 0).sum())} of {len(batch.videos)} videos"
        )


def read_mcap(path: Path, source: str | None) -> ClassSeries:
    """The ``class_fractions`` channel of one source in a streamseg MCAP file."""
    from streamseg.outputs.messages.mcap_read import read_class_fractions

    data = read_class_fractions(path, source)
    stamps = np.array(data.stamps, dtype=float) / 1e9
    if data.clock.startswith("capture"):  # Unix times: count from the first frame
        stamps -= stamps[0]
    return ClassSeries(np.array(data.index), stamps, data.classes, np.array(data.fractions, dtype=float))


def write_csv(path: Path, series: ClassSeries, columns: list[int]) -> None:
    """``index,time,<class>...``: the classes seen, largest mean area first."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["index", "time", *(series.classes[i] for i in columns)])
            for n, index in enumerate(series.index):
                when = "" if np.isnan(series.time[n]) else f"{series.time[n]:.6f}"
                writer.writerow([int(index), when, *(f"{series.fractions[n, i]:.6f}" for i in columns)])
    except OSError as err:
        raise SinkError(f"cannot write {path}: {err.strerror or err}") from None


def plot(path: Path, series: ClassSeries, shown: list[int]) -> None:
    """Stacked areas of the ``shown`` classes, the rest as 'other'."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    except ImportError:
        raise MissingExtraError("streamseg report", "plots") from None
    x, label = series.x
    layers = [series.fractions[:, i] for i in shown]
    names = [series.classes[i] for i in shown]
    rest = 1.0 - np.sum(layers, axis=0) if layers else np.ones(len(x))
    if rest.max() > 1e-6:
        layers.append(np.clip(rest, 0.0, 1.0))
        names.append(OTHER)
    figure = Figure(figsize=(10, 4.5), layout="constrained")
    axes = figure.add_subplot()
    axes.stackplot(x, layers, labels=names, colors=[f"C{i % 10}" for i in range(len(layers))], alpha=0.9)
    axes.set(
        xlabel=label,
        ylabel="area fraction",
        ylim=(0, 1),
        xlim=(x.min(), x.max() if len(x) > 1 else x.min() + 1),
        title="class area over time",
    )
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    try:
        figure.savefig(path, dpi=100)
    except OSError as err:
        raise SinkError(f"cannot write {path}: {err.strerror or err}") from None
