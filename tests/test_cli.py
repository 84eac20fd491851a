"""The `adminkb` command frame: help in the user's language, exit statuses, safe console output."""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from adminkb import output
from adminkb.cli import build_parser, interrupt_on_terminate, main


def run_cli(*arguments: str, language: str = "zh-TW", encoding: str | None = None):
    environment = dict(os.environ, ADMINKB_LANG=language)
    if encoding:
        environment["PYTHONIOENCODING"] = encoding
    return subprocess.run([sys.executable, "-m", "adminkb", *arguments], capture_output=True,
                          timeout=60, env=environment)


def test_help_in_zh_tw():
    result = run_cli("--help")
    assert result.returncode == 0
    text = result.stdout.decode("utf-8")
    assert "結束代碼：0 一切正常，1 檢查發現問題，2 輸入無法使用" in text
    assert "顯示這段說明後結束" in text


def test_help_in_english():
    result = run_cli("--help", language="en")
    text = result.stdout.decode("utf-8")
    assert "Exit status: 0 all well, 1 the check found problems, 2 the input could not be used" in text


def test_unknown_command_exits_2():
    result = run_cli("no-such-area")
    assert result.returncode == 2
    assert "參數錯誤" in result.stderr.decode("utf-8")


def test_missing_command_exits_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2


