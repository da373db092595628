"""YAML files and validation errors as the one-line messages the CLI prints."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from streamseg.errors import ConfigError


def load_yaml(path: str | Path) -> object:
    """Parse a YAML file, turning every failure into a one-line ``ConfigError``."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{at}: {problem}") from None


def describe_validation_error(err: ValidationError, where: str) -> str:
    """One line naming the first bad key, e.g. ``x.yaml: normalize.mean: ...``."""
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {key}: {msg}{more}"
