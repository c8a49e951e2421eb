"""The ``monitors`` command: check and format rule files; more commands plug in.

Exit codes: 0 all good, 1 problems found, 2 usage error (bad flags, unreadable file).
Commands that need the engine (``eval``, ``backtest``, ``test``, ``demo``) are registered
by the ``engine`` package through the ``monitors.commands`` entry-point group,
so this module never imports it.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from pathlib import Path

from ._api import analyze
from .errors import Diagnostic
from .printer import print_rules

__all__ = ["main", "read_source", "format_diagnostic", "UsageError", "CommandError", "EXIT_OK", "EXIT_PROBLEMS", "EXIT_USAGE"]

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
ENTRY_POINT_GROUP = "monitors.commands"


class UsageError(Exception):
    """A problem with how the command was called (exit code 2)."""


class CommandError(Exception):
    """The command could not do its job (unreachable source, bad data …); exit code 1."""


MAX_FILE_BYTES = 4 * 1024 * 1024


def _read_bounded(name: str, handle) -> str:
    """At most :data:`MAX_FILE_BYTES` of UTF-8 text from ``handle`` (a device like /dev/zero never ends)."""
    data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(f"{name}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; a rule file is text of "
                         f"at most {MAX_FILE_BYTES // (1024 * 1024)} MiB (split it into several files)")
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{name}: not UTF-8 text (byte {error.start})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it


def read_source(name: str) -> str:
    """The text of a file argument (at most 4 MiB); ``-`` reads standard input."""
    if name == "-":
        return _read_bounded("standard input", getattr(sys.stdin, "buffer", sys.stdin))
    path = Path(name)
    try:
        with path.open("rb") as handle:
            return _read_bounded(name, handle)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{name}: is a directory, not a rule file") from None
    except OSError as error:
        raise UsageError(f"{name}: {error.strerror or error}") from None


def _display_name(name: str) -> str:
    return "<stdin>" if name == "-" else name


def format_diagnostic(file: str, text: str, diag: Diagnostic, *, color: bool = False) -> str:
    """``file:line:col: severity: message``, the source line, a caret under the span, the hint."""
    lines = text.split("\n")
    out = [f"{file}:{diag.line}:{diag.column}: {diag.severity}: {diag.message}"]
    if 1 <= diag.line <= len(lines):
        source_line = lines[diag.line - 1].replace("\t", " ")
        out.append("    " + source_line)
        start = diag.column - 1
        if diag.end_line == diag.line:
            width = max(1, diag.end_column - diag.column)
        else:
            width = max(1, len(source_line) - start)
        width = min(width, max(1, len(source_line) - start + 1))
        caret = "^" + "~" * (width - 1)
        if color:
            caret = ("\033[31m" if diag.severity == "error" else "\033[33m") + caret + "\033[0m"
        out.append("    " + " " * start + caret)
    if diag.hint:
        out.append(f"    hint: {diag.hint}")
    return "\n".join(out)


def _cmd_check(args) -> int:
    results = []
    found = False
    for name in args.files:
        text = read_source(name)
        _, diagnostics = analyze(text)
        results.append((name, text, diagnostics))
        if any(d.severity == "error" for d in diagnostics) or (args.strict and diagnostics):
            found = True
    if args.format == "json":
        payload = [{"file": _display_name(n), **d.to_dict()} for n, _, ds in results for d in ds]
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        color = sys.stdout.isatty()
        for name, text, diagnostics in results:
            for diag in diagnostics:
                print(format_diagnostic(_display_name(name), text, diag, color=color))
        if not args.quiet:
            errors = sum(d.severity == "error" for _, _, ds in results for d in ds)
            warnings = sum(d.severity == "warning" for _, _, ds in results for d in ds)
            rules = sum(len(analyze(t)[0]) for _, t, ds in results if not any(d.severity == "error" for d in ds))
            summary = f"{len(results)} file{'s' * (len(results) != 1)} checked: "
            summary += f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
            if not errors:
                summary += f", {rules} rule{'s' * (rules != 1)} ok"
            print(summary, file=sys.stderr)
    return EXIT_PROBLEMS if found else EXIT_OK


def _cmd_fmt(args) -> int:
    if args.write and "-" in args.files:
        raise UsageError("--write cannot rewrite standard input")
    status = EXIT_OK
    for name in args.files:
        text = read_source(name)
        rules, diagnostics = analyze(text)
        errors = [d for d in diagnostics if d.severity == "error"]
        if errors:
            for diag in errors:
                print(format_diagnostic(_display_name(name), text, diag), file=sys.stderr)
            status = EXIT_PROBLEMS
            continue
        formatted = print_rules(rules)
        if args.check:
            if formatted != text:
                print(f"{_display_name(name)}: not in canonical form (run `monitors fmt --write {name}`)")
                status = EXIT_PROBLEMS
        elif args.write:
            if formatted != text:
                Path(name).write_text(formatted, encoding="utf-8")
                print(f"{name}: reformatted", file=sys.stderr)
        else:
            sys.stdout.write(formatted)
    return status


def _plugin_commands() -> list:
    try:
        return list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # broken metadata must not break `monitors check`
        return []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitors",
        description="Check, format and run alert rules written in the monitors rule language.",
        epilog="Language reference: docs/language.md. Exit codes: 0 ok, 1 problems found, 2 usage error.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    check = sub.add_parser("check", help="report every problem in rule files",
                           description="Validate rule files and report every problem with its position and a hint.")
    check.add_argument("files", nargs="+", metavar="FILE", help="rule file, or - for standard input")
    check.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    check.add_argument("--strict", action="store_true", help="treat warnings as problems (exit 1)")
    check.add_argument("-q", "--quiet", action="store_true", help="no summary line")
    check.set_defaults(handler=_cmd_check)

    fmt = sub.add_parser("fmt", help="print rule files in canonical form",
                         description="Print rule files in the one canonical layout.")
    fmt.add_argument("files", nargs="+", metavar="FILE", help="rule file, or - for standard input")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when a file is not in canonical form")
    mode.add_argument("--write", action="store_true", help="rewrite the files in place")
    fmt.set_defaults(handler=_cmd_fmt)

    for entry in _plugin_commands():
        try:
            register = entry.load()
        except ImportError as error:
            missing = sub.add_parser(entry.name, help="(needs the engine: pip install \"monitors-mcp[engine]\")")
            missing.set_defaults(handler=_missing_engine(entry.name, error))
            continue
        register(sub)
    return parser


def _missing_engine(name: str, error: ImportError):
    def handler(args) -> int:
        raise UsageError(f"`monitors {name}` needs the engine's packages ({error.name or error}); "
                         'install them with: pip install "monitors-mcp[engine]"')
    return handler


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"monitors: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as error:
        print(f"monitors: error: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as error:  # never a traceback at the command line
        print(f"monitors: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_PROBLEMS


if __name__ == "__main__":
    sys.exit(main())
