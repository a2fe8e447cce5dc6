"""Chat threads: LangGraph's SqliteSaver keeps each thread's state; a small index says whose thread it is.

`<home>/threads.db` holds both: the checkpointer's tables and `chat_threads`, which remembers each thread's
agent, first question and turn count, so `/threads` can list them and a thread is never resumed by another
agent (its saved state would not fit that agent's graph).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agentdistill.errors import AgentDistillError


class ThreadAgentMismatch(AgentDistillError):
    def __init__(self, thread_id: str, agent: str, wanted: str) -> None:
        super().__init__(
            f"thread {thread_id!r} was started with the {agent} agent, not {wanted}: resume it with "
            f"`--agent {agent} --thread {thread_id}`, or start a new thread."
        )


class ThreadIndex:
    """Which agent owns each chat thread and what it was first asked; SqliteSaver itself keeps the state."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS chat_threads (thread_id TEXT PRIMARY KEY, agent TEXT NOT NULL, "
            "first_question TEXT NOT NULL, turns INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL)"
        )

    def agent_of(self, thread_id: str) -> str | None:
        row = self._db.execute("SELECT agent FROM chat_threads WHERE thread_id=?", (thread_id,)).fetchone()
        return row[0] if row else None

    def turns(self, thread_id: str) -> int:
        row = self._db.execute("SELECT turns FROM chat_threads WHERE thread_id=?", (thread_id,)).fetchone()
        return int(row[0]) if row else 0

    def add_turn(self, thread_id: str, agent: str, question: str) -> None:
        now = time.time()
        self._db.execute(
            "INSERT INTO chat_threads VALUES (?,?,?,1,?,?) "
            "ON CONFLICT(thread_id) DO UPDATE SET turns=turns+1, updated_at=excluded.updated_at",
            (thread_id, agent, question, now, now),
        )

    def rows(self) -> list[tuple[str, str, str, int, float]]:
        """(thread_id, agent, first question, turns, updated_at), most recently used first."""
        sql = "SELECT thread_id, agent, first_question, turns, updated_at FROM chat_threads ORDER BY updated_at DESC"
        return [tuple(row) for row in self._db.execute(sql).fetchall()]

    def close(self) -> None:
        self._db.close()
