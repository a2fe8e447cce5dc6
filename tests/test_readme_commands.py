"""Every `agentdistill ...` command in the README's bash blocks, checked against the real CLI, and the cheap ones run.

Two layers:

1. Doc drift (fast, no models): every command is extracted from README.md, resolved from the root click group, and
   parsed by click. A renamed subcommand, a removed option or a wrong option value fails here, naming the README line.
2. Execution: the commands that need no LLM generation run as written (placeholders replaced by real files in a
   temporary working dir and home) and their output is checked. The commands that do need a model are mapped to the
   test files that run their command path (`ELSEWHERE`), and that map is checked against those files.

How the README is read (see `readme_commands`): ```bash blocks only; `\\` and indented lines continue a command;
`# comments` are cut (a backticked command inside a comment, like `distill train --data DIR ...`, counts as a
command too, and the `--options` a comment names must exist); `a | b | c` are alternatives of one command group
(`kb info mykb | kb list | kb add ...`, `catalog build | info | search ...`); `[...]` parts give a variant with them
and one without; `x|y|z` inside a token gives one variant per alternative; a bare `...` is dropped (it stands for
options left out, so there a missing required option is no error). Lines that are shell (the set-up commands)
contribute each `agentdistill ...` call they make.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from agentdistill.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ROOT_COMMANDS = frozenset(cli.commands)

# Placeholders the README writes where click wants a number; every other placeholder (RUN_ID, OUT, DIR, SPEC, ...)
# is a fine string, and one naming a path that must exist is created before parsing (`_create_required_paths`).
NUMBER_PLACEHOLDERS = {"N": "2", "P": "8000", "R": "8"}

# `--options` a README comment names that are not options of the command on that line, and why.
COMMENT_OPTION_EXCEPTIONS = {
    ("distill compress", "--full"): "describes the `distill run --full` whose OUT it compresses",
}


ELIDED = re.compile(r"(?<!\S)\.\.\.(?!\S)")  # a bare `...`: "and the other options / arguments"


@dataclass(frozen=True)
class ReadmeCommand:
    line: int  # README line the command starts on
    text: str  # as written, after the expansion described in the module docstring
    elided: bool = False  # its README line has a bare `...` ("the other options"): required ones may be missing

    @property
    def argv(self) -> list[str]:
        words = shlex.split(self.text)
        assert words[0] == "agentdistill"
        return words[1:]

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text}"


@dataclass(frozen=True)
class ReadmeLine:
    line: int
    commands: tuple[ReadmeCommand, ...]
    comment_options: tuple[str, ...]


# ---------------------------------------------------------------------------------------------- extraction


def _bash_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the block's first line, body) for every ```bash block."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in re.finditer(r"^```bash\n(.*?)^```", text,
            flags=re.MULTILINE | re.DOTALL)]  # fmt: skip


def _split_comment(raw: str) -> tuple[str, str]:
    """(code, comment): a `#` at the start or after whitespace, outside quotes, starts the comment."""
    quote = None
    for i, ch in enumerate(raw):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or raw[i - 1].isspace()):
            return raw[:i], raw[i + 1 :]
    return raw, ""


def _logical_lines(start: int, body: str) -> list[tuple[int, str, str]]:
    """(line, code, comment) with `\\` continuations and indented continuation lines joined."""
    out: list[list] = []
    continued = False
    for number, raw in enumerate(body.splitlines(), start):
        code, comment = _split_comment(raw)
        code = code.rstrip()
        ends_with_backslash = code.endswith("\\")
        code = code.removesuffix("\\").strip()
        if out and (continued or raw[:1].isspace()):
            out[-1][1] = f"{out[-1][1]} {code}".strip()
            out[-1][2] = f"{out[-1][2]} {comment}".strip()
        else:
            out.append([number, code, comment.strip()])
        continued = ends_with_backslash
    return [(n, code, comment) for n, code, comment in out]


def _split_outside(text: str, separator: str) -> list[str]:
    """`text` split on `separator` where it is outside quotes and brackets."""
    parts, current, quote, depth, i = [], "", None, 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0 and text.startswith(separator, i):
            parts.append(current)
            current, i = "", i + len(separator)
            continue
        current += ch
        i += 1
    return [*parts, current]


def _alternatives(rest: str) -> list[str]:
    """`kb info mykb | kb list | add x` -> each alternative with its command group: a bare subcommand continues
    the group of the first alternative."""
    parts = [p.strip() for p in _split_outside(rest, " | ") if p.strip()]
    group = parts[0].split()[0]
    return [p if p.split()[0] in ROOT_COMMANDS or p is parts[0] else f"{group} {p}" for p in parts]


def _choices(token: str) -> list[str]:
    """`react|codeact|lag` -> its alternatives; `user=rule|llm` -> user=rule, user=llm."""
    if "|" not in token or token.startswith(("'", '"')):
        return [token]
    first, *others = token.split("|")
    if "=" in first:
        key = first.split("=", 1)[0] + "="
        others = [o if "=" in o else key + o for o in others]
    return [first, *others]


def _variants(segment: str) -> list[str]:
    """One command per README reading: optional parts present (once per `x|y` alternative) and absent."""
    segment = ELIDED.sub(" ", segment)
    bare = segment
    while re.search(r"\[[^\[\]]*\]", bare):
        bare = re.sub(r"\s*\[[^\[\]]*\]", "", bare)
    full = segment.replace("[", "").replace("]", "")
    tokens = [_choices(t) for t in _split_outside(" ".join(full.split()), " ")]
    widest = max(len(t) for t in tokens)
    found = [" ".join(t[min(i, len(t) - 1)] for t in tokens) for i in range(widest)]
    found.append(" ".join(_choices(t)[0] for t in _split_outside(" ".join(bare.split()), " ")))
    return list(dict.fromkeys(f"agentdistill {v}" for v in found))


def readme_lines() -> list[ReadmeLine]:
    text = README.read_text(encoding="utf-8")
    lines: list[ReadmeLine] = []
    for start, body in _bash_blocks(text):
        for number, code, comment in _logical_lines(start, body):
            if code.startswith("agentdistill "):
                segments = _alternatives(code.removeprefix("agentdistill "))
            else:  # shell: the set-up one-liners call agentdistill inside &&, ||, $(...)
                segments = [s.strip() for s in re.findall(r"(?<![\w/-])agentdistill\s+([^&|;(){}\"'`]+)", code)]
            named = [s.strip() for s in re.findall(r"`([^`]+)`", comment) if s.split()[0] in ROOT_COMMANDS]
            for quoted in re.findall(r"`[^`]+`", comment):
                comment = comment.replace(quoted, " ")
            elided = bool(ELIDED.search(code))
            commands = [ReadmeCommand(number, v, elided) for s in segments for v in _variants(s)]
            commands += [ReadmeCommand(number, v) for s in named for v in _variants(s)]
            options = tuple(re.findall(r"(?<![\w-])--[a-z][\w-]*", comment))
            if commands:
                lines.append(ReadmeLine(number, tuple(commands), options))
    return lines


def readme_commands() -> list[ReadmeCommand]:
    unique: dict[str, ReadmeCommand] = {}
    for line in readme_lines():
        for command in line.commands:
            unique.setdefault(command.text, command)
    return list(unique.values())


COMMANDS = readme_commands()
TEXTS = {c.text for c in COMMANDS}


# ---------------------------------------------------------------------------------------------- resolution


def resolve(argv: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """(subcommand path, click command, its own arguments), the way click walks groups."""
    command: click.Command = cli
    path: list[str] = []
    rest = list(argv)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        assert sub is not None, f"`agentdistill {' '.join(path)}` has no subcommand {rest[0]!r}"
        path.append(rest.pop(0))
        command = sub
    return path, command, rest


def option_names(command: click.Command) -> set[str]:
    names = {"--help", "-h"}  # the root group's help_option_names, inherited by every subcommand
    for param in command.params:
        if isinstance(param, click.Option):  # hidden aliases (distill train --max-steps) included
            names.update(param.opts, param.secondary_opts)
    return names


def used_options(args: list[str]) -> list[str]:
    used = []
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("-") and len(arg) > 1 and not re.fullmatch(r"-\d+(\.\d+)?", arg):  # `--min-score -1`
            used.append(arg.split("=", 1)[0])
    return used


def _create_required_paths(command: click.Command, name: str, args: list[str]) -> None:
    """Create (in the cwd) what a click.Path(exists=True) parameter names, of the kind it accepts, so the parse
    check covers every other part of the command instead of stopping at a placeholder like RUN_DIR."""
    context = click.Context(command, info_name=name, resilient_parsing=True)
    opts, _, _ = command.make_parser(context).parse_args(list(args))
    for param in command.params:
        if not (isinstance(param.type, click.Path) and param.type.exists):
            continue
        raw = opts.get(param.name)
        for value in raw if isinstance(raw, list | tuple) else [raw]:
            if not isinstance(value, str):
                continue
            path = Path(value)
            if param.type.dir_okay and not param.type.file_okay:
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()


# ---------------------------------------------------------------------------------------------- layer 1: drift


def test_the_extractor_finds_every_readme_command() -> None:
    assert len(COMMANDS) >= 40, [c.text for c in COMMANDS]
    text = README.read_text(encoding="utf-8")
    starts = {n for n, line in enumerate(text.splitlines(), 1) if line.startswith("agentdistill ")}
    assert len(starts) >= 40 and starts <= {line.line for line in readme_lines()}  # every command line yields some
    for expected in (  # one of each extraction rule
        "agentdistill kb list",  # `a | b`, a new group
        "agentdistill catalog info",  # `a | b`, the same group
        "agentdistill demo --limit 5 --agent lag --model SPEC --json",  # `[--agent react|codeact|lag]`
        "agentdistill bench list",  # the optional part left out
        "agentdistill distill run --agent recbot --suite rec-netflix --roles parser --min-score -1 --min-metric "
        "turn_parse_accuracy=1 --option planner=false --option responder=false",  # `\` then an indented line
        "agentdistill distill eval",  # `collect | dataset | eval ...`
        "agentdistill distill train --data DIR --base SPEC --out OUT",  # backticked in a comment
        "agentdistill models build-flags",  # inside the set-up one-liner's $(...)
        "agentdistill engine build",
        "agentdistill distill run --agent lag --suite sample",  # the main job
        'agentdistill ask "..." --model openai:student --native-tools',  # a quoted `...` is a value
    ):
        assert expected in TEXTS, expected
    assert not [t for t in TEXTS if "#" in t or "[" in t or "]" in t or "\\" in t or " ... " in t]


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_readme_command_parses(command: ReadmeCommand, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, cmd, args = resolve(command.argv)
    unknown = [o for o in used_options(args) if o not in option_names(cmd)]
    assert not unknown, f"{command}: `agentdistill {' '.join(path)}` has no option {unknown}"
    args = [NUMBER_PLACEHOLDERS.get(a, a) for a in args]
    cwd = tmp_path / "clone"  # `../shared/data` lands inside tmp_path
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    name = path[-1] if path else "agentdistill"
    _create_required_paths(cmd, name, args)
    try:
        cmd.make_context(name, args)
    except click.exceptions.Exit as exc:  # --help
        assert exc.exit_code == 0, str(command)
    except click.MissingParameter as exc:
        if not command.elided:  # `distill collect | dataset | eval ...`: the `...` stands for the required options
            pytest.fail(f"{command}: click rejects it: {exc.format_message()}")
    except click.ClickException as exc:
        pytest.fail(f"{command}: click rejects it: {exc.format_message()}")


def test_options_named_in_readme_comments_exist() -> None:
    for line in readme_lines():
        if not line.comment_options:
            continue
        commands = [resolve(c.argv) for c in line.commands]
        known = set().union(*(option_names(cmd) for _, cmd, _ in commands))
        paths = {" ".join(path) for path, _, _ in commands}
        for option in line.comment_options:
            excused = any((path, option) in COMMENT_OPTION_EXCEPTIONS for path in paths)
            assert option in known or excused, f"README.md:{line.line}: the comment names {option}, not an option " \
                                               f"of {sorted(paths)}"  # fmt: skip


# ---------------------------------------------------------------------------------------------- layer 2: runs

# README command paths run here (below), and those that need a model: the test files that run their command path,
# with a string in that file that shows it does (checked, so this map cannot go stale silently).
RUN_HERE = {
    "",  # `agentdistill --help`
    "kb build", "kb search", "kb info", "kb list", "kb add", "kb delete", "catalog build", "catalog info",
    "catalog search", "catalog filter", "catalog import", "trajectories list", "trajectories show",
    "trajectories export", "trajectories import", "models list", "models info", "models build-flags",
    "engine status", "engine stop", "engine build", "bench list",
}  # fmt: skip
ELSEWHERE = {
    "ask": [("tests/commands/test_chat.py", "invoke(ask, "),
            ("tests/commands/test_chat_recbot.py", 'invoke(ask, ["--agent", "recbot"'),
            ("tests/agents/test_react_native.py", '"--native-tools"')],
    "chat": [("tests/commands/test_chat.py", '"--thread"'), ("tests/commands/test_chat_recbot.py", "invoke(chat, ")],
    "ui": [("tests/commands/test_ui.py", '"ui", "--host", "0.0.0.0"'), ("tests/web/test_browser.py", "live_ui")],
    "models info": [("tests/commands/test_models_cli.py", '"--load"')],  # `--load` loads the model
    "models probe": [("tests/models/test_local_fallback.py", '["models", "probe"')],
    "engine start": [("tests/models/test_engine_llama.py", '["engine", "start"')],
    "engine stop": [("tests/models/test_engine_llama.py", '["engine", "stop", "local:smollm2-135m"]')],  # MODEL
    "bench run": [("tests/commands/test_bench_run.py", "invoke(home, run, "),
                  ("tests/benchmarks/test_rec_bench.py", '"--suite", "rec-netflix"')],
    "bench report": [("tests/commands/test_bench_report.py", "invoke(report, ")],
    "bench compare": [("tests/commands/test_bench_report.py", "invoke(compare, ")],
    "distill run": [("tests/distill/workflow/test_pipeline.py", '"distill", "run"'),
                    ("tests/distill/workflow/test_pipeline_recbot.py", '"distill", "run"')],
    "distill collect": [("tests/distill/workflow/test_pipeline.py", '"distill", "collect"')],
    "distill dataset": [("tests/distill/test_data.py", "runner.invoke(dataset, ")],
    "distill eval": [("tests/distill/workflow/test_pipeline_recbot.py", 'for stage in ("collect", "eval")')],
    "distill train": [("tests/distill/test_train_command.py", "CliRunner().invoke(train, "),
                      ("tests/distill/test_trl_engine.py", '"--engine", engine'),
                      ("tests/distill/test_accelerate_configs.py", '"torch.distributed.run"')],
    "distill compress": [("tests/distill/workflow/test_pipeline.py", '"distill", "compress"')],
    "distill shorten": [("tests/distill/test_shorten.py", '"distill", "shorten", str(data)')],
    "distill onpolicy": [("tests/distill/test_onpolicy.py", '"distill", "onpolicy", "--agent", "cot"')],
    "distill publish": [("tests/distill/workflow/test_publish.py", '"distill", "publish"')],
    "distill export": [("tests/distill/test_export_gguf.py", '["export", "--model-dir"')],
    "serve": [("tests/distill/test_serve.py", "from agentdistill.commands.serve import serve; serve.main")],
    "demo": [("tests/commands/test_demo.py", '["demo", "--limit", "2", "--model"')],
    "materials import": [("tests/commands/test_materials_cmd.py", 'invoke("import", str(first), str(second)')],
    "materials info": [("tests/commands/test_materials_cmd.py", 'invoke("info", "--dir"')],
    "materials search": [("tests/commands/test_materials_cmd.py", 'invoke("search", ')],
}  # fmt: skip
RUN_BY_NO_TEST: set[str] = set()  # README command paths no test runs (none now; add with a reason)


def test_every_readme_command_path_is_run_somewhere() -> None:
    paths = {" ".join(resolve(c.argv)[0]) for c in COMMANDS}
    assert paths - RUN_HERE - ELSEWHERE.keys() - RUN_BY_NO_TEST == set()
    assert (RUN_HERE | ELSEWHERE.keys() | RUN_BY_NO_TEST) - paths == set()  # nothing listed that the README lost


@pytest.mark.parametrize("path", sorted(ELSEWHERE))
def test_the_tests_that_run_the_model_commands_still_do(path: str) -> None:
    for file, needle in ELSEWHERE[path]:
        assert (ROOT / file).is_file(), f"{path}: {file} is gone"
        assert needle in (ROOT / file).read_text(encoding="utf-8"), f"{path}: {file} no longer contains {needle!r}"


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working dir the README commands run in (files they name are written there); wide tables."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("COLUMNS", "250")
    return cwd


def run(text: str, input: str | None = None, **placeholders: str) -> Result:
    """Run README command `text` in-process (the console script's `cli`), placeholders replaced word by word."""
    assert text in TEXTS, f"not (or no longer) a README command: {text}"
    argv = [placeholders.get(word, word) for word in shlex.split(text)[1:]]
    result = CliRunner().invoke(cli, argv, input=input, catch_exceptions=False, prog_name="agentdistill")
    assert result.exit_code == 0, f"{text}\n{result.output}"
    return result


def _entry_point(*args: str) -> subprocess.CompletedProcess:
    """`agentdistill ARGS` through the function pyproject.toml installs as the console script."""
    script = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]["agentdistill"]
    module, function = script.split(":")
    code = f"from {module} import {function}; {function}()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_the_console_script_runs_the_setup_and_help_commands(clone: Path) -> None:
    assert "agentdistill --help" in TEXTS and "agentdistill models build-flags" in TEXTS
    helped = _entry_point("--help")
    assert helped.returncode == 0, helped.stderr
    for name in ROOT_COMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}\s", helped.stdout, flags=re.MULTILINE), name
    flags = _entry_point("models", "build-flags")  # CMAKE_ARGS="$(agentdistill models build-flags)": stdout only
    assert flags.returncode == 0, flags.stderr
    assert len(flags.stdout.splitlines()) == 1 and all(f.startswith("-D") for f in flags.stdout.split())


