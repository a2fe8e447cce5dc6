"""Logit distillation across tokenizers: a teacher with its own vocabulary (Qwen) teaches a student (SmolLM2).

The teacher scores each conversation as it would see it: rendered with its own chat template and tokenised by
its own tokenizer. Its top-k next-token log-probs at its labelled positions are cached on disk, one file per
example, so a rerun (or a grown dataset) computes only what is missing. A student label whose token starts at
the same character of the same reply as a teacher token is *aligned* (xtok_align.py); there the teacher's top-k
is projected onto the student's vocabulary and the loss is KL(teacher || student) over the projected ids plus a
tail bucket. The other labels get plain cross-entropy on the gold token (weight `ce_weight`): skipping them would
leave the tokens where the tokenisations disagree (inside numbers, odd whitespace) untrained, and they are
still the reply the student must write.

Tool observations are never scored: they are user/tool messages, which carry no label on either side.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from agentdistill.distill.chat_examples import ChatExample
from agentdistill.distill.encoding import EncodedExample, encode_example
from agentdistill.distill.kd import _bucket_kl
from agentdistill.distill.sft import labelled_logits, labelled_positions
from agentdistill.distill.teacher_topk import TeacherCacheError, _teacher_topk, example_digest, teacher_identity
from agentdistill.distill.xtok_align import VocabProjection, align_positions, example_anchors
from agentdistill.errors import AgentDistillError, ConfigError
from agentdistill.paths import atomic_write
from agentdistill.progress import Progress

XKD_VERSION = 1
XKD_INDEX = "xkd-index.json"


class SameTokenizer(AgentDistillError):
    """Cross-tokenizer KD was asked for a teacher whose tokenizer is the student's: exact KD does better."""

    def __init__(self, teacher: str | Path, student: str | Path) -> None:
        super().__init__(
            f"teacher {teacher} and student {student} share a tokenizer: use --method kd, which compares the "
            "distributions id by id instead of aligning characters (--method xkd is for teachers of another family)"
        )


@dataclass(frozen=True)
class TeacherRows:
    """The teacher's top-k at its label targets of one example, with each token's anchor."""

    ids: torch.Tensor  # [n, k] long: teacher token ids, most likely first
    logp: torch.Tensor  # [n, k] float32: their log-probs
    rest: torch.Tensor  # [n] float32: log of the mass outside the top-k
    anchors: list[tuple[int, int] | None]  # (message, char offset in its content); None: no anchor


def teacher_encoding(tokenizer: Any, example: ChatExample) -> EncodedExample:
    """The teacher's view of an example: its template, its tokenisation of the text (never recorded sampled ids,
    which carry no character offsets)."""
    return encode_example(tokenizer, dataclasses.replace(example, tokens=None))


def _file_name(example_id: str) -> str:
    return hashlib.sha256(example_id.encode()).hexdigest()[:32] + ".safetensors"  # ids may hold any character


