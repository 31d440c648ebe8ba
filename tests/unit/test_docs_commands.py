"""What the README and the docs show stays true: every `simutrador …` command they show
names a real command and only its options, every `make` target exists, every Python block
compiles, and the README's links lead to files that exist (the docs build checks the links
inside docs/, not the README's)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from entrypoints.cli.app import app

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
# `simutrador` as a command (after a space, `(`, `/` or a line start), up to a pipe, a
# closing parenthesis, a comment or the end of the command.
COMMAND = re.compile(r"(?:^|(?<=[\s(/]))simutrador\s+([^|)#;&\n]*)")
ROOT = typer.main.get_command(app)
MAKE = re.compile(r"(?:^|(?<=\s))make\s+((?:[A-Z]+=\S+\s+)*)([a-z][\w-]*)")


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


def _snippets(text: str) -> Iterator[str]:
    """Fenced code blocks and inline code spans: where commands are shown."""
    for match in FENCE.finditer(text):
        yield match.group(2)
    yield from INLINE.findall(FENCE.sub("", text))


def unknown_options(command_line: str, root: Any) -> list[str]:
    """The words of `command_line` (what follows `simutrador`) that the command path they
    name does not accept: unknown subcommands after a group, unknown options. `root` is the
    click command Typer builds (Typer vendors click, so groups are told by `commands`)."""
    command = root
    problems: list[str] = []
    path_open = True
    for word in command_line.split():
        word = word.strip("[]")
        if word.startswith("-") and len(word) > 1 and not word.startswith("--"):
            word = word if len(word) == 2 else ""  # -s, -t, -p; skip others (e.g. -1)
        if word.startswith("-") and word:
            option = word.split("=", 1)[0]
            known = {"--help"} | {
                name for param in command.params for name in (*param.opts, *param.secondary_opts)
            }
            if option not in known:
                problems.append(f"{command.name}: {option}")
            path_open = False
        elif path_open and hasattr(command, "commands"):
            sub = command.commands.get(word)
            if sub is None:
                if re.fullmatch(r"[a-z][a-z-]*", word):
                    problems.append(f"{command.name}: no command {word!r}")
                path_open = False  # a placeholder such as `…`
            else:
                command = sub
        else:
            path_open = False
    return problems


def _shown_commands() -> list[tuple[str, str]]:
    return [
        (_name(page), match.group(1).strip())
        for page in PAGES
        for snippet in _snippets(page.read_text())
        for match in COMMAND.finditer(snippet)
    ]


def test_the_docs_show_commands() -> None:
    shown = _shown_commands()
    assert len(shown) > 50
    assert {page for page, _ in shown} >= {"README.md", "docs/cli.md"}


@pytest.mark.parametrize(("page", "line"), _shown_commands())
def test_every_command_shown_exists_with_its_options(page: str, line: str) -> None:
    assert unknown_options(line, ROOT) == [], f"{page}: simutrador {line}"


def test_the_check_catches_a_wrong_command_or_option() -> None:
    root = ROOT
    assert unknown_options("session list --state ready --json", root) == []
    assert unknown_options("run x.py -s AAPL --capital 1 [--warmup N]", root) == []
    assert unknown_options("session lst", root) == ["session: no command 'lst'"]
    assert unknown_options("session create --symbol AAPL", root) == ["create: --symbol"]
    assert unknown_options("data import a.csv -z", root) == ["import: -z"]


def test_every_make_target_shown_exists() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.MULTILINE))
    shown = {
        (_name(page), match.group(2))
        for page in PAGES
        for snippet in _snippets(page.read_text())
        for match in MAKE.finditer(snippet)
    }
    assert {target for _, target in shown} >= {"serve", "test", "install", "docs"}
    assert [(page, target) for page, target in sorted(shown) if target not in targets] == []


def test_every_python_block_compiles() -> None:
    blocks = [
        (_name(page), match.group(2))
        for page in PAGES
        for match in FENCE.finditer(page.read_text())
        if match.group(1) == "python"
    ]
    assert len(blocks) >= 5
    for page, code in blocks:
        compile(code, page, "exec")  # a SyntaxError names the page


def test_readme_links_lead_to_files() -> None:
    readme = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links into docs/"
    assert [t for t in local if not (REPO / t).exists()] == []
