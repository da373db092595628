"""Which vector instruction sets this CPU has: what picks the CPU engine, and what labels every benchmark."""

from __future__ import annotations

from functools import cache
from pathlib import Path

# ISA names and the /proc/cpuinfo flags that show them: figures from different kinds are never to be mixed
ISA_FLAGS = {
    "AVX2": ("avx2",),
    "AVX-512": ("avx512f",),
    "VNNI": ("avx512_vnni", "avx_vnni"),
    "AVX512_BF16": ("avx512_bf16",),  # AMX computes BF16 too: its own entry
    "AMX": ("amx_tile",),
}


def cpu_isa(flags: set[str]) -> list[str]:
    """The ISA names of :data:`ISA_FLAGS` that ``flags`` (a cpuinfo flags line, split) show."""
    return [name for name, needs in ISA_FLAGS.items() if any(flag in flags for flag in needs)]


@cache
def cpu_flags() -> frozenset[str] | None:
    """This CPU's flags from /proc/cpuinfo; None where there is none to read (not Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags":
                return frozenset(value.split())
    except OSError:
        pass
    return None


def this_cpu_isa() -> list[str] | None:
    """:func:`cpu_isa` of this CPU; None where its flags cannot be read."""
    flags = cpu_flags()
    return cpu_isa(set(flags)) if flags is not None else None
