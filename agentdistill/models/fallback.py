"""Per-node students with teacher fallback: a small model answers where it can, the teacher where it cannot.

`FallbackModel` asks the student first and hands the same call to the teacher when the student's reply does
not parse, or (sampling `samples` replies) when too few of them agree on one action: disagreement between
samples is a cheap confidence signal (self-consistency, as codeact's SAG uses it). `NodeModels` says which
model serves which role or graph node; `Recorder.wrap` routes each recorded call through it, so e.g. only
LAG's decomposer or only recbot's parser is a student. A completion the teacher wrote carries `model` (the
teacher's spec) and `fallback` (what the student wrote, and why it was overruled); the recorder stores both.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from agentdistill.errors import ConfigError
from agentdistill.models.base import ChatModel, Completion, Message, TokenCallback

Check = Callable[[str], Hashable | None]  # reply text -> canonical key of its parsed action; None: unparsable
Reason = Literal["unparsable", "disagree"]


@dataclass(frozen=True)
class FallbackPolicy:
    """When the teacher takes over from a student."""

    samples: int = 1  # student replies per call; 1 = one greedy reply, checked only for parsing
    temperature: float = 0.7  # sampling temperature of the student's replies when samples > 1
    min_agreement: float = 0.5  # share of the samples that must parse to the majority's action, else the teacher

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ConfigError("fallback.samples", self.samples, "a positive number of student samples per call")
        if self.samples > 1 and self.temperature <= 0:
            raise ConfigError("fallback.temperature", self.temperature, "a temperature > 0 when samples > 1 "
                              "(greedy samples always agree); 0.7 is typical")  # fmt: skip
        if not 0 < self.min_agreement <= 1:
            raise ConfigError("fallback.min_agreement", self.min_agreement, "a share in (0, 1], e.g. 0.5")


@dataclass(frozen=True)
class FallbackStats:
    """What a FallbackModel did so far: calls, who answered, and the tokens and seconds each model spent."""

    calls: int = 0
    student_answers: int = 0
    fallbacks: Mapping[str, int] = field(default_factory=dict)  # reason -> calls the teacher answered
    student_tokens: int = 0  # prompt + completion tokens, every sample counted (rejected ones too)
    teacher_tokens: int = 0
    student_s: float = 0.0
    teacher_s: float = 0.0

    @property
    def fallback_rate(self) -> float:
        """Share of calls the teacher answered (0.0 before any call)."""
        return sum(self.fallbacks.values()) / self.calls if self.calls else 0.0


class FallbackModel:
    """A ChatModel: the student answers unless `check` rejects its reply; then the teacher answers the same call.

    With `policy.samples` > 1 the student samples that many replies; the teacher answers when the most common
    action is unparsable or fewer than `min_agreement` of the samples share it, else the first sample with that
    action is returned. A caller asking n > 1 itself (SAG) gets the student's n samples unless none parses.
    `on_token` sees exactly the text returned: the student's reply is held back until it passes and then sent
    in one piece, while a fallback's teacher reply streams live. Streaming the student live and then the teacher
    would show listeners (and LangGraph's messages stream, which joins the deltas) both replies run together.
    """

    def __init__(
        self, student: ChatModel, teacher: ChatModel, check: Check, policy: FallbackPolicy | None = None
    ) -> None:
        self.student, self.teacher, self.check = student, teacher, check
        self.policy = policy or FallbackPolicy()
        self.spec = f"{student.spec}>{teacher.spec}"
        self._lock = threading.Lock()
        self._stats = FallbackStats()

    def generate(
        self,
        messages: Sequence[Message],
        *,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Completion]:
        sampled = n == 1 and self.policy.samples > 1
        started = time.perf_counter()
        out = self.student.generate(
            messages, stop=stop, max_tokens=max_tokens, n=self.policy.samples if sampled else n, seed=seed,
            temperature=self.policy.temperature if sampled else temperature,
        )  # fmt: skip
        student_s = time.perf_counter() - started
        keys = [self.check(c.text) for c in out]
        chosen, reason = _pick(keys, self.policy.min_agreement) if sampled else _first_parsed(keys, every=n > 1)
        if reason is None:
            self._count(out, student_s)
            kept = [out[chosen]] if sampled else out
            if on_token is not None:
                on_token(kept[0].text)
            return [replace(c, model=c.model or self.student.spec) for c in kept]
        started = time.perf_counter()
        taught = self.teacher.generate(messages, stop=stop, max_tokens=max_tokens, temperature=temperature, n=n,
                                       seed=seed, on_token=on_token)  # fmt: skip
        self._count(out, student_s, taught, time.perf_counter() - started, reason)
        overruled: dict[str, object] = {"from": self.student.spec, "text": out[chosen].text, "reason": reason}
        if sampled:
            overruled["samples"] = [c.text for c in out]
        return [replace(c, model=c.model or self.teacher.spec, fallback=overruled) for c in taught]

    def stats(self) -> FallbackStats:
        """A snapshot of the counters (safe to read while other threads call generate)."""
        with self._lock:
            return self._stats

    def _count(
        self,
        student: Sequence[Completion],
        student_s: float,
        teacher: Sequence[Completion] = (),
        teacher_s: float = 0.0,
        reason: Reason | None = None,
    ) -> None:
        with self._lock:
            s = self._stats
            fallbacks = {**s.fallbacks, reason: s.fallbacks.get(reason, 0) + 1} if reason else dict(s.fallbacks)
            self._stats = FallbackStats(
                calls=s.calls + 1, student_answers=s.student_answers + (reason is None), fallbacks=fallbacks,
                student_tokens=s.student_tokens + _tokens(student), teacher_tokens=s.teacher_tokens + _tokens(teacher),
                student_s=s.student_s + student_s, teacher_s=s.teacher_s + teacher_s,
            )  # fmt: skip


def _tokens(out: Sequence[Completion]) -> int:
    """Tokens of one call: its prompt once, plus every sample's completion."""
    return (out[0].usage.prompt_tokens if out else 0) + sum(c.usage.completion_tokens for c in out)


def _first_parsed(keys: Sequence[Hashable | None], *, every: bool) -> tuple[int, Reason | None]:
    """(index, None) of the first parsed reply, or (0, "unparsable") when none parses (`every`: all samples kept)."""
    parsed = [i for i, key in enumerate(keys) if key is not None]
    return (0 if every else parsed[0], None) if parsed else (0, "unparsable")


def _pick(keys: Sequence[Hashable | None], min_agreement: float) -> tuple[int, Reason | None]:
    """(index of the majority's first sample, None), or (that index, why the teacher must answer)."""
    counts = Counter(keys)
    # the most common key; between equal counts a parsed key beats None, then the earlier sample wins
    key = max(counts, key=lambda k: (counts[k], k is not None, -keys.index(k)))
    index = keys.index(key)
    if key is None:
        return index, "unparsable"
    return index, None if counts[key] / len(keys) >= min_agreement else "disagree"


class NodeModels:
    """Which model answers which role or graph node; `default` answers every other call.

    Give it to a graph builder (or `build_agent`) as the model: `Recorder.wrap(models, role=...)` routes each
    recorded call to the model named for the node making it, else for its role, else `default`. Names in
    `roles` are only ever roles (never matched against nodes), which keeps other roles' recorded specs plain.
    Called outside a recorder, it is `default`.
    """

    def __init__(self, default: ChatModel, by_name: Mapping[str, ChatModel], *, roles: Collection[str] = ()) -> None:
        self.default = default
        self.by_name = dict(by_name)
        self.roles = frozenset(roles)
        named = ",".join(f"{name}={model.spec}" for name, model in sorted(self.by_name.items()))
        self.spec = f"{default.spec}[{named}]" if named else default.spec

    def choose(self, name: str | None) -> ChatModel:
        """The model for role or node `name` (`default` when none is named for it)."""
        return self.by_name.get(name, self.default) if name is not None else self.default

    def map(self, fn: Callable[[ChatModel], ChatModel]) -> NodeModels:
        """The same routing over `fn(model)` of each model (e.g. a streaming wrapper around every one)."""
        return NodeModels(fn(self.default), {name: fn(m) for name, m in self.by_name.items()}, roles=self.roles)

    def nodes(self, role: str) -> dict[str, ChatModel]:
        """The models named for nodes that a call of `role` may be routed to (role names and `role`'s own left out)."""
        own = self.choose(role)
        return {name: m for name, m in self.by_name.items() if name not in self.roles | {role} and m is not own}

    def generate(
        self,
        messages: Sequence[Message],
        *,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Completion]:
        return self.default.generate(messages, stop=stop, max_tokens=max_tokens, temperature=temperature, n=n,
                                     seed=seed, on_token=on_token)  # fmt: skip


class NodeRouter:
    """A ChatModel that sends each call to the model of the node making it (`node()` names it), else `default`.

    `Recorder.wrap` builds one per role of a NodeModels, over recording models. The node is read per call, on
    the node's own thread, before LangChain's streaming may move the call to another thread.
    """

    def __init__(
        self, default: ChatModel, by_node: Mapping[str, ChatModel], node: Callable[[], str | None], *, spec: str
    ) -> None:
        self.default, self.by_node, self.node, self.spec = default, dict(by_node), node, spec

    def generate(
        self,
        messages: Sequence[Message],
        *,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        temperature: float = 0.0,
        n: int = 1,
        seed: int | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Completion]:
        name = self.node()
        chosen = self.by_node.get(name, self.default) if name is not None else self.default
        return chosen.generate(messages, stop=stop, max_tokens=max_tokens, temperature=temperature, n=n, seed=seed,
                               on_token=on_token)  # fmt: skip
