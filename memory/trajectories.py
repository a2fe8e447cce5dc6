"""TrajectoryStore: every run and step in one SQLite file (WAL), appended as they happen.

Each step is committed as it lands, so a killed process leaves every earlier step and every finished
run readable. Runs are append-only: a run row changes only to record how it finished and its score;
steps are never rewritten except to attach the parse result to the latest model step.
Schema changes go through numbered migration functions recorded in `PRAGMA user_version`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentdistill.errors import InputDataError, StoreError
from agentdistill.jsonl import text_lines
from agentdistill.memory.trajectory_page import STEP_TOTALS_SQL, PageQuery, RunPage, assemble_page, step_totals_args
from agentdistill.paths import atomic_write
from agentdistill.trajectory import SCHEMA_VERSION, Run, RunStatus, Step, StepError


def _m001_initial(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE runs (
            id TEXT PRIMARY KEY, agent TEXT NOT NULL, question TEXT NOT NULL, models TEXT NOT NULL,
            status TEXT NOT NULL, answer TEXT, error TEXT, score REAL, metrics TEXT NOT NULL,
            suite TEXT, item_id TEXT, meta TEXT NOT NULL, created_at REAL NOT NULL, finished_at REAL,
            schema_version INTEGER NOT NULL
        );
        CREATE TABLE steps (
            run_id TEXT NOT NULL REFERENCES runs(id), idx INTEGER NOT NULL, kind TEXT NOT NULL,
            body TEXT NOT NULL, PRIMARY KEY (run_id, idx)
        );
        CREATE INDEX runs_by_agent ON runs(agent, status);
        CREATE INDEX runs_by_suite ON runs(suite, item_id);
        """,
    )


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Run statements one by one: `executescript` would commit the migration's transaction half-way."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


# page()'s order: newest first, over all runs or one agent's or one suite's (not a migration: IF NOT EXISTS)
_PAGE_INDEXES = {"runs_by_created": "created_at", "runs_by_agent_created": "agent, created_at",
                 "runs_by_suite_created": "suite, created_at"}  # fmt: skip

# Position i holds the migration that brings user_version from i to i + 1. Append only.
MIGRATIONS: Sequence[Callable[[sqlite3.Connection], None]] = (_m001_initial,)
assert len(MIGRATIONS) == SCHEMA_VERSION


