"""llama.cpp's OpenMP wait policy and the per-call thread governor: pure logic with fake /proc samples (fast),
the real /proc of this machine, and a real SmolLM2 whose thread count follows the governor (integration)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from agentdistill.errors import ConfigError
from agentdistill.models.llama_threads import (
    SPIN_COUNT,
    WAIT_ENV,
    CpuSample,
    ThreadGovernor,
    choose_policy,
    environment,
    others_busy_cores,
    sample_cpu,
)


def _policy(env: dict[str, str], *, others: float | None = 0.0, loaded_lib: bool = False):
    return choose_policy(env, others=lambda: others, libgomp_loaded=lambda: loaded_lib)


def test_auto_spins_briefly_on_an_idle_machine_and_waits_passively_on_a_busy_one() -> None:
    policy, variables = _policy({}, others=0.1)
    assert (policy.policy, variables) == ("spin", {"GOMP_SPINCOUNT": SPIN_COUNT}) and policy.adapts_threads
    policy, variables = _policy({}, others=1.6)
    assert (policy.policy, variables) == ("passive", {"OMP_WAIT_POLICY": "PASSIVE"}) and not policy.adapts_threads
    assert "1.6 cores" in policy.why
    policy, _ = _policy({}, others=None)  # /proc unreadable: the fast choice, guarded by the thread check
    assert policy.policy == "spin"


def test_the_knob_fixes_the_policy_and_a_bad_value_names_the_choices() -> None:
    assert _policy({WAIT_ENV: "passive"}, others=0.0)[0].policy == "passive"
    assert _policy({WAIT_ENV: "SPIN"}, others=2.0)[0].policy == "spin"
    with pytest.raises(ConfigError, match=r"AGENTDISTILL_LLAMA_WAIT.*auto \(default\), spin or passive"):
        _policy({WAIT_ENV: "fast"})


def test_the_users_openmp_settings_and_an_already_loaded_libgomp_are_left_alone() -> None:
    policy, variables = _policy({"OMP_WAIT_POLICY": "passive"})
    assert (policy.policy, variables) == ("user", {}) and not policy.adapts_threads
    policy, variables = _policy({"GOMP_SPINCOUNT": "300000"})
    assert (policy.policy, variables) == ("inherited", {}) and policy.adapts_threads
    policy, variables = _policy({}, loaded_lib=True)
    assert (policy.policy, variables) == ("inherited", {}) and "torch" in policy.why


def test_environment_sets_variables_for_the_block_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    with environment({"GOMP_SPINCOUNT": "1000", "OMP_WAIT_POLICY": "PASSIVE"}):
        assert os.environ["GOMP_SPINCOUNT"] == "1000" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert "GOMP_SPINCOUNT" not in os.environ and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_others_busy_cores_subtracts_this_process() -> None:
    before = CpuSample(busy=1000, total=4000, own=500, cores=2)
    after = CpuSample(busy=1180, total=4200, own=600, cores=2)  # 200 ticks over 2 cores: 180 busy, 100 ours
    assert others_busy_cores(before, after) == pytest.approx(0.8)
    assert others_busy_cores(after, after) == 0.0
    assert others_busy_cores(before, CpuSample(busy=1100, total=4200, own=700, cores=2)) == 0.0


def test_sample_cpu_reads_a_proc_tree(tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    lines = ["cpu  1 1 1 1 1 1 1 1 0 0"] + [f"cpu{n} 10 0 5 80 5 0 0 0 0 0" for n in cpus] + ["cpu999 7 7 7 7 7 7 7 7"]
    (tmp_path / "stat").write_text("\n".join(lines) + "\n")
    (tmp_path / "self").mkdir()
    stat = "4242 (py thon) S " + " ".join(["0"] * 10) + " 12 3 " + " ".join(["0"] * 30)
    (tmp_path / "self" / "stat").write_text(stat)
    sample = sample_cpu(tmp_path)
    assert sample == CpuSample(busy=15 * len(cpus), total=100 * len(cpus), own=15, cores=len(cpus))
    assert sample_cpu(tmp_path / "missing") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sample_cpu_reads_this_machine() -> None:
    sample = sample_cpu()
    assert sample is not None and 0 < sample.busy <= sample.total and sample.cores == len(os.sched_getaffinity(0))


def _samples(*others_per_call: float):
    """A sampler whose every (before, after) pair shows `others` cores busy over 100 ticks of 2 cores."""
    ticks = {"busy": 0, "total": 0}
    queue = [value for value in others_per_call for _ in (0, 1)]
    state = {"n": 0}

    def sampler() -> CpuSample:
        n = state["n"]
        state["n"] += 1
        if n % 2 == 1:  # the "after" sample of a call: 100 ticks passed
            ticks["total"] += 100
            ticks["busy"] += int(queue[n] * 50)
        return CpuSample(busy=ticks["busy"], total=ticks["total"], own=0, cores=2)

    return sampler


def test_governor_steps_down_to_one_thread_while_others_hold_a_core_and_back_up_after() -> None:
    governor = ThreadGovernor(2, adapt=True, sampler=_samples(0.0, 1.5, 1.2, 0.1, 0.0))
    used = []
    for _ in range(5):
        with governor.decoding() as threads:
            used.append(threads)
    assert used == [2, 2, 1, 1, 2]


def test_governor_keeps_chosen_threads_when_told_or_blind() -> None:
    fixed = ThreadGovernor(2, adapt=False, sampler=_samples(2.0, 2.0))
    single = ThreadGovernor(1, adapt=True, sampler=_samples(2.0, 2.0))
    for governor in (fixed, single):
        for _ in range(2):
            with governor.decoding() as threads:
                assert threads == governor.threads
    blind = ThreadGovernor(2, adapt=True, sampler=lambda: None)
    with blind.decoding() as threads:
        assert threads == 2
    assert not blind.adapt


def test_a_short_call_does_not_change_the_choice() -> None:
    samples = iter([CpuSample(0, 0, 0, 2), CpuSample(10, 10, 0, 2), CpuSample(10, 10, 0, 2), CpuSample(20, 20, 0, 2)])
    governor = ThreadGovernor(2, adapt=True, sampler=lambda: next(samples))
    for _ in range(2):
        with governor.decoding() as threads:
            assert threads == 2  # 10 ticks of full load each: too short to judge


# ---- integration: real SmolLM2 on llama.cpp ----


def test_a_loaded_model_reports_its_policy_and_decodes_with_the_governors_threads() -> None:
    from agentdistill.models.gguf_backend import gguf_unavailable_reason

    if gguf_unavailable_reason() is not None:
        pytest.skip(f"llama.cpp is unusable here: {gguf_unavailable_reason()}")
    from agentdistill.models import ModelOptions, make_chat_model, user

    model = make_chat_model("gguf:smollm2-135m", ModelOptions(threads=2))
    chosen = make_chat_model("gguf:smollm2-135m")
    info = chosen.describe()
    assert info["openmp_wait"].split()[0] in ("spin", "passive", "user", "inherited")
    assert "GOMP_SPINCOUNT" not in os.environ or os.environ.get("GOMP_SPINCOUNT") != SPIN_COUNT
    assert model.describe()["threads_adapt_to_load"] is False  # the user chose 2 threads
    import llama_cpp

    [two] = model.generate([user("Count from 1 to 10, separated by commas.")], max_tokens=12)
    model._use_threads(1)
    assert llama_cpp.llama_n_threads(model.unwrap().ctx) == 1
    [one] = model.generate([user("Count from 1 to 10, separated by commas.")], max_tokens=12)
    model.renamed("local:smollm2-135m")._use_threads(2)  # a twin shares the context: it must see the 1 and reset it
    assert llama_cpp.llama_n_threads(model.unwrap().ctx) == 2 and model.describe()["threads_now"] == 2
    assert one.usage.completion_tokens > 0 and one.text.startswith("1, 2") and two.text.startswith("1, 2")
