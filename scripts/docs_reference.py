"""Reference pages generated from the code, so that they cannot drift from it.

* ``reference/config.md``: every key of :class:`guardrl.config.RunConfig`, from the config dataclasses: its type,
  default, allowed values (``Literal`` choices) and the field docstring written under it.
* ``reference/cli.md``: every command of the Typer app with its arguments and options, their types, defaults
  and help texts.

Both pages are committed under ``docs/`` (so that links to them work wherever the Markdown is read) and written
by ``.venv/bin/python scripts/docs_reference.py``. MkDocs runs this file as a hook (``hooks:`` in ``mkdocs.yml``):
the build fails when a committed page differs from what the code generates, and so does the test suite, which also
checks that every config key and every command option is documented.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1] / "docs"
CONFIG_PAGE = "reference/config.md"
CLI_PAGE = "reference/cli.md"

# ---------------------------------------------------------------- config keys


@dataclasses.dataclass(frozen=True)
class Key:
    """One leaf of the run config: its dotted path, type, default, allowed values and docstring."""

    path: str
    type: str
    default: str
    choices: tuple[str, ...]
    doc: str


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under each field of dataclass ``cls`` (and of its dataclass bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _type_name(tp: Any) -> tuple[str, tuple[str, ...]]:
    """A readable type and, for ``Literal`` types, the allowed values."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        values = tuple(_yaml(v) for v in typing.get_args(tp))
        return "choice", values
    if origin in (typing.Union, types.UnionType):
        parts = [_type_name(a) for a in typing.get_args(tp) if a is not type(None)]
        name = " or ".join(p[0] for p in parts)
        choices = tuple(c for p in parts for c in p[1])
        if type(None) in typing.get_args(tp):
            name += " or null"
        return name, choices
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = _type_name(args[0]) if args else ("any", ())
        return f"list of {inner[0]}", inner[1]
    if origin is dict:
        return "mapping", ()
    if tp is Any:
        return "any", ()
    return getattr(tp, "__name__", str(tp)), ()


