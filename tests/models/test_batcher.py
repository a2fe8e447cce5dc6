"""The request batcher: real threads against a plain function (fast), then concurrent SmolLM2 calls (integration)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from agentdistill.models import ModelOptions, user
from agentdistill.models.batcher import RequestBatcher
from agentdistill.models.transformers_backend import load_packaged_model


class Recorder:
    """A batch runner that doubles numbers and remembers the batches it was given."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, requests: Sequence[int]) -> list[int]:
        with self.lock:
            self.batches.append(list(requests))
        if self.fail_on in requests:
            raise RuntimeError(f"boom on {self.fail_on}")
        return [2 * r for r in requests]


def submit_together(batcher: RequestBatcher[int, int], requests: Sequence[int]) -> list[int | BaseException]:
    """Release all threads at once, as a server's workers or parallel agents would be."""
    start = threading.Barrier(len(requests))

    def call(request: int) -> int | BaseException:
        start.wait()
        try:
            return batcher.submit(request)
        except RuntimeError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(call, requests))


def test_concurrent_requests_share_a_batch_and_each_gets_its_own_result() -> None:
    run = Recorder()
    batcher = RequestBatcher(run, key=lambda r: 0, max_batch=8, window_s=0.2)
    assert submit_together(batcher, [1, 2, 3, 4]) == [2, 4, 6, 8]
    assert sorted(len(b) for b in run.batches) == [4]  # all four collected within the window
    assert batcher.stats.batches == 1 and batcher.stats.requests == 4


def test_batches_never_exceed_max_batch() -> None:
    run = Recorder()
    batcher = RequestBatcher(run, key=lambda r: 0, max_batch=2, window_s=0.2)
    assert submit_together(batcher, [1, 2, 3, 4, 5]) == [2, 4, 6, 8, 10]
    assert max(len(b) for b in run.batches) == 2 and sum(len(b) for b in run.batches) == 5


def test_incompatible_requests_go_to_separate_batches() -> None:
    run = Recorder()
    batcher = RequestBatcher(run, key=lambda r: r % 2, max_batch=8, window_s=0.2)
    assert submit_together(batcher, [1, 2, 3, 4]) == [2, 4, 6, 8]
    assert all(len({r % 2 for r in batch}) == 1 for batch in run.batches)


def test_a_failing_batch_raises_in_every_caller_of_that_batch() -> None:
    run = Recorder(fail_on=3)
    batcher = RequestBatcher(run, key=lambda r: 0, max_batch=8, window_s=0.2)
    results = submit_together(batcher, [1, 3])
    assert all(isinstance(r, RuntimeError) and "boom on 3" in str(r) for r in results)
    assert batcher.submit(5) == 10  # the batcher is still usable afterwards


def test_a_lone_caller_runs_alone() -> None:
    run = Recorder()
    batcher = RequestBatcher(run, key=lambda r: 0, window_s=0.0)
    assert [batcher.submit(i) for i in range(3)] == [0, 2, 4]
    assert run.batches == [[0], [1], [2]]


def test_bad_settings_are_value_errors() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        RequestBatcher(Recorder(), key=lambda r: 0, max_batch=0)


# ---- real SmolLM2-135M ----

QUESTIONS = [
    "Count from 1 to 10, separated by commas.",
    "What is the capital of France?",
    "Name a primary color.",
    "Say hello in Spanish.",
]


@pytest.mark.integration
def test_concurrent_callers_batched_get_the_same_answers_as_unbatched() -> None:
    base = load_packaged_model("smollm2-135m", ModelOptions())
    plain, batched = base.variant(batch_requests=False), base.variant(batch_requests=True)
    # Each caller has its own stop and token limit; the batch must honour them row by row.
    calls = [(q, [", 4"] if i == 0 else [], 10 if i != 2 else 4) for i, q in enumerate(QUESTIONS)]
    expected = [plain.generate([user(q)], stop=stop, max_tokens=limit)[0] for q, stop, limit in calls]
    start = threading.Barrier(len(calls))

    def call(args: tuple[str, list[str], int]):
        start.wait()
        return batched.generate([user(args[0])], stop=args[1], max_tokens=args[2])[0]

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        got = list(pool.map(call, calls))
    assert [c.text for c in got] == [c.text for c in expected]
    assert got[0].text == "1, 2, 3" and got[0].finish_reason == "stop"
    assert got[2].usage.completion_tokens == 4 and got[2].finish_reason == "length"
    assert [c.usage for c in got] == [c.usage for c in expected]  # prompt counted per caller, padding never
    stats = batched.batch_stats
    assert stats is not None and max(stats.sizes) > 1  # they really shared a generate
