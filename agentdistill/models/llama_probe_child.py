"""The llama.cpp probe's child: load one GGUF, decode a few greedy tokens, print one JSON line.

Run as a script by `llama_probe` (never imported by agentdistill): if this llama.cpp build cannot run on
this CPU, it is this process that dies, not the caller. It imports nothing from agentdistill, so a broken
install of ours cannot be mistaken for a broken llama.cpp.

    python -X faulthandler llama_probe_child.py MODEL.gguf --prompt TEXT --tokens 8 --threads N
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # a probe decodes a few tokens: it need not spin
    started = time.perf_counter()
    try:
        import llama_cpp
    except Exception as exc:  # ImportError; OSError or RuntimeError when libllama.so is there but does not load
        return _fail("import", f"llama_cpp does not import: {type(exc).__name__}: {exc}")
    try:
        llama = llama_cpp.Llama(
            model_path=args.model,
            n_ctx=256,
            n_threads=args.threads,
            n_threads_batch=args.threads,
            n_gpu_layers=0,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        return _fail("load", str(exc))
    prompt = llama.tokenize(args.prompt.encode("utf-8"), add_bos=True, special=False)
    pieces: list[int] = []
    # The prompt goes in as one batch (the matrix-matrix kernels), then one token at a time (matrix-vector).
    for token in llama.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0):
        if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token) or len(pieces) >= args.tokens:
            break
        pieces.append(token)
    text = llama.detokenize(pieces).decode("utf-8", errors="replace")
    print(
        json.dumps(
            {
                "ok": True,
                "text": text,
                "tokens": len(pieces),
                "prompt_tokens": len(prompt),
                "seconds": round(time.perf_counter() - started, 3),
                "llama_cpp_python": getattr(llama_cpp, "__version__", "?"),
                "system_info": llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip(),
            }
        ),
        flush=True,
    )
    return 0


def _fail(kind: str, message: str) -> int:
    print(json.dumps({"ok": False, "kind": kind, "error": message}), flush=True)
    return 3


if __name__ == "__main__":
    sys.exit(main())
