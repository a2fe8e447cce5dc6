"""`distill run`: teacher trajectories on a train slice -> filtered dataset -> trained student -> side-by-side eval.

Every stage writes into one output dir and is skipped or resumed when its output is already there, so a
killed `distill run` continues where it stopped:

    OUT/collect/          bench run of the teacher on the train items (suite tag `<suite>:train`)
    OUT/collect-N/        with --attempts: the teacher's sampled attempts N = 2.. at the same items
    OUT/data/             train/val(/negatives).jsonl + info.json (distill/data.py)
    OUT/train/            checkpoints, metrics, loss plot, final adapter (distill/trainer.py)
    OUT/student/          adapter/ + merged/ (distill/student.py)
    OUT/eval/{teacher,base-student,student}/   bench runs on the held-out eval items, same graph
    OUT/report/           `bench compare` of the three eval runs

Train and eval items never overlap: a suite with a train partner (gsm8k -> gsm8k-train) trains on the
partner; otherwise the first `eval_limit` items are held out and the next `train_limit` are the train slice.

Recommendation suites (`rec-netflix`, `rec-requests`) distill recbot: each item is a whole session with a
simulated user, built exactly as `bench run` builds it (benchmarks/suites/rec_setup.py), and every turn's run
carries the session's score, so the turns of sessions that found the target become parser, planner and
responder examples. `rec-netflix` sessions are generated: as many are sampled as both slices need, with the
suite's seed, so the eval slice is the suite's own first sessions and no target is in both slices.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agentdistill.agents.factory import metric_options, prompt_hash
from agentdistill.benchmarks.items import Item, items_digest
from agentdistill.benchmarks.report import compare_runs
from agentdistill.benchmarks.results import RunDir, RunSpec
from agentdistill.benchmarks.runner import RunnerConfig, RunSummary, summarize
from agentdistill.benchmarks.suite_run import SuiteAgent, run_suite
from agentdistill.benchmarks.suites.kb_cache import suite_kb
from agentdistill.benchmarks.suites.materials_setup import suite_materials
from agentdistill.benchmarks.suites.rec_setup import suite_catalog
from agentdistill.benchmarks.suites.registry import get_suite
from agentdistill.config import Settings
from agentdistill.distill.curate import CurateConfig
from agentdistill.distill.data import SelectConfig, build_dataset, encode_examples, load_examples
from agentdistill.distill.trainer import TrainResult, train
from agentdistill.distill.workflow.plan import DistillPlan, check_dataset, split_items
from agentdistill.memory.knowledge import KnowledgeStore
from agentdistill.memory.trajectories import TrajectoryStore
from agentdistill.models import make_chat_model
from agentdistill.models.base import ChatModel
from agentdistill.models.engine_model import open_model
from agentdistill.models.sampling import SampledModel
from agentdistill.models.weights import base_weights
from agentdistill.paths import cache_dir

Say = Callable[[str], None]


class Pipeline:
    """Runs the stages of a DistillPlan into `out`; each stage is a method usable alone (`distill collect/eval`)."""

    def __init__(self, plan: DistillPlan, settings: Settings, out: Path, *, say: Say = print) -> None:
        self.plan, self.settings, self.out, self.say = plan, settings, Path(out), say
        self.suite = get_suite(plan.suite)
        self.device = settings.torch_device
        self.catalog = suite_catalog(self.suite, settings.home, plan.embedder, self.device)
        self.materials = suite_materials(self.suite, settings.data_dir, settings.home, plan.embedder, self.device)
        self.train_items, self.eval_items = split_items(
            self.suite, settings.data_dir, plan.train_limit, plan.eval_limit, catalog=self.catalog
        )
        self.prompt_hash = prompt_hash(plan.agent, metric_options(plan.agent, self.suite.metric, plan.options))

    # stages ------------------------------------------------------------------------------------------

    def collect(self) -> RunSummary:
        """The teacher answers the train items (plays the train sessions); its scored trajectories are the data.

        With `attempts` > 1 it answers them again, sampled (OUT/collect-2, ...); the summary is the greedy one's.
        """
        tag = f"{self.suite.name}:train"
        first = self._bench("collect", self.plan.teacher, self.train_items, tag=tag)
        for attempt in range(2, self.plan.attempts + 1):
            self.say(
                f"      attempt {attempt} of {self.plan.attempts} (sampled at T={self.plan.attempt_temperature:g})"
            )
            self._bench(f"collect-{attempt}", self.plan.teacher, self.train_items, tag=tag, attempt=attempt)
        return first

    def dataset(self) -> dict[str, Any]:
        info = self.out / "data" / "info.json"
        if not info.exists():
            with TrajectoryStore.open(self.settings.trajectories_path) as store:
                # every model role of the agent (recbot: parser, planner, responder) becomes examples; runs
                # recorded with other prompts (an earlier collection before a prompt change) are left out
                plan = self.plan
                select = SelectConfig(agent=plan.agent, model=plan.teacher, suite=f"{self.suite.name}:train",
                                      drop_parse_errors=not plan.keep_parse_errors, prompt_hash=self.prompt_hash,
                                      roles=tuple(plan.roles), min_score=plan.min_score,
                                      min_metrics=dict(plan.min_metrics), token_exact=plan.token_exact,
                                      student_tokenizer=self._student_tokenizer() if plan.token_exact else None,
                                      curate=CurateConfig(plan.choose, plan.per_question,
                                                          tuple(plan.difficulty)))  # fmt: skip
                build_dataset(store, select, self.out / "data", negatives=self.plan.method == "redi")
        data = json.loads(info.read_text(encoding="utf-8"))
        check_dataset(data, teacher=self.plan.teacher, prompt_hash=self.prompt_hash, path=info)
        return data

    def train_student(self) -> Path:
        """Train, then save adapter + merged dir; returns the merged student dir."""
        from agentdistill.distill.student import save_student

        merged = self.out / "student" / "merged"
        if merged.is_dir():
            return merged
        result = self._train()
        if not self.plan.train.lora:  # a full fine-tune is a whole model already: it is the student, as it is
            staging = merged.parent / ".merged.copying"
            merged.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(result.final_dir, staging)
            os.replace(staging, merged)
            return merged
        save_student(result.final_dir, base_weights(self.plan.student, cache_dir()), self.out / "student")
        return merged

    def evaluate(self, student_dir: Path | None = None, *, extra: Sequence[tuple[str, Path]] = ()) -> Path:
        """Teacher, base student and trained student on the same held-out items with the same graph.

        `extra` adds (label, merged dir) students after the trained one, e.g. a full fine-tune's LoRA extraction.
        """
        runs = [("teacher", self.plan.teacher), ("base-student", self.plan.student)]
        if student_dir is not None:
            runs.append(("student", self._student_spec(student_dir)))
        runs.extend((label, self._student_spec(merged)) for label, merged in extra)
        dirs = []
        for label, spec in runs:
            self._bench(f"eval/{label}", spec, self.eval_items, tag=self.suite.name, label=f"{label} ({spec})")
            dirs.append(self.out / "eval" / label)
        return compare_runs(dirs, self.out / "report")

    def run(self) -> Path:
        self.say(f"[1/5] teacher {self.plan.teacher} on {len(self.train_items)} train items")
        self.collect()
        self.say("[2/5] dataset from the teacher's correct trajectories")
        info = self.dataset()
        self.say(f"      {info.get('train')} train / {info.get('val')} val examples from {info.get('runs')} runs")
        self.say(
            f"[3/5] training {self.plan.student} ({self.plan.method}, {'LoRA' if self.plan.train.lora else 'full'})"
        )
        student = self.train_student()
        self.say(f"[4/5] eval on {len(self.eval_items)} held-out items: teacher, base student, trained student")
        report = self.evaluate(student)
        self.say(f"[5/5] report: {report}")
        return report

    # helpers -----------------------------------------------------------------------------------------

    def _student_spec(self, merged: Path) -> str:
        from agentdistill.models.gguf_backend import gguf_unavailable_reason

        runtime = self.plan.student_runtime
        if runtime == "auto":
            runtime = "transformers" if gguf_unavailable_reason() else "gguf"
        if runtime == "transformers":
            return f"student:{merged}"
        from agentdistill.distill.export_gguf import export_gguf

        path = merged.parent / "student-f16.gguf"
        if not path.exists():  # f16: llama.cpp then gives the merged model's own greedy tokens
            export_gguf(merged, path, quant="f16")
        return f"gguf:{path}"

    def _train(self) -> TrainResult:
        import torch
        from transformers import AutoTokenizer

        if self.settings.threads:  # on a shared CPU, fewer torch threads train several times faster
            torch.set_num_threads(self.settings.threads)
        base = base_weights(self.plan.student, cache_dir())
        tokenizer = AutoTokenizer.from_pretrained(base)
        cap = self.plan.train.max_len
        data = self.out / "data"
        train_set, cut = encode_examples(tokenizer, load_examples(data / "train.jsonl"), cap)
        val_set, _ = encode_examples(tokenizer, load_examples(data / "val.jsonl"), cap)
        if cut:
            self.say(f"      {cut} training examples longer than {cap} tokens were left out")
        if exact := sum(e.token_exact for e in train_set):
            self.say(f"      {exact} of {len(train_set)} training examples train the teacher's own token ids")
        if self.plan.method == "sft":
            return train(base, train_set, val_set, self.plan.train, self.out / "train")
        if self.plan.method == "kd":
            from agentdistill.distill.kd import TeacherCache, kd_loss
            from agentdistill.distill.tokenizer_fingerprint import check_same_tokenizer

            teacher_dir = base_weights(self.plan.kd_teacher or "", cache_dir())
            check_same_tokenizer(teacher_dir, base)
            cache = TeacherCache.build(teacher_dir, train_set, self.out / "teacher-logits", student_dir=base)
            loss = kd_loss(cache, self.plan.kd_kind)
            return train(base, train_set, val_set, self.plan.train, self.out / "train", loss_fn=loss)
        from agentdistill.distill.redi import redi_loss

        stage1 = train(base, train_set, val_set, self.plan.train, self.out / "train-sft")
        negatives, _ = encode_examples(tokenizer, load_examples(data / "negatives.jsonl"), cap)
        mixed = [*train_set, *negatives]
        return train(base, mixed, val_set, self.plan.train, self.out / "train", loss_fn=redi_loss(),
                     init_adapter=stage1.final_dir)  # fmt: skip

    def _bench(
        self, name: str, model_spec: str, items: Sequence[Item], *, tag: str, label: str | None = None,
        attempt: int = 1,
    ) -> RunSummary:  # fmt: skip
        path = self.out / name
        spec = RunSpec(suite=tag, agent=self.plan.agent, model=model_spec, item_ids=tuple(i.id for i in items),
                       max_steps=self.plan.max_steps, options=dict(self.plan.options), embedder=self.plan.embedder,
                       label=label, items_sha256=items_digest(items))  # fmt: skip
        if (path / "run.json").exists():
            run_dir = RunDir.open(path, repair=True)
            run_dir.extend_items(spec.item_ids, spec.items_sha256)  # a grown --train-limit adds items
            if not run_dir.pending_ids():
                return summarize(run_dir.results())
        else:
            run_dir = RunDir.create(path, spec)
        with open_model(model_spec, self.settings.model_options(), concurrency=self.plan.concurrency,
                        engine=self.plan.engine, home=self.settings.home, say=self.say,
                        slots=self.plan.engine_slots) as model:  # fmt: skip
            in_flight = self.plan.concurrency if _batches(model) else 1
            if attempt > 1:
                model = SampledModel(model, temperature=self.plan.attempt_temperature, seed=attempt)
            return self._bench_with(model, run_dir, model_spec, items, in_flight)

    def _bench_with(
        self, model: ChatModel, run_dir: RunDir, model_spec: str, items: Sequence[Item], in_flight: int
    ) -> RunSummary:
        plan = self.plan
        kb = self._kb() if self.suite.episode is None else None
        setup = SuiteAgent(self.suite, plan.agent, plan.options, max_steps=plan.max_steps, kb=kb, catalog=self.catalog,
                           materials=self.materials)  # fmt: skip
        config = RunnerConfig(concurrency=in_flight, item_timeout_s=plan.item_timeout_s,
                              run_meta={"prompt_hash": self.prompt_hash})  # fmt: skip
        with TrajectoryStore.open(self.settings.trajectories_path) as store:
            return run_suite(run_dir, items, setup, model, store, config, model_spec=model_spec,
                             user_model=self._user_model, prices=self.settings.prices)  # fmt: skip

    def _student_tokenizer(self) -> str:
        """The student's tokenizer id: teacher calls recorded with the same one become token-exact examples."""
        from transformers import AutoTokenizer

        from agentdistill.distill.encoding import student_tokenizer_id

        return student_tokenizer_id(AutoTokenizer.from_pretrained(base_weights(self.plan.student, cache_dir())))

    def _model(self, spec: str) -> ChatModel:
        return make_chat_model(spec, self.settings.model_options())

    def _user_model(self, spec: str | None) -> ChatModel:
        """An LLM user is the teacher unless `user_model` says otherwise: the same user for all three evals."""
        return self._model(spec or self.plan.teacher)

    def _kb(self) -> KnowledgeStore | None:
        # Train and eval runs search the same KB, pooled over both slices, as one suite's KB would be.
        pooled = [*self.train_items, *self.eval_items]
        return suite_kb(self.suite, pooled, self.settings.kb_root, embedder=self.plan.embedder, device=self.device)


def _batches(model: ChatModel) -> bool:
    """Whether items in flight at once run faster: for a server (an engine, any `openai:` endpoint), not for an
    in-process model (one lock, one stream: items would only queue and every item's latency would look N
    times longer) nor a scripted one (its replies come in call order)."""
    from agentdistill.models.engine_model import EngineChatModel

    return isinstance(model, EngineChatModel) or model.spec.startswith("openai:")
