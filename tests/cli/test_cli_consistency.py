"""One spelling per option across every command, the README's command lines against `--help`, old spellings that
still work, examples in every `--help`, flags mapped onto the config model, and what `run` says at its end or
without a model. Click's own introspection of the real commands; real runs where behaviour is at stake."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import click
import pytest
from PIL import Image

from streamseg.choices import BACKENDS, PRECISIONS
from streamseg.cli import cli
from streamseg.cli.command import Command
from streamseg.cli.flags import BitRate, literal_choices
from streamseg.cli.run import build_config, run
from streamseg.config import CONFIG_LEAVES, RunConfig, config_field, flag_names
from streamseg.errors import ConfigError
from tests.support.paths import ROOT

# commands that write files or folders: each names what it writes with -o/--output
WRITERS = {
    "run",
    "batch",
    "bench",
    "build-engine",
    "datasets synth",
    "models export",
    "quantize",
    "report",
    "subscribe",
    "serve",
    "train",
}
OLD_SPELLINGS = {"--out", "--output-dir", "--outdir", "--save", "--encoder", "--base-size"}
NOT_CONFIG = {"spec_path", "config_path", "no_progress", "sources"}  # run's options that are not RunConfig leaves
# RunConfig leaves no flag sets: YAML or the Python API only (sources are run's arguments)
FLAGLESS = {"spec", "scores", "sources", "preset", "tune", "crf"}


def all_commands() -> list[tuple[str, click.Command]]:
    """(path, command) for the root, every group and every subcommand: "", "run", "models export", ..."""
    found: list[tuple[str, click.Command]] = []

    def walk(path: str, command: click.Command) -> None:
        found.append((path, command))
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                walk(f"{path} {name}".strip(), sub)

    walk("", cli)
    return found


def options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.hidden]


def resolve(words: list[str]) -> tuple[str, click.Command, list[str]]:
    """The command a command line names (after `streamseg` and its global options) and the words left for it."""
    command: click.Command = cli
    path: list[str] = []
    while words and isinstance(command, click.Group):
        if words[0].startswith("-"):  # global options: -v, --debug
            words = words[1:]
            continue
        sub = command.get_command(click.Context(command), words[0])
        assert sub is not None, f"no command {' '.join([*path, words[0]])}"
        command, path, words = sub, [*path, words[0]], words[1:]
    return " ".join(path), command, words


def unknown_flags(line: str) -> list[str]:
    """Flags in one `streamseg ...` command line that its command does not take (old spellings count as unknown)."""
    words = shlex.split(line.split(" #")[0])
    _, command, rest = resolve(words[1:])
    known = {name for p in command.params for name in (*p.opts, *p.secondary_opts)} | {"-h", "--help"}
    flags = []
    for word in rest:
        word = word.strip("[]")
        if re.fullmatch(r"--?[a-zA-Z][\w-]*(=.*)?", word):
            flags.append(word.split("=")[0])
    return [f for f in flags if f not in known]


# -- (a) the same spelling everywhere ------------------------------------------------------------------------------
def test_output_model_and_size_flags_are_spelled_one_way_in_every_command():
    writers = set()
    for path, command in all_commands():
        for option in options(command):
            names = set(option.opts) | set(option.secondary_opts)
            assert not names & OLD_SPELLINGS, f"{path}: {names & OLD_SPELLINGS} (use the new spelling)"
            if names & {"-o", "--output"}:
                assert sorted(option.opts) == ["--output", "-o"], f"{path}: {option.opts}"
                writers.add(path)
            if names & {"-m", "--model"}:
                assert sorted(option.opts) == ["--model", "-m"], f"{path}: {option.opts}"
            if "--size" in names:
                assert isinstance(option.type, click.types.IntParamType), f"{path} --size: {option.type}"
                assert "short side" in (option.help or "").lower(), f"{path} --size: {option.help}"
    assert writers == WRITERS


def test_backend_and_precision_offer_the_config_models_choices_everywhere():
    config_backends = literal_choices(RunConfig.model_fields["backend"].annotation)
    config_precisions = literal_choices(RunConfig.model_fields["precision"].annotation)
    assert config_backends == BACKENDS == ("auto", "tensorrt", "torch", "onnxruntime", "openvino")
    assert config_precisions == PRECISIONS == ("fp32", "fp16", "bf16", "int8")
    seen = {"backend": set(), "precision": set()}
    for path, command in all_commands():
        for option in options(command):
            for kind, choices in (("backend", BACKENDS), ("precision", PRECISIONS)):
                if any(name.endswith(f"-{kind}") or name == f"--{kind}" for name in option.opts):
                    assert isinstance(option.type, click.Choice), f"{path} {option.opts}: a free string"
                    assert tuple(option.type.choices) == choices, f"{path} {option.opts}"
                    seen[kind].add(path)
    assert {"run", "batch", "bench", "eval"} <= seen["backend"]
    assert {"run", "batch", "bench", "build-engine"} <= seen["precision"]
    with pytest.raises(ConfigError, match="backend: Input should be 'auto', 'tensorrt'"):  # as click refuses it
        RunConfig.build({"backend": "bogus"})


def test_datasets_synth_takes_a_picture_size_as_image_size():
    command = dict(all_commands())["datasets synth"]
    (option,) = [o for o in options(command) if "--image-size" in o.opts]
    assert option.metavar == "WxH"
    ctx = command.make_context("synth", ["-o", "x", "--image-size", "96x64"])
    assert ctx.params["size"] == (64, 96)  # (height, width)
    with pytest.raises(click.BadParameter, match="WIDTHxHEIGHT"):
        command.make_context("synth", ["-o", "x", "--image-size", "96"])


# -- (b) the README's command lines exist --------------------------------------------------------------------------
def readme_command_lines() -> list[str]:
    """Every `streamseg ...` command line in README.md: code blocks (with continuation lines) and inline code."""
    text = (ROOT / "README.md").read_text()
    lines: list[str] = []
    for language, block in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if language not in ("", "sh", "bash", "console"):
            continue
        joined = re.sub(r"\\\n\s*", " ", block)
        joined = re.sub(r"\n(?=[ \t]+\S)", " ", joined)  # indented lines continue the line above
        lines += joined.splitlines()
    inline = re.sub(r"```.*?```", "", text, flags=re.S)
    lines += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", inline)]
    commands = []
    for line in lines:
        for part in re.split(r"&&|;|\|(?=\s)", line):
            match = re.search(r"(?:^|[\s/])(streamseg\s.*)", part.strip())
            if match and not re.search(r"streamseg\s*:", match.group(1)):  # not an error message
                commands.append(match.group(1).replace("…", "").strip())
    return commands


def test_every_flag_in_the_readme_exists_in_that_commands_help():
    commands = readme_command_lines()
    assert len(commands) > 20 and any(c.startswith("streamseg run ../shared/media/car-detection.mp4") for c in commands)
    bad = {line: unknown_flags(line) for line in commands}
    assert not {line: flags for line, flags in bad.items() if flags}


def test_the_readme_flag_check_catches_an_unknown_flag():
    assert unknown_flags("streamseg run a.mp4 -o b.mp4 --encoder libx264 [--no-such-flag]") == [
        "--encoder",
        "--no-such-flag",
    ]
    assert unknown_flags("streamseg models export fcn_resnet50 --weights none -o m.onnx") == []


def test_the_readmes_first_command_is_a_short_run_of_the_fast_model():
    first = next(c for c in readme_command_lines() if c.startswith("streamseg run "))
    words = shlex.split(first)
    assert words[words.index("-m") + 1] == "model.onnx" and "--max-frames" in words and "--size" in words
    text = (ROOT / "README.md").read_text()
    assert "streamseg models export lraspp_mobilenet_v3_large --weights pretrained -o model.onnx" in text


# -- (c) old spellings work, with a warning ------------------------------------------------------------------------
def sample(option: click.Option) -> tuple[str, Any]:
    """A command-line value for ``option`` and what click makes of it."""
    if option.metavar == "WxH":
        return "96x64", (64, 96)  # (height, width)
    if isinstance(option.type, click.types.IntParamType):
        return "120", 120
    if isinstance(option.type, click.Choice):
        return str(option.type.choices[-1]), option.type.choices[-1]
    return "somewhere", "somewhere"


def renamed_flags() -> list[tuple[str, Command, str, str]]:
    return [
        (path, command, old, new)
        for path, command in all_commands()
        if isinstance(command, Command)
        for old, new in command.renamed.items()
    ]


def test_some_commands_keep_old_spellings():
    olds = {(path, old) for path, _, old, _ in renamed_flags()}
    assert {
        ("run", "--encoder"),
        ("batch", "--encoder"),
        ("batch", "--output-dir"),
        ("datasets synth", "--out"),
        ("datasets synth", "--size"),
        ("subscribe", "--save"),
        ("train", "--base-size"),
    } <= olds


@pytest.mark.parametrize("path,command,old,new", renamed_flags(), ids=lambda v: v if isinstance(v, str) else "")
def test_an_old_spelling_sets_the_new_option_and_warns(path, command, old, new, capfd):
    (option,) = [p for p in command.params if new in p.opts]
    text, value = sample(option)
    for argv in ([old, text], [f"{old}={text}"]):
        ctx = command.make_context(path, argv, resilient_parsing=True)  # no required options, no callbacks
        assert ctx.params[option.name] == value
        spelling = "/".join(sorted(option.opts, key=len))
        assert capfd.readouterr().err == f"streamseg: warning: {old} is deprecated, use {spelling}\n"


def test_old_synth_spellings_still_write_the_dataset(tmp_path):
    proc = streamseg(
        "datasets", "synth", "--out", str(tmp_path / "d"), "--size", "64x48", "--n", "2", "--video-frames", "0"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[:2] == [
        "streamseg: warning: --out is deprecated, use -o/--output",
        "streamseg: warning: --size is deprecated, use --image-size",
    ]
    images = sorted((tmp_path / "d" / "JPEGImages").glob("*.jpg"))
    assert len(images) == 2 and Image.open(images[0]).size == (64, 48)


def test_a_renamed_flag_must_exist():
    with pytest.raises(TypeError, match="--nothing"):
        Command("x", params=[click.Option(["-o", "--output"])], renamed={"--out": "--nothing"})


# -- (d) examples in every --help -----------------------------------------------------------------------------------
def examples_of(path: str, command: click.Command) -> list[str]:
    with click.Context(command, info_name=f"streamseg {path}".strip()) as ctx:
        help_text = command.get_help(ctx)
    assert "Examples:" in help_text, f"`streamseg {path} --help` has no examples"
    after = help_text.split("Examples:", 1)[1]
    return [line.strip() for line in after.splitlines() if line.strip().startswith("streamseg")]


@pytest.mark.parametrize("path,command", all_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_help_ends_with_examples_of_itself_that_parse(path, command):
    lines = examples_of(path, command)
    assert lines and all(line.startswith(f"streamseg {path}".strip()) for line in lines), lines
    for line in lines:
        assert not unknown_flags(line), line


# -- (e) flags map onto RunConfig, derived from the model ------------------------------------------------------------
CHANGED = object()  # a value whose parsed form only the option's own validator knows: check it left the default


STRUCTURED = {"rois": "r=0,0;1,0;0,1", "events": "c in r > 0.1"}  # flags whose one word is parsed into a model


def config_value(option: click.Option, leaf: str) -> tuple[list[str], Any]:
    """Words that set ``leaf`` through ``option``, and the value RunConfig should then hold."""
    field = config_field(leaf)
    if leaf in STRUCTURED:
        return [option.opts[-1], STRUCTURED[leaf]], CHANGED
    if option.is_flag and not option.secondary_opts:
        return [option.opts[-1]], True
    if option.secondary_opts:  # --winograd/--no-winograd: the other one than the default
        return ([option.secondary_opts[0]], False) if field.default else ([option.opts[-1]], True)
    if isinstance(option.type, click.Choice):
        choice = next(c for c in option.type.choices if c != field.default)
        return [option.opts[-1], str(choice)], choice
    if isinstance(option.type, BitRate):
        return [option.opts[-1], "2k"], 2000
    if isinstance(option.type, click.types.IntParamType):
        return [option.opts[-1], "17"], 17
    if isinstance(option.type, click.types.FloatParamType):
        return [option.opts[-1], "0.5"], 0.5
    if field.annotation in (str, str | None):
        return [option.opts[-1], f"{leaf}-value"], f"{leaf}-value"
    if field.annotation in (tuple[str, ...], tuple[str, ...] | None):
        return [option.opts[-1], f"{leaf}-value"], (f"{leaf}-value",)
    return [option.opts[-1], "17"], CHANGED  # e.g. a list of numbers in one word


def test_run_flags_are_named_after_the_config_keys_they_set():
    flagged = set()
    for command in (run, dict(all_commands())["batch"]):
        for option in options(command):
            if option.name in CONFIG_LEAVES:
                assert option.opts == flag_names(option.name), option.opts
                choices = literal_choices(config_field(option.name).annotation)
                if choices is not None:
                    assert tuple(option.type.choices) == choices, option.opts
                flagged.add(option.name)
            else:
                assert command is not run or option.name in NOT_CONFIG, option.opts
    assert flag_names("codec") == ["--codec"] and flag_names("input_size") == ["--size"]
    assert set(CONFIG_LEAVES) - flagged == FLAGLESS  # a new config option gets a flag, or is listed as YAML-only


def run_options(argv: list[str]) -> dict[str, Any]:
    """What `run` parses from ``argv`` and hands to ``build_config`` (the rest it takes itself)."""
    params = run.make_context("run", argv).params
    return {k: v for k, v in params.items() if k not in ("spec_path", "config_path", "no_progress")}


def test_every_run_flag_round_trips_into_the_nested_config():
    argv, expected = ["in.mp4"], {}
    for option in options(run):
        if option.name in CONFIG_LEAVES:
            words, value = config_value(option, option.name)
            argv += words
            expected[option.name] = value
    config = build_config(run_options(argv), None, None)
    assert len(expected) > 40
    for leaf, value in expected.items():
        held: Any = config
        for part in CONFIG_LEAVES[leaf]:
            held = getattr(held, part)
        if value is CHANGED:
            assert held != config_field(leaf).default, leaf
        else:
            assert held == value, f"{leaf} ({'.'.join(CONFIG_LEAVES[leaf])}): {held!r} != {value!r}"
    assert CONFIG_LEAVES["codec"] == ("encoder", "codec") and CONFIG_LEAVES["loop"] == ("live", "loop")
    assert config.encoder.bitrate == 2000 and config.live.realtime is True


def test_a_bad_value_is_refused_by_the_config_model_with_the_key_named():
    flags = run_options(["in.mp4", "--reconnect-delay", "2", "--reconnect-max-delay", "1"])
    with pytest.raises(ConfigError, match="live.*reconnect_max_delay"):
        build_config(flags, None, None)


# -- (f, g) what run says ------------------------------------------------------------------------------------------
def streamseg(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamseg", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def small_video(tmp_path_factory) -> Path:
    """A 6-frame street scene video, written by `datasets synth`."""
    root = tmp_path_factory.mktemp("synth")
    proc = streamseg(
        "datasets", "synth", "-o", str(root), "--n", "2", "--image-size", "96x64", "--video-frames", "6", "--fps", "6"
    )
    assert proc.returncode == 0, proc.stderr
    return root / "heldout" / "heldout.mp4"


def test_the_summary_line_names_every_file_written(small_video, duc_onnx, tmp_path):
    # an MCAP file too where the ros extra is installed (CI installs it; a lean dev install has not)
    mcap = ["-o", "run.mcap"] if importlib.util.find_spec("mcap_ros2") else []
    proc = streamseg(
        "run",
        str(small_video),
        "-o",
        "out.mp4",
        "--labels-out",
        "labels",
        "--summary",
        "run.csv",
        *mcap,
        "-m",
        str(duc_onnx),
        "--max-frames",
        "3",
        "--no-progress",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("streamseg: done:")]
    assert line.endswith("; wrote out.mp4, labels/, run.csv" + (", run.mcap" if mcap else "")), line
    assert (tmp_path / "out.mp4").stat().st_size > 0 and len(list((tmp_path / "labels").glob("*.png"))) == 3


def test_run_without_a_model_names_the_one_command_that_makes_one(small_video, tmp_path):
    proc = streamseg(
        "run", str(small_video), "-o", "out.mp4", env={"STREAMSEG_CACHE": str(tmp_path / "cache")}, cwd=tmp_path
    )
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("streamseg: error: no model given, and none cached: make one with `streamseg ")
    command = re.search(r"`(streamseg [^`]+)`", proc.stderr).group(1)
    _, made_by, _ = resolve(shlex.split(command)[1:])
    assert made_by.name in ("export", "fetch") and not unknown_flags(command)
    name = proc.stderr.rstrip().rsplit("-m ", 1)[1]
    assert name in command  # the -m value is what the command makes
    assert not (tmp_path / "out.mp4").exists()


def test_run_without_a_model_lists_the_cached_ones(small_video, tmp_path):
    from streamseg.models import ZOO

    cache = tmp_path / "cache"
    source = ZOO["fcn_resnet50"].files["int8"]
    (cache / "models").mkdir(parents=True)
    (cache / "models" / source.url.rsplit("/", 1)[-1]).write_bytes(b"not checked here")
    proc = streamseg("run", str(small_video), "-o", "out.mp4", env={"STREAMSEG_CACHE": str(cache)}, cwd=tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == "streamseg: error: no model given: pass -m NAME or -m PATH.onnx (cached: "
        "fcn_resnet50:int8)"
    )


def test_choices_come_from_one_module():
    from streamseg import backends

    assert backends.BACKENDS is BACKENDS and backends.PRECISIONS is PRECISIONS
    assert get_args(get_args(RunConfig.model_fields["precision"].annotation)[0]) == PRECISIONS