def _seed_runs(home: Path) -> None:
    from agentdistill.memory.trajectories import TrajectoryStore
    from agentdistill.trajectory import Run, Step

    store = TrajectoryStore.open(home / "trajectories.db")
    for run_id, score in (("run-right", 1.0), ("run-wrong", 0.0)):
        store.start_run(Run(id=run_id, agent="react", question=f"question of {run_id}?"))
        store.append_step(Step(run_id=run_id, index=0, kind="model", node="think", completion="Final Answer: Guam"))
        store.finish_run(run_id, status="ok", answer="Guam")
        store.set_score(run_id, score, {"em": score})
    store.close()


def test_readme_commands_without_models_run_as_written(
    clone: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "usage: agentdistill" in run("agentdistill --help").output.lower()

    listed = run("agentdistill models list").output
    for spec in ("local:qwen2.5-coder-0.5b", "local:smollm2-135m", "student:recbot-parser-135m"):
        assert spec in listed
    info = run("agentdistill models info local:smollm2-135m").output
    assert "name: smollm2-135m" in info and "role: student" in info
    line = run("agentdistill models build-flags").output.strip()
    explained = run("agentdistill models build-flags --explain").output.splitlines()
    assert explained[0].startswith("# ") and [row.split()[0] for row in explained[1:]] == line.split()

    assert json.loads(run("agentdistill engine status --json").stdout) == []
    assert "no engine is running" in run("agentdistill engine status").output
    assert "no engine was running" in run("agentdistill engine stop --all").output

    suites = run("agentdistill bench list").output
    assert re.search(r"│ sample\s+│.*│ yes\s+│", suites) and re.search(r"│ gsm8k-sample\s+│.*│ yes\s+│", suites)

    _seed_runs(home)
    assert "run-right" in run("agentdistill trajectories list").output
    scored = json.loads(run("agentdistill trajectories list --agent react --status ok --min-score 1 --json").stdout)
    assert [r["id"] for r in scored] == ["run-right"]
    shown = run("agentdistill trajectories show RUN_ID", RUN_ID="run-right").output
    assert "question of run-right?" in shown and "Final Answer: Guam" in shown
    assert "exported 2 runs" in run("agentdistill trajectories export runs.jsonl").output
    assert len((clone / "runs.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    other = clone / "other-home"
    monkeypatch.setenv("AGENTDISTILL_HOME", str(other))
    assert "imported 2 runs" in run("agentdistill trajectories import runs.jsonl").output
    scored = json.loads(run("agentdistill trajectories list --agent react --status ok --min-score 1 --json").stdout)
    assert [r["id"] for r in scored] == ["run-right"]  # scores travel with the export


def test_engine_build_as_written_when_llama_server_is_built(clone: Path) -> None:
    from agentdistill.models.engine import server_binary

    found = server_binary()
    if found is None:
        pytest.skip("llama-server is not built: `agentdistill engine build` would compile it (minutes)")
    assert f"llama-server is installed: {found}" in run("agentdistill engine build").output


def test_bench_list_with_the_shared_data_dir_as_written(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the README's `../shared/data` is relative to the clone
    monkeypatch.setenv("COLUMNS", "250")
    suites = run("agentdistill bench list --data-dir ../shared/data").output
    assert re.search(r"│ hotpotqa\s+│.*│ yes\s+│", suites) and re.search(r"│ gsm8k\s+│.*│ yes\s+│", suites)


def _doc(doc_id: str, title: str, text: str, source: str) -> dict:
    return {"id": doc_id, "title": title, "text": text, "source": source}


PASSAGES = [
    _doc("sql", "Query language", "SQL lets a program query a database for the rows a query asks for.", "wiki"),
    _doc("guam", "Battle of Guam", "The American recapture of Guam island in 1944.", "wiki"),
    _doc("jaws", "Jaws (film)", "Jaws is a 1975 thriller film directed by Steven Spielberg.", "news"),
]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


@pytest.mark.integration
def test_readme_kb_and_catalog_commands_run_as_written(clone: Path, home: Path) -> None:
    """The packaged MiniLM embedder, as the README commands use it (no --embedder)."""
    _jsonl(clone / "passages.jsonl", PASSAGES)
    built = run("agentdistill kb build mykb --from passages.jsonl").output
    assert "all-MiniLM-L6-v2" in built and (home / "kb" / "mykb" / "CURRENT").is_file()
    hits = json.loads(run('agentdistill kb search mykb "query" -k 5 --filter source=wiki --json').stdout)
    assert [h["metadata"]["doc_id"] for h in hits] == ["sql", "guam"]  # jaws is news; the query passage first
    assert run('agentdistill kb search mykb "query" -k 5').exit_code == 0
    assert re.search(r"documents\s+│ 3\b", run("agentdistill kb info mykb").output)
    assert "mykb" in run("agentdistill kb list").output
    more = [_doc("jaws", "Jaws (film)", "Jaws was directed by Spielberg.", "news"), _doc("new", "New", "New.", "wiki")]
    _jsonl(clone / "more.jsonl", more)  # one replaced (needs --upsert), one new
    assert "now 4 documents" in run("agentdistill kb add mykb --from more.jsonl --upsert").output
    assert "deleted mykb" in run("agentdistill kb delete mykb", input="y\n").output
    assert not (home / "kb" / "mykb").exists()

    assert re.search(r"items\s+│ 1500\b", run("agentdistill catalog build").output)
    assert re.search(r"items\s+│ 1500\b", run("agentdistill catalog info").output)
    found = run('agentdistill catalog search "heist with a twist" -k 5').output
    assert "'heist with a twist'" in found and len(re.findall(r"^│ s\d+ ", found, flags=re.MULTILINE)) == 5
    comedies = run("agentdistill catalog filter --genre Comedies --year-max 1999").output
    count = re.search(r"(\d+) titles match", comedies)
    assert count and int(count.group(1)) > 0 and "Comedies" in comedies
    (clone / "titles.csv").write_text(
        "id,name,type,release_year,tags,description\n"
        'a1,Quiet Lake,Movie,2001,"Dramas, Indies",A fisherman and his daughter.\n'
        "a2,Loud City,TV Show,2019,TV Comedies,Roommates fight over a parking spot.\n",
        encoding="utf-8",
    )
    run("agentdistill catalog import titles.csv --map title=name --map genres=tags --out mycatalog")
    from agentdistill.memory.catalog import Catalog

    imported = Catalog.open(clone / "mycatalog")
    assert len(imported) == 2 and imported.get("a1").title == "Quiet Lake"
    assert imported.get("a1").genres == ("Dramas", "Indies")
