"""Build flags per CPU: every SIMD level the CPU has, never AMX; native elsewhere. CPU info from /proc/cpuinfo."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agentdistill.cli import cli
from agentdistill.models.llama_build import CpuInfo, cmake_args, explain, read_cpu

SAPPHIRE = frozenset(
    "fma f16c bmi2 avx avx2 sse4_2 avx_vnni avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni"
    " avx512_bf16 amx_tile amx_int8 amx_bf16".split()
)
EPYC_ZEN2 = frozenset("fma f16c bmi2 avx avx2 sse4_2".split())


def flags(cpu: CpuInfo) -> dict[str, str]:
    return dict(arg[2:].split("=") for arg in cmake_args(cpu))


def test_an_amx_xeon_keeps_avx512_and_vnni_but_never_amx() -> None:
    got = flags(CpuInfo("x86_64", "Xeon", SAPPHIRE))
    assert got["GGML_NATIVE"] == "OFF"
    assert all(
        got[k] == "ON" for k in ("GGML_AVX2", "GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AVX512_BF16", "GGML_AVX_VNNI")
    )
    assert all(got[k] == "OFF" for k in ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"))


def test_an_avx2_only_epyc_gets_no_avx512() -> None:
    got = flags(CpuInfo("x86_64", "AMD EPYC", EPYC_ZEN2))
    assert got["GGML_AVX2"] == got["GGML_FMA"] == "ON"
    assert got["GGML_AVX512"] == got["GGML_AVX512_VNNI"] == got["GGML_AVX_VNNI"] == "OFF"


def test_avx512_needs_all_five_subsets() -> None:
    partial = EPYC_ZEN2 | {"avx512f", "avx512cd"}  # no vl/dq/bw: ggml's AVX512 would compile instructions it lacks
    assert flags(CpuInfo("x86_64", "odd", partial))["GGML_AVX512"] == "OFF"


def test_an_old_cpu_without_avx2_turns_it_off() -> None:
    got = flags(CpuInfo("x86_64", "old", frozenset({"sse4_2", "avx"})))
    assert got["GGML_AVX"] == "ON" and got["GGML_AVX2"] == got["GGML_FMA"] == "OFF"


def test_arm_keeps_the_native_build() -> None:
    assert flags(CpuInfo("aarch64", "Neoverse", frozenset({"asimd", "asimddp", "sve"})))["GGML_NATIVE"] == "ON"


def test_every_flag_is_explained() -> None:
    rows = explain(CpuInfo("x86_64", "Xeon", SAPPHIRE))
    assert [flag for flag, _ in rows] == cmake_args(CpuInfo("x86_64", "Xeon", SAPPHIRE))
    assert all(why for _, why in rows)


def test_read_cpu_parses_proc_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu avx2 amx_tile\n\n"
        "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu avx2 amx_tile\n"
    )
    cpu = read_cpu(info)
    assert cpu.model == "Intel(R) Xeon(R) Processor" and cpu.flags == {"fpu", "avx2", "amx_tile"} and cpu.has_amx
    assert cpu.fingerprint() != CpuInfo(cpu.machine, cpu.model, frozenset({"fpu", "avx2"})).fingerprint()
    assert read_cpu(tmp_path / "missing").flags == frozenset()


def test_the_build_flags_command_prints_one_cmake_args_line() -> None:
    runner = CliRunner()
    line = runner.invoke(cli, ["models", "build-flags"], catch_exceptions=False).output.strip()
    assert "\n" not in line and "AMX" not in line.replace("AMX_TILE=OFF", "").replace("AMX_INT8=OFF", "").replace(
        "AMX_BF16=OFF", ""
    )
    data = json.loads(runner.invoke(cli, ["models", "build-flags", "--json"], catch_exceptions=False).output)
    assert data["cmake_args"] == line.split() and set(data["why"]) == set(line.split())
