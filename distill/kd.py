"""Logit distillation from a local teacher that shares the student's tokenizer: forward KL, reverse KL and TAID.

The teacher runs once. `TeacherCache.build` stores, for every labelled position of every example, the teacher's
top-k token ids and log-probs plus the log of the mass left outside them (teacher_topk.py). Each KL is then taken
over k+1 buckets (the k tokens and one "rest" bucket), which is a proper distribution, and training never loads
the teacher.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F

from agentdistill.distill.sft import labelled_logits, labelled_positions
from agentdistill.distill.teacher_topk import (
    CACHE_VERSION,
    INDEX_NAME,
    TeacherCacheError,
    example_digest,
    plan_shards,
    run_teacher,
    shard_name,
    teacher_identity,
    write_or_check_index,
)
from agentdistill.distill.tokenizer_fingerprint import KDTokenizerMismatch, TokenizerFingerprint, tokenizer_fingerprint
from agentdistill.errors import ConfigError

if TYPE_CHECKING:
    from agentdistill.distill.encoding import EncodedExample

KDKind = Literal["forward", "reverse", "taid"]
KD_KINDS: tuple[str, ...] = ("forward", "reverse", "taid")


@dataclass(frozen=True)
class TeacherTargets:
    """The teacher's top-k for a run of labelled positions, on one device."""

    ids: torch.Tensor  # [N, k] long: teacher's top-k token ids, most likely first
    logp: torch.Tensor  # [N, k] float32: their log-probs at temperature 1
    rest: torch.Tensor  # [N] float32: log of the probability mass outside the top-k


class TeacherCache:
    """Top-k teacher log-probs for every labelled position of a fixed set of encoded examples.

    Build it over every example the KD loss will see (the trainer's val loss is plain CE, so the train set is
    enough). Reads go through safetensors' memory map, one slice per example; the object holds no open handles,
    so it is cheap to send to worker processes.
    """

    def __init__(self, out_dir: Path, index: dict[str, Any], *, computed_shards: tuple[str, ...] = ()) -> None:
        self.out_dir = out_dir
        self.index = index
        self.computed_shards = computed_shards  # shard files the call that made this object computed (build only)

    @property
    def k(self) -> int:
        return int(self.index["k"])

    @property
    def tokenizer(self) -> TokenizerFingerprint:
        return TokenizerFingerprint.from_dict(self.index["tokenizer"])

    def __len__(self) -> int:
        return len(self.index["examples"])

    def __contains__(self, example_id: object) -> bool:
        return example_id in self.index["examples"]

    def missing_shards(self) -> list[str]:
        return [name for i in range(len(self.index["shards"])) if not (self.out_dir / (name := shard_name(i))).exists()]

    def check_student(self, student_dir: str | Path) -> None:
        """Raise KDTokenizerMismatch unless `student_dir` tokenises like the teacher this cache came from."""
        why = self.tokenizer.difference(tokenizer_fingerprint(student_dir))
        if why is not None:
            raise KDTokenizerMismatch(self.index["teacher"]["dir"], student_dir, why)

    @classmethod
    def open(cls, out_dir: str | Path) -> TeacherCache:
        """Open a finished cache; an unfinished one raises and says to run the build again (it resumes)."""
        out_dir = Path(out_dir)
        path = out_dir / INDEX_NAME
        if not path.is_file():
            raise TeacherCacheError(f"no teacher cache at {out_dir} ({INDEX_NAME} missing): build it first")
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise TeacherCacheError(f"{path} is not valid JSON ({exc}): delete {out_dir} and build again") from exc
        if index.get("version") != CACHE_VERSION:
            raise TeacherCacheError(
                f"{path} has cache version {index.get('version')!r}, this code reads {CACHE_VERSION}: build again"
            )
        cache = cls(out_dir, index)
        if missing := cache.missing_shards():
            raise TeacherCacheError(
                f"teacher cache {out_dir} is incomplete ({len(missing)} of {len(index['shards'])} shards missing, "
                f"first {missing[0]}): run the build again with the same examples; it computes only those"
            )
        return cache

    @classmethod
    def build(
        cls,
        teacher_dir: str | Path,
        encoded_examples: Sequence[EncodedExample],
        out_dir: str | Path,
        *,
        k: int = 20,
        batch_size: int = 4,
        device: str | None = None,
        progress: bool | None = None,
        student_dir: str | Path | None = None,
        shard_size: int = 64,
    ) -> TeacherCache:
        """Run the teacher once over `encoded_examples` and store its top-k per labelled position in `out_dir`.

        `student_dir`, when given, must hold the same tokenizer as `teacher_dir` (else KDTokenizerMismatch).
        Resumable: shards already on disk are skipped, so a second call on the same data computes nothing.
        `device` None picks cuda (bf16 weights) when present, else cpu (fp32).
        """
        teacher_dir, out_dir = Path(teacher_dir), Path(out_dir)
        if k < 1:
            raise ConfigError("k", k, "a positive number of teacher tokens to keep per position")
        if batch_size < 1 or shard_size < 1:
            raise ConfigError("batch_size/shard_size", (batch_size, shard_size), "positive integers")
        if not (teacher_dir / "config.json").is_file():
            raise TeacherCacheError(f"teacher dir {teacher_dir} has no config.json: pass an HF model directory")
        fingerprint = tokenizer_fingerprint(teacher_dir)
        if student_dir is not None:
            why = fingerprint.difference(tokenizer_fingerprint(student_dir))
            if why is not None:
                raise KDTokenizerMismatch(teacher_dir, student_dir, why)
        top_id = max((max(ex.input_ids, default=0) for ex in encoded_examples), default=0)
        if top_id >= fingerprint.size:
            raise KDTokenizerMismatch(teacher_dir, "the encoded examples", f"token id {top_id} >= {fingerprint.size}")
        shards, entries = plan_shards(encoded_examples, shard_size)
        index = {
            "version": CACHE_VERSION,
            "k": k,
            "teacher": teacher_identity(teacher_dir),
            "tokenizer": fingerprint.to_dict(),
            "shards": shards,
            "examples": entries,
        }
        write_or_check_index(out_dir, index)
        todo = [i for i in range(len(shards)) if not (out_dir / shard_name(i)).exists()]
        if todo:
            by_id = {ex.example_id: ex for ex in encoded_examples}
            run_teacher(teacher_dir, [[by_id[i] for i in shards[s]] for s in todo], todo, out_dir, k=k,
                         batch_size=batch_size, device=device, progress=progress)  # fmt: skip
        return cls(out_dir, index, computed_shards=tuple(shard_name(i) for i in todo))

    def targets(self, example_ids: Sequence[str], device: torch.device | str = "cpu") -> TeacherTargets:
        """Rows for these examples, concatenated in the given order (the order kd_loss flattens a batch in)."""
        from safetensors import safe_open

        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for example_id in example_ids:
            entry = self._entry(example_id)
            path = self.out_dir / shard_name(entry["shard"])
            if not path.exists():
                raise TeacherCacheError(f"{path} is missing: run the teacher cache build again (it resumes)")
            lo, hi = entry["row"], entry["row"] + entry["n"]
            with safe_open(str(path), framework="pt") as handle:
                parts.append(tuple(handle.get_slice(name)[lo:hi] for name in ("ids", "logp", "rest")))  # type: ignore[arg-type]
        k = self.k
        ids = torch.cat([p[0] for p in parts]) if parts else torch.empty(0, k, dtype=torch.int32)
        logp = torch.cat([p[1] for p in parts]) if parts else torch.empty(0, k)
        rest = torch.cat([p[2] for p in parts]) if parts else torch.empty(0)
        return TeacherTargets(ids.to(device, torch.long), logp.to(device), rest.to(device))

    def _entry(self, example_id: str) -> dict[str, Any]:
        entry = self.index["examples"].get(example_id)
        if entry is None:
            raise TeacherCacheError(
                f"example {example_id!r} is not in the teacher cache {self.out_dir}: build the cache over the "
                "same encoded examples the KD loss trains on (same student tokenizer and max_len)"
            )
        return entry


