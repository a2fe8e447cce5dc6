"""Tokenizer fingerprints: whether a teacher and a student map text to the same token ids.

Logit distillation compares next-token distributions id by id, so it needs both sides to tokenise alike.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentdistill.errors import AgentDistillError

_SAMPLE = (
    "<|im_start|>user\nHow many r's in 'strawberry'? 3 + 4 = 7 ✓ déjà-vu\t  x<|im_end|>\n"  # specials, unicode, spaces
)


class KDTokenizerMismatch(AgentDistillError):
    """Teacher and student tokenise differently, so their distributions cannot be compared token by token."""

    def __init__(self, teacher: str | Path, student: str | Path, why: str) -> None:
        super().__init__(
            f"teacher {teacher} and student {student} do not share a tokenizer ({why}). Logit distillation compares "
            "next-token distributions id by id: pick a teacher of the same family (e.g. Qwen2.5-Coder-1.5B for "
            "Qwen2.5-Coder-0.5B) or train with --method sft."
        )
        self.teacher, self.student = str(teacher), str(student)


@dataclass(frozen=True)
class TokenizerFingerprint:
    """What must be equal for two tokenizers to map text to the same ids."""

    size: int  # len(tokenizer): base vocabulary plus added tokens
    vocab_sha256: str  # hash of the sorted token -> id map: equal sizes with different tokens still differ
    sample: tuple[int, ...]  # ids of a fixed text with chat specials: catches normaliser / pre-tokenizer changes

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "vocab_sha256": self.vocab_sha256, "sample": list(self.sample)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TokenizerFingerprint:
        return cls(int(raw["size"]), str(raw["vocab_sha256"]), tuple(int(i) for i in raw["sample"]))

    def difference(self, other: TokenizerFingerprint) -> str | None:
        """Why the two differ, in words; None when they are the same."""
        if self.size != other.size:
            return f"vocab sizes {self.size} vs {other.size}"
        if self.vocab_sha256 != other.vocab_sha256:
            return "same vocab size but different tokens or ids"
        if self.sample != other.sample:
            return "same vocab but a sample text encodes to different ids"
        return None


def tokenizer_fingerprint(model_dir: str | Path) -> TokenizerFingerprint:
    """Fingerprint the tokenizer saved in an HF dir (loads the tokenizer only, not the weights)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    sample = tuple(tokenizer.encode(_SAMPLE, add_special_tokens=False))
    return TokenizerFingerprint(len(tokenizer), hashlib.sha256(vocab.encode()).hexdigest(), sample)


def check_same_tokenizer(teacher_dir: str | Path, student_dir: str | Path) -> None:
    """Raise KDTokenizerMismatch unless the two dirs hold the same tokenizer."""
    why = tokenizer_fingerprint(teacher_dir).difference(tokenizer_fingerprint(student_dir))
    if why is not None:
        raise KDTokenizerMismatch(teacher_dir, student_dir, why)
