"""The `adminkb` command: `adminkb <area> <verb>` for checks and readers, top-level task commands.

Each area lives in its own module here and adds its sub-commands through `register(subparsers)`.
Exit status: 0 all well, 1 the check found problems, 2 the input could not be used. Commands
that use other numbers on purpose (`smtp probe`) document them in their `--help`. Ctrl+C and
SIGTERM stop a command the same way: it cleans up, prints "Interrupted." and exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from adminkb import __version__
from adminkb.errors import AdminKbError, InputError
from adminkb.i18n import message

# Modules under adminkb.cli that add sub-commands, in the order `--help` lists them.
AREA_MODULES = ("lab", "smtp", "log", "mailroot", "dns", "reg", "termsrv", "sysprep", "checklist", "jupyter",
                "config", "export", "diagnose", "run")

# Each area's one-line help in `adminkb --help`. A command imports only its own area's module and
# lists the others from here, because some areas pull in nbconvert, matplotlib or pandas, which
# take seconds to import on a slow machine. tests/test_cli.py checks these against the help each
# module registers.
AREA_HELP_KEYS = {
    "lab": "lab.cli.help",
    "smtp": "smtp.cli.area_help",
    "log": "w3c.cli.area_help",
    "mailroot": "mailroot.cli.area_help",
    "dns": "dnscheck.cli.area_help",
    "reg": "regfile.cli.area_help",
    "termsrv": "termsrv.cli.area_help",
    "sysprep": "imaging_sysprep.cli.area_help",
    "checklist": "imaging_checklist.cli.help",
    "jupyter": "envsetup.area_help",
    "config": "config.cli.area_help",
    "export": "export.cli.help",
    "diagnose": "diagnose.cli.help",
    "run": "recorder.cli.help",
}

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_BAD_INPUT = 2
# The shell's status for a command stopped by Ctrl+C (128 + SIGINT); SIGTERM gets it too.
EXIT_INTERRUPTED = 130

# Range of every network --timeout, in seconds. Below 0.1 s no reply can arrive, and above an
# hour a hung step would look like a hang of adminkb itself.
MIN_TIMEOUT_SECONDS = 0.1
MAX_TIMEOUT_SECONDS = 3600.0

# Largest IIS site or SMTP virtual server number: the metabase stores it as an unsigned 32-bit DWORD.
MAX_SITE_ID = 4_294_967_295


# argparse's own texts (section titles, usage errors), translated through the catalog. argparse
# looks them up with gettext by their English source text, through its module-level `_`.
ARGPARSE_TEXTS = {
    "usage: ": "cli.argparse.usage",
    "positional arguments": "cli.argparse.positional",
    "options": "cli.argparse.options",
    "the following arguments are required: %s": "cli.argparse.required",
    "unrecognized arguments: %s": "cli.argparse.unrecognized",
    "invalid choice: %(value)r (choose from %(choices)s)": "cli.argparse.invalid_choice",
    "expected one argument": "cli.argparse.expected_one",
    "argument %(argument_name)s: %(message)s": "cli.argparse.argument_error",
    "invalid %(type)s value: %(value)r": "cli.argparse.invalid_value",
}


def _translate_argparse(text: str) -> str:
    key = ARGPARSE_TEXTS.get(text)
    return message(key) if key else text


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose own texts (usage, errors) come from the catalog.

    Prefix matching of long options is off, so a typo such as `--form` is reported as unknown
    instead of being taken for `--format`.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, text: str) -> None:  # noqa: D401 - argparse's name
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, message("cli.usage_error", prog=self.prog, detail=text) + "\n")


def make_console_safe() -> None:
    """Make stdout and stderr replace what the console cannot encode (cp950, for example)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="replace")
            except (ValueError, OSError):
                # A stream that is already closed or detached cannot be reconfigured.
                pass


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Build the `adminkb` parser with every area's sub-commands, or only those of area `only`.

    With `only`, the other areas appear in the command list with their one-line help but
    without their options, so that their modules are not imported.

    NOTE: argparse's own texts are translated by replacing its module-level gettext function.
    That affects every parser in this process, which is safe only because the `adminkb`
    command builds no other parser.
    """
    argparse._ = _translate_argparse  # type: ignore[attr-defined]
    parser = _Parser(prog="adminkb", description=message("cli.description"),
                     formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    parser.add_argument("-h", "--help", action="help", help=message("cli.help_option"))
    parser.add_argument("--version", action="version", version=f"adminkb {__version__}",
                        help=message("cli.version_option"))
    parser.add_argument("-v", "--verbose", action="count", default=0, help=message("cli.verbose_option"))
    subparsers = parser.add_subparsers(dest="command", metavar=message("cli.command_metavar"),
                                       parser_class=_Parser)
    subparsers.required = True
    for name in AREA_MODULES:
        if only is None or name == only:
            module = importlib.import_module(f"adminkb.cli.{name}")
            module.register(subparsers)
        else:
            subparsers.add_parser(name, add_help=False, help=message(AREA_HELP_KEYS[name]))
    _escape_help_percent(parser)
    return parser


# A `%%` pair (already escaped) or a lone `%` that does not start an argparse `%(name)s`.
_PERCENT = re.compile(r"%%|%(?!\()")


def _escape_percent(text: str) -> str:
    return _PERCENT.sub("%%", text)


def _escape_help_percent(parser: argparse.ArgumentParser) -> None:
    """Double each lone `%` in help texts, since argparse %-formats them (`%SystemRoot%` would fail)."""
    for action in parser._actions:
        if action.help and action.help is not argparse.SUPPRESS:
            action.help = _escape_percent(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _escape_help_percent(child)
            for choice in action._choices_actions:
                if choice.help:
                    choice.help = _escape_percent(choice.help)


def with_cli_option(error: AdminKbError, options: dict[str, str]) -> AdminKbError:
    """Return `error` (an InputError or a LabError) with the Python parameters it names replaced by CLI option names.

    The values replaced are `option` and any other whose name ends in `_option`, when `options`
    maps them (`{"send=True": "--send"}`, say).
    """
    named = {name: value for name, value in error.values.items()
             if (name == "option" or name.endswith("_option")) and isinstance(value, str) and value in options}
    if not named:
        return error
    values = {name: value for name, value in error.values.items() if name not in ("value", "where")}
    values.update({name: options[value] for name, value in named.items()})
    return type(error)(error.key, value=error.value, where=error.where, next_key=error.next_key, **values)


def bounded_number(kind: type[int] | type[float], minimum: float, maximum: float):
    """Return an argparse `type=` that parses `kind` and accepts only `minimum <= value <= maximum`.

    NaN, infinities and numbers too large for the code that uses them are rejected (a timeout of
    1e308 seconds overflows time_t). The catalog message shows the value as typed and the allowed
    range, and argparse then names the option and ends with exit status 2.
    """

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or not minimum <= value <= maximum:
            key = "cli.number_out_of_range_integer" if kind is int else "cli.number_out_of_range"
            raise argparse.ArgumentTypeError(message(key, value=text, minimum=_bound_text(kind, minimum),
                                                     maximum=_bound_text(kind, maximum)))
        return value

    parse.__name__ = kind.__name__
    return parse


def _bound_text(kind: type[int] | type[float], bound: float) -> str:
    return str(int(bound)) if kind is int else f"{bound:g}"


def add_help_option(parser: argparse.ArgumentParser) -> None:
    """Add a `-h/--help` option whose text is in the user's language."""
    parser.add_argument("-h", "--help", action="help", help=message("cli.help_option"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    make_console_safe()
    # Installed first, so that SIGTERM while the command's modules load also ends with 130.
    restore_handlers = interrupt_on_terminate()
    try:
        return _run_command(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print(message("cli.interrupted"), file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        restore_handlers()


def _run_command(words: list[str]) -> int:
    """Parse `words`, run the command's handler and turn its errors into an exit status."""
    undecodable = next((word for word in words if _has_undecodable_bytes(word)), None)
    if undecodable is not None:
        error = InputError("cli.argument_not_utf8", value=_escaped_bytes(undecodable),
                           next_key="cli.argument_not_utf8_next")
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return error.exit_status
    # The area is the first word that is not an option (`adminkb -v mailroot scan ...`).
    area = next((word for word in words if not word.startswith("-")), "")
    parser = build_parser(only=area)
    arguments = parser.parse_args(words)
    level = logging.WARNING - 10 * min(arguments.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(arguments.handler(arguments) or 0)
    except AdminKbError as error:
        print(message("cli.error_prefix", text=str(error)), file=sys.stderr)
        return error.exit_status
    except BrokenPipeError:
        # The reader went away (`adminkb ... | head`): not an error of ours. Point stdout at
        # devnull so that the interpreter's final flush does not raise a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def interrupt_on_terminate() -> Callable[[], None]:
    """Make SIGTERM (and Ctrl+Break on Windows) raise KeyboardInterrupt; return a function that undoes it.

    Python's default for SIGTERM ends the process at once and runs no `finally` block. A
    half-written temporary file then stays, and the Jupyter kernel of `adminkb run` or `export`
    exits without removing its mail lab's temporary folder. As a KeyboardInterrupt, SIGTERM takes
    the clean-up path of Ctrl+C instead. `adminkb lab` installs its own handlers while it runs.
    Signal handlers can be set only in the main thread, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    numbers = [signal.SIGTERM]
    if hasattr(signal, "SIGBREAK"):
        numbers.append(signal.SIGBREAK)
    previous = {number: signal.signal(number, signal.default_int_handler) for number in numbers}

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    return restore


def _has_undecodable_bytes(word: str) -> bool:
    """Return whether `word` contains bytes that were not UTF-8, which Python keeps as lone surrogates.

    A Big5 console or batch file passes such bytes on Linux and macOS. Passed on, they make any
    later encoding to UTF-8 (a file, a log, a notebook parameter) fail with UnicodeEncodeError.
    """
    return any(0xDC80 <= ord(character) <= 0xDCFF for character in word)


def _escaped_bytes(word: str) -> str:
    """Return `word` with its undecodable bytes written as \\xNN, for an error message."""
    return word.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")


if __name__ == "__main__":  # pragma: no cover - `python -m adminkb.cli`
    sys.exit(main())