class XTeacherCache:
    """The teacher's top-k for chat examples, one safetensors file per example under `out_dir/examples/`."""

    def __init__(self, out_dir: Path, index: dict[str, Any], *, computed: tuple[str, ...] = ()) -> None:
        self.out_dir = out_dir
        self.index = index
        self.computed = computed  # ids of the examples the call that made this object scored (build only)

    @property
    def k(self) -> int:
        return int(self.index["k"])

    @classmethod
    def build(
        cls,
        teacher_dir: str | Path,
        examples: Sequence[ChatExample],
        out_dir: str | Path,
        *,
        k: int = 20,
        batch_size: int = 4,
        device: str | None = None,
        progress: bool | None = None,
        tokenizer: Any = None,
    ) -> XTeacherCache:
        """Score every example not yet in `out_dir` with the teacher; an example whose teacher encoding changed
        is scored again (each file records the digest of the ids and labels it scored). `device` None picks cuda
        (bf16) when present, else cpu (fp32); `tokenizer` is the teacher's, when the caller has it loaded."""
        from safetensors.torch import save
        from transformers import AutoModelForCausalLM, AutoTokenizer

        teacher_dir, out_dir = Path(teacher_dir), Path(out_dir)
        if k < 1 or batch_size < 1:
            raise ConfigError("k/batch_size", (k, batch_size), "positive integers")
        if not (teacher_dir / "config.json").is_file():
            raise TeacherCacheError(f"teacher dir {teacher_dir} has no config.json: pass an HF model directory")
        index = {"version": XKD_VERSION, "k": k, "teacher": teacher_identity(teacher_dir)}
        _write_or_check_index(out_dir, index)
        tokenizer = AutoTokenizer.from_pretrained(teacher_dir) if tokenizer is None else tokenizer
        todo = []
        for example in {e.id: e for e in examples}.values():
            encoded = teacher_encoding(tokenizer, example)
            digest = example_digest(encoded.input_ids, encoded.labels)
            if _stored_digest(out_dir / "examples" / _file_name(example.id)) != digest:
                todo.append((example, encoded, digest))
        if todo:
            dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
            dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
            model = AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=dtype).to(dev).eval()
            with Progress(len(todo), desc="teacher top-k (xkd)", unit="ex", enabled=progress) as bar:
                for start in range(0, len(todo), batch_size):
                    chunk = todo[start : start + batch_size]
                    ids, logp, rest = _teacher_topk(model, [c[1] for c in chunk], k, dev)
                    row = 0
                    for example, encoded, digest in chunk:
                        anchors = example_anchors(tokenizer, example, encoded)
                        n = len(anchors)
                        flat = [a if a is not None else (-1, -1) for a in anchors]
                        tensors = {"ids": ids[row : row + n], "logp": logp[row : row + n],
                                   "rest": rest[row : row + n],
                                   "anchors": torch.tensor(flat, dtype=torch.int64).reshape(n, 2)}  # fmt: skip
                        meta = {"example_id": example.id, "sha": digest}
                        with atomic_write(out_dir / "examples" / _file_name(example.id), "wb", encoding=None) as fh:
                            fh.write(save({name: t.contiguous() for name, t in tensors.items()}, metadata=meta))
                        row += n
                    bar.update(len(chunk))
        return cls(out_dir, index, computed=tuple(c[0].id for c in todo))

    def rows(self, example_id: str) -> TeacherRows:
        from safetensors import safe_open

        path = self.out_dir / "examples" / _file_name(example_id)
        if not path.is_file():
            raise TeacherCacheError(f"example {example_id!r} is not in the xkd teacher cache {self.out_dir}: build "
                                    "it over the examples you train on (it resumes)")  # fmt: skip
        with safe_open(str(path), framework="pt") as handle:
            got = {name: handle.get_tensor(name) for name in ("ids", "logp", "rest", "anchors")}
        anchors = [None if int(m) < 0 else (int(m), int(c)) for m, c in got["anchors"].tolist()]
        return TeacherRows(got["ids"].long(), got["logp"].float(), got["rest"].float(), anchors)


def _stored_digest(path: Path) -> str | None:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            return (handle.metadata() or {}).get("sha")
    except (SafetensorError, OSError):
        return None  # unreadable: score it again


def _write_or_check_index(out_dir: Path, index: dict[str, Any]) -> None:
    path = out_dir / XKD_INDEX
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        if old != index:
            raise TeacherCacheError(f"{out_dir} holds xkd teacher scores of another teacher or k: "
                                    "delete it or pick another directory")  # fmt: skip
        return
    with atomic_write(path) as handle:
        json.dump(index, handle, indent=1, sort_keys=True)


@dataclass(frozen=True)
class XTargets:
    """What one student example is trained towards, one row per label target in the trainer's order."""

    aligned: torch.Tensor  # [n] bool: the teacher scores this position (else cross-entropy on the gold token)
    ids: torch.Tensor  # [n, k] long: student ids of the projected teacher top-k (anything on unaligned rows)
    logp: torch.Tensor  # [n, k] float32: their teacher log-probs, -inf for unused slots
    tail: torch.Tensor  # [n] float32: log of the teacher mass on every other student token


def student_targets(
    rows: TeacherRows, student_anchors: Sequence[tuple[int, int] | None], projection: VocabProjection
) -> XTargets:
    """Align one example's student labels to the teacher rows and project those rows onto the student vocab."""
    n, k = len(student_anchors), rows.ids.shape[1]
    aligned = torch.zeros(n, dtype=torch.bool)
    ids, logp, tail = torch.zeros(n, k, dtype=torch.long), torch.full((n, k), -math.inf), torch.zeros(n)
    for i, t in enumerate(align_positions(student_anchors, rows.anchors)):
        if t is None:
            continue
        projected = projection.project(rows.ids[t].tolist(), rows.logp[t].tolist(), float(rows.rest[t]))
        if projected is not None:
            aligned[i] = True
            ids[i], logp[i], tail[i] = torch.tensor(projected[0]), torch.tensor(projected[1]), projected[2]
    return XTargets(aligned, ids, logp, tail)