def _yaml(value: Any) -> str:
    """A default as it is written in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def sections() -> list[tuple[str, type, list[Key]]]:
    """Every config section (a dataclass, by dotted path) with its leaf keys, in declaration order."""
    from guardrl.config import RunConfig

    out: list[tuple[str, type, list[Key]]] = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        docs = field_docs(cls)
        leaves: list[Key] = []
        nested: list[tuple[str, type]] = []
        instance = cls()
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            path = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(tp):
                nested.append((path, tp))  # type: ignore[arg-type]
                continue
            name, choices = _type_name(tp)
            leaves.append(Key(path, name, _yaml(getattr(instance, f.name)), choices, docs.get(f.name, "")))
        out.append((prefix.rstrip(".") or "(top level)", cls, leaves))
        for path, sub in nested:
            walk(sub, path + ".")

    walk(RunConfig, "")
    return out


def config_keys() -> list[Key]:
    """Every leaf key of the run config."""
    return [k for _, _, keys in sections() for k in keys]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def config_page() -> str:
    """The config reference as Markdown."""
    lines = [
        "# Config reference",
        "",
        "Generated from the config dataclasses (`guardrl.config.RunConfig` and the stage configs it composes): every",
        "key a run config (YAML) can set, with its type, its default and its meaning. Keys you leave out keep these",
        "defaults; an unknown key or a value of the wrong type stops the run with an error naming the key. The full",
        "config of a run, defaults included, is saved as `runs/<name>/config.yaml`.",
        "",
        "Defaults written `null` for `train.learners` and `ope.estimators` are resolved when the config loads, by the",
        "kind of run (see each key), and the saved `config.yaml` lists what ran.",
        "",
    ]
    for title, cls, keys in sections():
        if not keys:
            continue
        lines += [f"## `{title}`" if title != "(top level)" else "## Top level", ""]
        doc = inspect.getdoc(cls) or ""
        if doc and title != "(top level)":
            lines += [" ".join(doc.split("\n\n")[0].split()), ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for k in keys:
            meaning = _cell(k.doc)
            if k.choices:
                meaning += " Allowed: " + ", ".join(f"`{c}`" for c in k.choices) + "."
            lines.append(f"| `{k.path}` | {_cell(k.type)} | `{_cell(k.default)}` | {meaning} |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- the command line


def cli_commands() -> list[Any]:
    """The click commands behind the Typer app, in ``--help`` order."""
    import typer.main

    from guardrl.cli import app

    group = typer.main.get_command(app)
    return [group.commands[name] for name in group.list_commands(None)]  # type: ignore[attr-defined, arg-type]


def _param_row(param: Any) -> str:
    import enum

    annotation = param.type_descriptor.annotation
    if param.param_type_name == "argument":
        name = f"`{param.name.upper()}`"
    else:
        name = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    kind = param.param_type_name + (" (required)" if param.required else "")
    if getattr(param, "is_flag", False):
        tp = "flag"
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        tp = " \\| ".join(f"`{m.value}`" for m in annotation)
    else:
        inner = typing.get_args(annotation)
        tp = getattr(inner[0] if inner else annotation, "__name__", str(annotation)).lower()
        tp = {"str": "text", "path": "path", "int": "integer", "float": "number"}.get(tp, tp)
    default = param.default
    shown = "" if default is None or param.required else f"`{_cell(_yaml(getattr(default, 'value', default)))}`"
    if getattr(param, "multiple", False):
        tp += " (repeatable)"
    return f"| {name} | {kind} | {tp} | {shown} | {_cell(getattr(param, 'help', None) or '')} |"


def cli_page() -> str:
    """The command-line reference as Markdown."""
    lines = [
        "# CLI reference",
        "",
        "Generated from the command line itself (the Typer app in `guardrl.cli`). `guardrl COMMAND --help` prints",
        "the same.",
        "",
        "Exit status: **0** success; **1** a user error (a missing file, a bad config, a refused request: one line",
        "on stderr naming the cause and the fix); **2** a usage error (an unknown option, a choice that does not",
        "exist). Any other failure is a bug and prints its traceback.",
        "",
    ]
    for cmd in cli_commands():
        lines += [f"## `guardrl {cmd.name}`", "", inspect.cleandoc(cmd.help or ""), ""]
        params = [p for p in cmd.params if p.name != "help"]
        if params:
            lines += ["| name | kind | type | default | help |", "|---|---|---|---|---|"]
            lines += [_param_row(p) for p in params]
            lines.append("")
    return "\n".join(lines)


def undocumented() -> list[str]:
    """Config keys without a docstring and commands or parameters without help text."""
    missing = [f"config key {k.path}" for k in config_keys() if not k.doc.strip()]
    for cmd in cli_commands():
        if not (cmd.help or "").strip():
            missing.append(f"command {cmd.name}")
        for p in cmd.params:
            if p.name != "help" and not (getattr(p, "help", None) or "").strip():
                missing.append(f"guardrl {cmd.name}: {p.name}")
    return missing


# ---------------------------------------------------------------- the pages, and the MkDocs hook


def pages() -> dict[str, str]:
    """Each generated page's path under ``docs/`` and its text."""
    return {CONFIG_PAGE: config_page(), CLI_PAGE: cli_page()}


def stale() -> list[str]:
    """The generated pages whose committed copy under ``docs/`` differs from what the code generates now."""
    return [path for path, text in pages().items() if not (DOCS / path).is_file() or (DOCS / path).read_text() != text]


def on_pre_build(config: Any) -> None:
    """Stop the build when a reference page no longer matches the code."""
    from mkdocs.exceptions import PluginError

    out_of_date = stale()
    if out_of_date:
        raise PluginError(
            f"docs/{', docs/'.join(out_of_date)} no longer match the code; "
            "regenerate them with `.venv/bin/python scripts/docs_reference.py`"
        )


if __name__ == "__main__":
    for path, text in pages().items():
        (DOCS / path).write_text(text)
        print(f"wrote docs/{path}")