def _bucket_kl(logp_a: torch.Tensor, logp_b: torch.Tensor) -> torch.Tensor:
    """KL(a || b) per row over the last dim, with 0 * log 0 = 0 (an empty rest bucket adds nothing)."""
    p_a = logp_a.exp()
    return torch.where(p_a > 0, p_a * (logp_a - logp_b), torch.zeros_like(p_a)).sum(-1)


@dataclass(frozen=True)
class KDLoss:
    """LossFn for the trainer: KL between the student and the cached teacher over top-k + rest buckets.

    A class rather than a closure so worker processes (DDP) can receive it.
    """

    cache: TeacherCache  # the teacher's top-k for every example the trainer will feed
    kind: KDKind = "forward"  # forward = KL(teacher || student), mass-covering; reverse = KL(student || teacher)
    taid_start: float = 0.2  # TAID's interpolation weight on the teacher at progress 0
    taid_end: float = 1.0  # ... and at progress 1; linear in between
    ce_weight: float = 0.0  # adds this times the student's CE on the labels (0 = pure distillation)
    temperature: float = 1.0  # softens both k+1-bucket distributions; the KL is scaled by T^2 (gradient size)

    def __post_init__(self) -> None:
        if self.kind not in KD_KINDS:
            raise ConfigError("kind", self.kind, f"one of {', '.join(KD_KINDS)}")
        if not 0.0 <= self.taid_start <= self.taid_end <= 1.0:
            raise ConfigError("taid_start/taid_end", (self.taid_start, self.taid_end), "0 <= start <= end <= 1")
        if self.ce_weight < 0:
            raise ConfigError("ce_weight", self.ce_weight, "a weight >= 0")
        if not self.temperature > 0:
            raise ConfigError("temperature", self.temperature, "a temperature > 0")

    def taid_t(self, progress: float) -> float:
        """Linear schedule: the teacher's weight in the TAID target at this fraction of training."""
        return self.taid_start + (self.taid_end - self.taid_start) * min(max(progress, 0.0), 1.0)

    def __call__(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        labels = batch["labels"]
        keep = labelled_positions(labels)
        _check_batch(self.cache, batch, keep)
        logits, raw = labelled_logits(model, batch, keep)  # [N, V], batch row-major
        target = self.cache.targets(batch["example_ids"], logits.device)
        if target.ids.numel() and int(target.ids.max()) >= logits.shape[-1]:
            why = f"teacher token id {int(target.ids.max())} >= student vocab {logits.shape[-1]}"
            raise KDTokenizerMismatch(self.cache.index["teacher"]["dir"], "the student model", why)
        if logits.shape[0] == 0:
            zero = raw.sum() * 0.0  # keeps the graph: the trainer can still call backward
            return zero, {"kl": 0.0, "ce": 0.0, "t": 1.0}
        temp = self.temperature
        lp_student = F.log_softmax(logits, dim=-1)
        # Student over the buckets: its own log-probs of the teacher's top-k, and all the rest of its mass.
        s_top = lp_student.gather(-1, target.ids)
        s_rest = torch.logsumexp(lp_student.scatter(-1, target.ids, -math.inf), dim=-1, keepdim=True)
        student = torch.cat([s_top, s_rest], dim=-1)
        teacher = torch.cat([target.logp, target.rest[:, None]], dim=-1)
        if temp != 1.0:  # tempered over the buckets on both sides: the rest bucket's members are not cached
            student, teacher = F.log_softmax(student / temp, dim=-1), F.log_softmax(teacher / temp, dim=-1)
        t = 1.0
        if self.kind == "forward":
            kl = _bucket_kl(teacher, student)
        elif self.kind == "reverse":
            kl = _bucket_kl(student, teacher)
        else:
            t = self.taid_t(float(batch.get("progress", 1.0)))  # no progress (e.g. eval): aim at the final target
            # Mixed in log space (a geometric mixture, as the paper mixes logits): a mixture of probabilities
            # with a detached student has exactly t times the forward-KL gradient, i.e. no TAID at all.
            mixed = F.log_softmax((1.0 - t) * student.detach() + t * teacher, dim=-1)
            kl = _bucket_kl(mixed, student)
        # Rounding makes a KL of identical distributions come out at -1e-6 or so; a divergence is never negative.
        kl = kl.clamp_min(0.0).mean() * temp**2
        ce = -lp_student.gather(-1, labels[:, 1:][keep[:, :-1]][:, None]).mean()
        loss = kl + self.ce_weight * ce if self.ce_weight else kl
        return loss, {"kl": float(kl.detach()), "ce": float(ce.detach()), "t": t}


def _check_batch(cache: TeacherCache, batch: dict[str, Any], keep: torch.Tensor) -> None:
    """Each example must be the encoding the cache was built from, or rows would pair with the wrong positions."""
    lengths = batch["attention_mask"].sum(dim=1).tolist()  # collate pads on the right
    counts = keep.sum(dim=1).tolist()
    for b, example_id in enumerate(batch["example_ids"]):
        entry = cache._entry(example_id)
        n = int(lengths[b])
        digest = example_digest(batch["input_ids"][b, :n].tolist(), batch["labels"][b, :n].tolist())
        if digest != entry["sha"] or counts[b] != entry["n"]:
            raise TeacherCacheError(
                f"example {example_id!r} is encoded differently from when the teacher cache {cache.out_dir} was "
                "built (other tokenizer, chat template or max_len): rebuild the cache from these encoded examples"
            )


def kd_loss(
    cache: TeacherCache,
    kind: KDKind = "forward",
    taid_start: float = 0.2,
    taid_end: float = 1.0,
    ce_weight: float = 0.0,
    temperature: float = 1.0,
) -> KDLoss:
    """A trainer LossFn distilling the cached teacher: `loss, {"kl", "ce", "t"} = fn(model, batch)`.

    forward: KL(teacher || student); reverse: KL(student || teacher); taid (Shing et al. 2025, "TAID: Temporally
    Adaptive Interpolated Distillation"): KL(p_t || student) with the intermediate target
    p_t = softmax((1-t) * stopgrad(log p_student) + t * log p_teacher) over the k+1 buckets. That is the paper's
    logit interpolation; mixing probabilities instead, (1-t) stopgrad(p_student) + t p_teacher, has gradient
    -sum_b p_t,b grad log p_student,b = t * grad KL(teacher || student) (the student term sums to grad 1 = 0), so
    it would only be a down-scaled forward KL. The paper adapts t; we use a linear schedule,
    t = taid_start + (taid_end - taid_start) * batch["progress"]. All are means over labelled tokens. Metric
    `t` is the teacher's weight in the target (1.0 for forward and reverse); `ce` is the student's label CE.
    """
    return KDLoss(cache, kind, taid_start, taid_end, ce_weight, temperature)
