"""The bench report names the CPU's ISA, so figures from different kinds of machine are never mixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamseg.bench.report import machine
from streamseg.isa import cpu_isa


def test_isa_names_from_cpuinfo_flags():
    assert cpu_isa({"sse4_2", "avx2", "fma"}) == ["AVX2"]
    assert cpu_isa({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"}) == [
        "AVX2",
        "AVX-512",
        "VNNI",
        "AVX512_BF16",
        "AMX",
    ]
    assert cpu_isa({"avx2", "avx_vnni"}) == ["AVX2", "VNNI"]  # 256-bit VNNI counts as VNNI
    assert cpu_isa(set()) == []


def test_machine_names_this_cpus_isa():
    info = Path("/proc/cpuinfo")
    if not info.exists():
        pytest.skip("no /proc/cpuinfo on this system")
    flags = next(line.split(":", 1)[1].split() for line in info.read_text().splitlines() if line.startswith("flags"))
    assert machine()["isa"] == cpu_isa(set(flags))