def test_cp950_console_never_crashes():
    # cp950 has no emoji: after make_console_safe() it prints "?" in its place instead of raising.
    script = "from adminkb.cli import make_console_safe; make_console_safe(); print('轉送 \\U0001F600 ok')"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60,
                            env=dict(os.environ, PYTHONIOENCODING="cp950"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "轉送 ? ok".encode("cp950")


def test_cp950_help():
    result = run_cli("--help", encoding="cp950")
    assert result.returncode == 0
    assert "結束代碼".encode("cp950") in result.stdout


def test_ascii_console_replaces_chinese():
    result = run_cli("--help", encoding="ascii")
    assert result.returncode == 0
    assert b"adminkb" in result.stdout
    assert b"?" in result.stdout


def test_table_aligns_chinese():
    rows = [{"項目": "轉送", "結果": "ok"}, {"項目": "Relay", "結果": "problem"}]
    lines = output.render_table(rows, ["項目", "結果"]).splitlines()
    # "Relay" is 5 columns wide, "轉送" 4: the second column starts at column 7 on every line.
    second_column = [lines[0].index("結果"), lines[2].index("ok"), lines[3].index("problem")]
    starts = [output.display_width(line[:index]) for line, index in zip([lines[0], lines[2], lines[3]], second_column)]
    assert starts == [7, 7, 7]
    assert lines[1] == "-----  -------"


def test_table_multiline_cell():
    text = output.render_table([{"a": "one\ntwo", "b": "x"}], ["a", "b"])
    assert text.splitlines()[2:] == ["one  x", "two"]


def test_table_escapes_control_characters():
    # A Subject of "=?utf-8?Q?a=1B[31mred?=" decodes to an ANSI colour sequence.
    text = output.render_table([{"a": "a\x1b[31mred\x9b2J\ttab\x00", "b": "x"}], ["a", "b"])
    assert "\x1b" not in text
    assert "\x9b" not in text
    assert "\x00" not in text
    assert text.splitlines()[2] == "a\\x1b[31mred\\x9b2J tab\\x00  x"


def test_table_escapes_bidi_override():
    text = output.render_table([{"a": "invoice\u202efdp.exe"}], ["a"])
    assert "\u202e" not in text
    assert text.splitlines()[2] == "invoice\\u202efdp.exe"


def test_blocks_escape_control_characters():
    text = output.render_blocks([{"a": "ok\x1b]0;title\x07"}], ["a"])
    assert "\x1b" not in text
    assert "\\x1b]0;title\\x07" in text


def test_blocks_align_values(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "zh-TW")
    rows = [{"step": "1", "command": "copy a b\ncopy c d", "check": None}, {"step": "2", "command": "", "check": "ok"}]
    text = output.render_blocks(rows, ["step", "command", "check"], {"step": "步驟", "command": "命令", "check": "檢查結果"})
    first, second = text.split("\n\n")
    # The widest title, 檢查結果, takes 8 columns and its colon 2, so values start at column 10.
    assert first.splitlines() == ["步驟：    1", "命令：    copy a b", "          copy c d", "檢查結果：-"]
    assert second.splitlines() == ["步驟：    2", "命令：", "檢查結果：ok"]


def test_blocks_english_colon(monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    assert output.render_blocks([{"a": "x"}], ["a"], {"a": "Reply"}) == "Reply: x"
    assert output.render_blocks([], ["a"]) == ""


def test_non_utf8_argument_rejected(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ADMINKB_LANG", "en")
    # The Big5 bytes of 許功 as Linux hands them to Python: undecodable bytes become lone surrogates.
    big5 = b"\xb3\x5c\xa5\x5c".decode("utf-8", "surrogateescape")
    state = tmp_path / "checklists"
    status = main(["checklist", "pc01", "--state-dir", str(state), "--tick", "updates", "--note", big5])
    errors = capsys.readouterr().err
    assert status == 2
    assert "\\xb3\\\\xa5\\ contains bytes that are not UTF-8" in errors
    assert "Next step: Switch the terminal" in errors
    assert "Traceback" not in errors
    assert not state.exists()


def test_json_keeps_chinese():
    assert json.loads(output.render_json({"結果": "轉送被拒"})) == {"結果": "轉送被拒"}
    assert "轉送被拒" in output.render_json({"結果": "轉送被拒"})


def test_csv_has_bom_and_crlf():
    text = output.render_csv([{"a": "轉送", "b": None}], ["a", "b"])
    assert text.startswith("\ufeffa,b\r\n")
    assert text.endswith("轉送,\r\n")


def all_parsers(parser, path=()):
    """Yield every parser and sub-parser of the command with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from all_parsers(child, (*path, name))


@pytest.mark.parametrize("language", ["zh-TW", "en"])
def test_every_help_renders(monkeypatch, language):
    monkeypatch.setenv("ADMINKB_LANG", language)
    parsers = list(all_parsers(build_parser()))
    assert len(parsers) > 20
    for path, parser in parsers:
        text = parser.format_help()
        assert text.strip(), f"adminkb {' '.join(path)} has an empty help"


def test_closed_pipe_ends_quietly(tmp_path):
    # `adminkb reg read big.reg | head -1`: the reader closes the pipe after one line. The table is
    # far larger than a pipe buffer, so the command meets the closed pipe while still writing.
    lines = ["Windows Registry Editor Version 5.00", "", r"[HKEY_LOCAL_MACHINE\SOFTWARE\Example]"]
    lines += [f'"Value{number:05d}"="{"x" * 40}"' for number in range(5000)]
    export = tmp_path / "big.reg"
    export.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-16"))
    process = subprocess.Popen([sys.executable, "-m", "adminkb", "reg", "read", str(export)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    status = process.wait(timeout=60)
    assert first.strip()
    assert b"Traceback" not in stderr, stderr.decode(errors="replace")
    assert status == 141


def test_csv_on_cp950_console():
    # On Windows stdout is encoded in cp950 even when redirected to a file; CSV must still be the
    # UTF-8 with byte-order mark that Excel reads, so it bypasses the console's encoding.
    export = Path(__file__).resolve().parents[1] / "data" / "reg" / "version5_utf8_bom.reg"
    result = run_cli("reg", "read", str(export), "--format", "csv", encoding="cp950")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"\xef\xbb\xbf")
    text = result.stdout.decode("utf-8-sig")
    assert text.splitlines()[0] == "line,key,name,type,value"
    assert re.search(r"[\u4e00-\u9fff]", text), text


def test_area_help_keys_match_modules():
    registered = {choice.dest: choice.help for action in build_parser()._actions
                  if isinstance(action, argparse._SubParsersAction) for choice in action._choices_actions}
    from adminkb.cli import AREA_HELP_KEYS, AREA_MODULES
    from adminkb.i18n import message
    assert sorted(AREA_HELP_KEYS) == sorted(AREA_MODULES)
    for area, key in AREA_HELP_KEYS.items():
        assert registered[area] == message(key).replace("%", "%%"), area


def test_command_imports_own_area_only():
    # nbconvert (through nbformat and jsonschema) and matplotlib take seconds to import; a
    # command of another area must not pay for them.
    script = ("import sys\nfrom adminkb.cli import main\nmain(['reg', 'read', sys.argv[1]])\n"
              "heavy = ('nbformat', 'nbconvert', 'matplotlib', 'adminkb.export')\n"
              "print(sorted(name for name in heavy if name in sys.modules), file=sys.stderr)\n")
    export = Path(__file__).resolve().parents[1] / "data" / "reg" / "all_value_types.reg"
    result = subprocess.run([sys.executable, "-c", script, str(export)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().strip().splitlines()[-1] == "[]"


def test_with_cli_option_maps_every_option_value():
    from adminkb.cli import with_cli_option
    from adminkb.errors import LabError

    error = LabError("smtp.input.send_required", value="data", option="send=True", quit_option="quit_after",
                     next_key="smtp.input.send_required_next")
    mapped = with_cli_option(error, {"send=True": "--send", "quit_after": "--quit-after"})
    assert isinstance(mapped, LabError)
    assert mapped.values["option"] == "--send"
    assert mapped.values["quit_option"] == "--quit-after"
    assert mapped.value == "data"
    assert mapped.next_key == "smtp.input.send_required_next"
    assert with_cli_option(error, {"other": "--other"}) is error


@pytest.mark.skipif(os.name == "nt", reason="raise_signal(SIGTERM) ends the process on Windows")
def test_sigterm_raises_keyboard_interrupt():
    before = signal.getsignal(signal.SIGTERM)
    restore = interrupt_on_terminate()
    try:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.skipif(os.name == "nt", reason="raise_signal(SIGTERM) ends the process on Windows")
def test_sigterm_during_command_exits_130(monkeypatch, capsys):
    def terminated(arguments):
        signal.raise_signal(signal.SIGTERM)
        return 0

    monkeypatch.setattr("adminkb.cli.reg.run_read", terminated)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["reg", "read", "x.reg"]) == 130
    assert "已中斷。" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