class TrajectoryStore:
    """SQLite store of runs; thread-safe (one connection behind a lock). Open with `TrajectoryStore.open`."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path) -> TrajectoryStore:
        """Open (creating or migrating) the store at `path`; a corrupt or newer file raises StoreError."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a process kill
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"trajectory store {path} has schema version {version}, newer than this agentdistill "
                    f"understands ({SCHEMA_VERSION}): upgrade agentdistill."
                )
            for number in range(version, SCHEMA_VERSION):
                db.execute("BEGIN IMMEDIATE")
                MIGRATIONS[number](db)
                db.execute(f"PRAGMA user_version = {number + 1}")
                db.execute("COMMIT")
            db.execute("SELECT count(*) FROM runs").fetchone()
            # which process runs each unfinished run; a side table, so older readers of the file ignore it
            db.execute("CREATE TABLE IF NOT EXISTS run_owners (run_id TEXT PRIMARY KEY, host TEXT, boot TEXT, pid INT)")
            for name, columns in _PAGE_INDEXES.items():
                db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON runs({columns})")
            _abandon_dead_owners(db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"trajectory store {path} is not a readable SQLite database ({exc}): move it aside and a new one "
                "is created, or restore it from a JSONL export with `agentdistill trajectories import`."
            ) from exc
        return cls(db, path)

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        """The connection lock; SQLite finding a damaged page mid-query becomes a StoreError naming the file."""
        with self._lock:
            try:
                yield
            except sqlite3.DatabaseError as exc:
                if type(exc) is not sqlite3.DatabaseError:  # IntegrityError, OperationalError...: not damage
                    raise
                raise StoreError(
                    f"trajectory store {self.path} is damaged ({exc}): export what is readable with `sqlite3"
                    f" {self.path} .recover`, or move it aside and import a JSONL export with `agentdistill"
                    " trajectories import`."
                ) from None

    def close(self) -> None:
        with self._lock:  # close only: a damaged file must still close
            self._db.close()

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------------------------------------
    def _write(self, sql: str, args: Sequence[Any]) -> int:
        with self._guarded():
            return self._db.execute(sql, args).rowcount

    def start_run(self, run: Run) -> None:
        self._write("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", _run_row(run))
        if run.status == "running":
            self._write("INSERT OR REPLACE INTO run_owners VALUES (?,?,?,?)", (run.id, *_HOST_BOOT, os.getpid()))

    def append_step(self, step: Step) -> None:
        body = step.to_dict()
        self._write(
            "INSERT INTO steps VALUES (?,?,?,?)", (step.run_id, step.index, step.kind, json.dumps(body, default=str))
        )

    def annotate_last_model_step(
        self, run_id: str, *, parsed: Mapping[str, Any] | None, error: StepError | None
    ) -> None:
        with self._guarded():
            row = self._db.execute(
                "SELECT idx, body FROM steps WHERE run_id=? AND kind='model' ORDER BY idx DESC LIMIT 1", (run_id,)
            ).fetchone()
            if row is None:
                return
            body = json.loads(row[1])
            body["parsed"] = dict(parsed) if parsed is not None else None
            if error is not None:
                body["error"] = error.as_dict()
            self._db.execute("UPDATE steps SET body=? WHERE run_id=? AND idx=?", (json.dumps(body), run_id, row[0]))

    def finish_run(self, run_id: str, *, status: RunStatus, answer: str | None, error: StepError | None = None) -> None:
        self._write(
            "UPDATE runs SET status=?, answer=?, error=?, finished_at=? WHERE id=?",
            (status, answer, _dump_error(error), time.time(), run_id),
        )
        self._write("DELETE FROM run_owners WHERE run_id=?", (run_id,))

    def set_score(
        self, run_id: str, score: float | None, metrics: Mapping[str, Any], *, suite: str | None = None,
        item_id: str | None = None,
    ) -> None:  # fmt: skip
        """Attach a benchmark score (and the suite/item it belongs to) to a finished run."""
        changed = self._write(
            "UPDATE runs SET score=?, metrics=?, suite=coalesce(?, suite), item_id=coalesce(?, item_id) WHERE id=?",
            (score, json.dumps(dict(metrics)), suite, item_id, run_id),
        )
        if not changed:
            raise StoreError(f"no run {run_id!r} in {self.path}: `agentdistill trajectories list` shows the ids.")

    # -- reads ------------------------------------------------------------------------------------------------
    def unscored(self, run_ids: Sequence[str]) -> list[str]:
        """Those of `run_ids` that are in the store without a score."""
        if not run_ids:
            return []
        with self._guarded():
            sql = "SELECT id FROM runs WHERE score IS NULL AND id IN (SELECT value FROM json_each(?))"
            rows = self._db.execute(sql, (json.dumps(list(run_ids)),)).fetchall()
        return [row[0] for row in rows]

    def get(self, run_id: str) -> Run:
        """The run with all its steps; a unique id prefix is accepted (as `trajectories show` prints them)."""
        with self._guarded():
            rows = (
                self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchall()
                or self._db.execute("SELECT * FROM runs WHERE id LIKE ? LIMIT 2", (run_id + "%",)).fetchall()
            )  # a whole id is that run, even when it also starts other runs' ids
        if len(rows) != 1:
            problem = "no run" if not rows else "more than one run"
            raise StoreError(
                f"{problem} matches id {run_id!r} in {self.path}: `agentdistill trajectories list` shows ids."
            )
        return self._with_steps(_run_from_row(rows[0]))

    def _with_steps(self, run: Run) -> Run:
        with self._guarded():
            rows = self._db.execute("SELECT body FROM steps WHERE run_id=? ORDER BY idx", (run.id,)).fetchall()
        run.steps = [Step.from_dict(json.loads(r[0])) for r in rows]
        return run

    def runs(
        self,
        *,
        agent: str | None = None,
        status: str | Sequence[str] | None = None,
        min_score: float | None = None,
        suite: str | None = None,
        model: str | None = None,
        limit: int | None = None,
        with_steps: bool = True,
    ) -> list[Run]:
        """Runs matching every given filter, oldest first. `model` matches any role's spec."""
        where, args = _filters(agent=agent, status=status, min_score=min_score, suite=suite, model=model)
        sql = f"SELECT * FROM runs {where} ORDER BY created_at, rowid" + (f" LIMIT {int(limit)}" if limit else "")
        with self._guarded():
            rows = self._db.execute(sql, args).fetchall()
        found = [_run_from_row(r) for r in rows]
        return [self._with_steps(r) for r in found] if with_steps else found

    def count(self, **filters: Any) -> int:
        where, args = _filters(**filters)
        with self._guarded():
            return int(self._db.execute(f"SELECT count(*) FROM runs {where}", args).fetchone()[0])

    def page(self, query: PageQuery) -> RunPage:
        """One page of matching runs, newest first, without steps (trajectory_page.py): filters, order and limit
        run in SQL, so a page of a 100k-run store costs about what a page of a small one does."""
        where, args = _filters(**query.store_filters())
        with self._guarded():
            found = [(_run_from_row(r[:-1]), r[-1]) for r in self._db.execute(*query.page_sql(where, args))]
            count = self._db.execute(*query.count_sql(where, args)).fetchone()[0]
            runs = [run for run, _ in found]
            totals = {r[0]: (r[1], int(r[2] or 0)) for r in self._db.execute(STEP_TOTALS_SQL, step_totals_args(runs))}
        return assemble_page(query, found, totals, count)

    def iter_runs(self, **filters: Any) -> Iterator[Run]:
        for run in self.runs(with_steps=False, **filters):
            yield self._with_steps(run)

    # -- JSONL ---------------------------------------------------------------------------------------------------
    def export_jsonl(self, path: str | Path, **filters: Any) -> int:
        """Write matching runs (with steps) one per line, atomically. Returns the number written."""
        count = 0
        with atomic_write(path) as out:
            for run in self.iter_runs(**filters):
                out.write(json.dumps(run.to_dict(), default=str) + "\n")
                count += 1
        return count

    def import_jsonl(self, path: str | Path) -> tuple[int, int]:
        """Add runs from a JSONL export; runs already present (same id) are skipped. Returns (added, skipped).

        Every line is validated before anything is written, so a bad file adds nothing.
        """
        parsed: list[Run] = []
        for number, line in text_lines(path):
            if not line.strip():
                continue
            try:
                run = Run.from_dict(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputDataError(path, number, f"not valid JSON ({exc.msg})") from exc
            except RecursionError:
                raise InputDataError(path, number, "JSON nested too deeply") from None
            except (TypeError, AttributeError, ValueError) as exc:
                raise InputDataError(path, number, f"not a run record: {exc}") from exc
            _check_imported(run, path, number)
            parsed.append(run)
        return self.add_runs(parsed)

    def add_runs(self, runs: Iterable[Run]) -> tuple[int, int]:
        """Add whole runs (with their steps) in one transaction; runs already present (same id) are skipped.
        Returns (added, skipped). One commit for all: bulk loads (imports, test fills) are not one fsync per step."""
        added = skipped = 0
        with self._guarded():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for run in runs:
                    if self._db.execute("SELECT 1 FROM runs WHERE id=?", (run.id,)).fetchone():
                        skipped += 1
                        continue
                    self._db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", _run_row(run))
                    for step in run.steps:
                        body = json.dumps(step.to_dict(), default=str)
                        self._db.execute("INSERT INTO steps VALUES (?,?,?,?)", (run.id, step.index, step.kind, body))
                    added += 1
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added, skipped


def _run_row(run: Run) -> tuple[Any, ...]:
    return (
        run.id, run.agent, run.question, json.dumps(run.models), run.status, run.answer, _dump_error(run.error),
        run.score, json.dumps(run.metrics), run.suite, run.item_id, json.dumps(run.meta), run.created_at,
        run.finished_at, run.schema_version,
    )  # fmt: skip


def _dump_error(error: StepError | None) -> str | None:
    return None if error is None else json.dumps(error.as_dict())


def _run_from_row(row: Sequence[Any]) -> Run:
    (rid, agent, question, models, status, answer, error, score, metrics, suite, item_id, meta, created, finished,
     version) = row  # fmt: skip
    return Run(
        id=rid, agent=agent, question=question, models=json.loads(models), status=status, answer=answer,
        error=StepError(**json.loads(error)) if error else None, score=score, metrics=json.loads(metrics),
        suite=suite, item_id=item_id, meta=json.loads(meta), created_at=created, finished_at=finished,
        schema_version=version,
    )  # fmt: skip


def _filters(
    *,
    agent: str | None = None,
    status: str | Sequence[str] | None = None,
    min_score: float | None = None,
    suite: str | None = None,
    model: str | None = None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if agent:
        clauses.append("agent = ?")
        args.append(agent)
    if status:
        statuses = [status] if isinstance(status, str) else list(status)
        clauses.append(f"status IN ({','.join('?' * len(statuses))})")
        args.extend(statuses)
    if min_score is not None:
        clauses.append("score >= ?")
        args.append(min_score)
    if suite:
        clauses.append("suite = ?")
        args.append(suite)
    if model:
        clauses.append("EXISTS (SELECT 1 FROM json_each(runs.models) WHERE json_each.value = ?)")
        args.append(model)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


_STATUSES = ("running", "ok", "max_steps", "error")


def _check_imported(run: Run, path: str | Path, line: int) -> None:
    """What the store relies on about a run, checked before an import writes anything."""
    for name in ("id", "agent", "question"):
        value = getattr(run, name)
        if not isinstance(value, str) or not value.strip():
            raise InputDataError(path, line, f"must be a non-empty string, got {value!r}", field=name)
    if not isinstance(run.schema_version, int) or run.schema_version > SCHEMA_VERSION:
        raise InputDataError(path, line, f"is {run.schema_version!r}: this agentdistill reads runs up to schema"
                             f" {SCHEMA_VERSION}; upgrade it to import this file", field="schema_version")  # fmt: skip
    if run.status not in _STATUSES:
        raise InputDataError(path, line, f"is {run.status!r}, not one of {', '.join(_STATUSES)}", field="status")
    for name in ("models", "metrics", "meta"):
        if not isinstance(getattr(run, name), dict):
            raise InputDataError(path, line, "must be a JSON object", field=name)
    if not isinstance(run.created_at, int | float) or isinstance(run.created_at, bool):
        raise InputDataError(path, line, f"must be a number of seconds, got {run.created_at!r}", field="created_at")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


_HOST_BOOT = (socket.gethostname(), _boot_id())  # with the pid, who runs an unfinished run


def _abandon_dead_owners(db: sqlite3.Connection) -> None:
    """Runs left `running` by a process of this host that no longer exists (killed with SIGKILL, or the machine
    rebooted) become errors of kind "abandoned"; a run of a live process, or of another host, is left alone."""
    host, boot = _HOST_BOOT
    dead = [(run_id, pid) for run_id, row_boot, pid in
            db.execute("SELECT run_id, boot, pid FROM run_owners WHERE host=?", (host,)).fetchall()
            if row_boot != boot or not os.path.exists(f"/proc/{pid}")]  # fmt: skip
    for run_id, pid in dead:
        error = StepError("abandoned", f"the process running it (pid {pid}) was killed before it finished")
        db.execute("UPDATE runs SET status='error', error=?, finished_at=? WHERE id=? AND status='running'",
                   (_dump_error(error), time.time(), run_id))  # fmt: skip
        db.execute("DELETE FROM run_owners WHERE run_id=?", (run_id,))