@dataclass(frozen=True)
class XKDLoss:
    """LossFn for the trainer: KL(projected teacher || student) on aligned labels, `ce_weight` x CE elsewhere.

    Both terms are summed per token and divided by the number of labels, so every label weighs the same
    whichever term it gets. Metrics: `kd` (mean KL over aligned labels), `ce` (mean CE over the others),
    `aligned` (their share in the batch). Holds its targets (no open files), so worker processes can receive it.
    """

    targets: Mapping[str, XTargets]  # by example id: every example the trainer will feed
    ce_weight: float = 1.0  # weight of the gold-token CE on labels the teacher cannot score

    def __post_init__(self) -> None:
        if self.ce_weight < 0:
            raise ConfigError("ce_weight", self.ce_weight, "a weight >= 0")

    @property
    def aligned_share(self) -> float:
        """The share of all training labels that the teacher scores."""
        total = sum(t.aligned.numel() for t in self.targets.values())
        return sum(int(t.aligned.sum()) for t in self.targets.values()) / total if total else 0.0

    def __call__(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        labels = batch["labels"]
        keep = labelled_positions(labels)
        parts = [self._targets(example_id) for example_id in batch["example_ids"]]
        counts = keep.sum(dim=1).tolist()
        for example_id, part, count in zip(batch["example_ids"], parts, counts, strict=True):
            if part.aligned.numel() != count:
                raise TeacherCacheError(
                    f"example {example_id!r} has {count} labels in this batch but its xkd targets have "
                    f"{part.aligned.numel()}: rebuild them from these examples"
                )
        logits, raw = labelled_logits(model, batch, keep)  # [N, V], batch row-major
        if logits.shape[0] == 0:
            return raw.sum() * 0.0, {"kd": 0.0, "ce": 0.0, "aligned": 0.0}
        dev = logits.device
        aligned = torch.cat([p.aligned for p in parts]).to(dev)
        lp = F.log_softmax(logits, dim=-1)
        gold = labels[:, 1:][keep[:, :-1]]
        ce = -lp.gather(-1, gold[:, None]).squeeze(-1)
        kl = lp.new_zeros(0)
        if aligned.any():
            ids = torch.cat([p.ids for p in parts]).to(dev)[aligned]
            teacher = torch.cat([torch.cat([p.logp for p in parts]), torch.cat([p.tail for p in parts])[:, None]], -1)
            la = lp[aligned]
            s_rest = torch.logsumexp(la.scatter(-1, ids, -math.inf), dim=-1, keepdim=True)
            student = torch.cat([la.gather(-1, ids), s_rest], dim=-1)
            kl = _bucket_kl(teacher.to(dev)[aligned], student).clamp_min(0.0)  # rounding can dip below 0
        unaligned = ce[~aligned]
        loss = (kl.sum() + self.ce_weight * unaligned.sum()) / ce.numel()
        kl, unaligned = kl.detach(), unaligned.detach()
        metrics = {"kd": float(kl.mean()) if kl.numel() else 0.0,
                   "ce": float(unaligned.mean()) if unaligned.numel() else 0.0,
                   "aligned": float(aligned.float().mean())}  # fmt: skip
        return loss, metrics

    def _targets(self, example_id: str) -> XTargets:
        if example_id not in self.targets:
            raise TeacherCacheError(f"example {example_id!r} has no xkd targets: build them over the train set")
        return self.targets[example_id]


def xkd_loss(
    teacher_dir: str | Path,
    student_dir: str | Path,
    examples: Sequence[ChatExample],
    train_set: Sequence[EncodedExample],
    cache_dir: str | Path,
    *,
    k: int = 20,
    ce_weight: float = 1.0,
    batch_size: int = 4,
    device: str | None = None,
    progress: bool | None = None,
) -> XKDLoss:
    """Score `train_set`'s examples with the teacher (cached in `cache_dir`, resumable) and build the loss.

    `examples` are the chat examples `train_set` was encoded from (by id); `student_dir` holds the tokenizer
    that encoded it. A teacher sharing that tokenizer raises SameTokenizer: use logit KD (`kd.py`) instead.
    """
    from transformers import AutoTokenizer

    student_tok, teacher_tok = AutoTokenizer.from_pretrained(student_dir), AutoTokenizer.from_pretrained(teacher_dir)
    if len(student_tok) == len(teacher_tok) and student_tok.get_vocab() == teacher_tok.get_vocab():
        raise SameTokenizer(teacher_dir, student_dir)
    by_id = {e.id: e for e in examples}
    if missing := [ex.example_id for ex in train_set if ex.example_id not in by_id]:
        raise ConfigError("examples", missing[0], "the chat example every encoded training example came from")
    chats = [by_id[ex.example_id] for ex in train_set]
    cache = XTeacherCache.build(teacher_dir, chats, cache_dir, k=k, batch_size=batch_size, device=device,
                                progress=progress, tokenizer=teacher_tok)  # fmt: skip
    projection = VocabProjection(teacher_tok, student_tok)
    targets = {}
    for encoded in train_set:
        anchors = example_anchors(student_tok, by_id[encoded.example_id], encoded)
        targets[encoded.example_id] = student_targets(cache.rows(encoded.example_id), anchors, projection)
    return XKDLoss(targets, ce_weight)


__all__ = ["SameTokenizer", "XKDLoss", "XTargets", "XTeacherCache", "student_targets", "xkd_loss"]
