"""The batch file that collects the Remote Desktop state from a Windows XP machine, and what to copy back.

Python does not run on XP, so the admin runs this batch file there (from a USB stick, say), copies
the folder it writes to a workstation, and reads it with `adminkb termsrv state` and
`adminkb termsrv check`. The batch file only reads: `reg export`, `copy` into its own folder,
`dir` and `ver`. XP has no `certutil -hashfile` by default, so the SHA-256 hashes are computed on
the workstation from the copies. When Microsoft's File Checksum Integrity Verifier (fciv.exe,
KB 841290, MD5 and SHA-1 only) is on the PATH, the batch file also records SHA-1 hashes on the
machine itself, to compare with the copies.
"""

from __future__ import annotations

from dataclasses import dataclass

from adminkb.i18n import message
from adminkb.termsrv.state import POLICY, TERMINAL_SERVER, WINLOGON

CRLF = "\r\n"
# Traditional Chinese XP consoles run in code page 950; English text stays ASCII in it.
BATCH_CODE_PAGE = "cp950"
FOLDER_PREFIX = "termsrv-collect-"

# (reg.exe key name, file name in the output folder)
EXPORTS = (
    (TERMINAL_SERVER, "terminal_server.reg"),
    (WINLOGON, "winlogon.reg"),
    (POLICY, "ts_policy.reg"),
)
# (location on XP, file name in the output folder): the copies that Windows File Protection uses.
DLL_COPIES = (
    (r"%SystemRoot%\system32\termsrv.dll", "system32_termsrv.dll"),
    (r"%SystemRoot%\system32\dllcache\termsrv.dll", "dllcache_termsrv.dll"),
    (r"%SystemRoot%\ServicePackFiles\i386\termsrv.dll", "servicepackfiles_termsrv.dll"),
)


@dataclass(frozen=True)
class CopyBackItem:
    """A file or folder that a collection batch file writes, which the admin copies back to the workstation."""

    file: str
    description_key: str
    always_present: bool

    @property
    def description(self) -> str:
        return message(self.description_key)


COPY_BACK = (
    CopyBackItem("terminal_server.reg", "termsrv.collect.item_terminal_server", True),
    CopyBackItem("winlogon.reg", "termsrv.collect.item_winlogon", True),
    CopyBackItem("ts_policy.reg", "termsrv.collect.item_policy", False),
    CopyBackItem("system32_termsrv.dll", "termsrv.collect.item_system32", True),
    CopyBackItem("dllcache_termsrv.dll", "termsrv.collect.item_dllcache", False),
    CopyBackItem("servicepackfiles_termsrv.dll", "termsrv.collect.item_servicepackfiles", False),
    CopyBackItem("dir.txt", "termsrv.collect.item_dir", True),
    CopyBackItem("ver.txt", "termsrv.collect.item_ver", True),
    CopyBackItem("sha1.txt", "termsrv.collect.item_sha1", False),
    CopyBackItem("log.txt", "termsrv.collect.item_log", True),
)


def _short_key(key: str) -> str:
    # reg.exe accepts the short root name; .reg files and the model use the long one.
    return key.replace("HKEY_LOCAL_MACHINE\\", "HKLM\\", 1)


def escape_echo(text: str) -> str:
    """Escape text for an `echo` line of a batch file, so that cmd prints it as it is."""
    text = text.replace("%", "%%")
    for character in "^&|<>()":
        text = text.replace(character, "^" + character)
    return text


def batch_start(folder_prefix: str, purpose_key: str, read_only_key: str) -> list[str]:
    """Return the first lines of a collect batch file: comments and the output folder in %OUT%.

    The folder is `folder_prefix` plus the computer name, beside the batch file. When it cannot
    be created, the batch file jumps to its `:no_folder` label.
    """
    out = "%OUT%"
    return [
        "@echo off",
        "rem " + escape_echo(message(purpose_key)),
        "rem " + escape_echo(message(read_only_key)),
        "setlocal",
        f'set "OUT=%~dp0{folder_prefix}%COMPUTERNAME%"',
        f'if not exist "{out}\\" mkdir "{out}"',
        f'if not exist "{out}\\" goto :no_folder',
    ]


def batch_end(done_key: str, no_folder_key: str) -> list[str]:
    """Return the closing lines of a collect batch file: the done message and the `:no_folder` label."""
    out = "%OUT%"
    return [
        "echo " + escape_echo(message(done_key)),
        f'echo "{out}"',
        "endlocal",
        "goto :eof",
        "",
        ":no_folder",
        "echo " + escape_echo(message(no_folder_key)),
        f'echo "{out}"',
        "endlocal",
        "exit /b 1",
    ]


def collect_batch_text() -> str:
    """Return the batch file text (CRLF line ends), with its messages in the current language."""
    out = "%OUT%"
    lines = [
        *batch_start(FOLDER_PREFIX, "termsrv.collect.batch_purpose", "termsrv.collect.batch_read_only"),
        f'echo %DATE% %TIME% > "{out}\\log.txt"',
        f'ver > "{out}\\ver.txt"',
    ]
    for key, file_name in EXPORTS:
        lines.append(f'call :export "{_short_key(key)}" {file_name}')
    for location, file_name in DLL_COPIES:
        lines.append(f'call :copy_dll "{location}" {file_name}')
    listed = " ".join(f'"{location}"' for location, _ in DLL_COPIES)
    lines += [
        f'dir {listed} > "{out}\\dir.txt" 2>&1',
        'set "FCIV="',
        'for %%I in (fciv.exe) do set "FCIV=%%~$PATH:I"',
        "if not defined FCIV goto :no_fciv",
        f'"%FCIV%" "{out}" -type *.dll -sha1 > "{out}\\sha1.txt"',
        "goto :done",
        ":no_fciv",
        "echo " + escape_echo(message("termsrv.collect.batch_no_fciv")),
        f'echo {escape_echo(message("termsrv.collect.batch_no_fciv"))} >> "{out}\\log.txt"',
        ":done",
        *batch_end("termsrv.collect.batch_done", "termsrv.collect.batch_no_folder"),
        "",
        # reg export prompts before it overwrites a file unless given /y, so an old copy is removed first.
        # NOTE: whether XP's reg.exe accepts /y is unconfirmed, so the batch file does not use it.
        ":export",
        f'if exist "{out}\\%~2" del "{out}\\%~2"',
        f'reg export %1 "{out}\\%~2" >> "{out}\\log.txt" 2>&1',
        f'if errorlevel 1 echo {escape_echo(message("termsrv.collect.batch_export_failed"))} %1 >> "{out}\\log.txt"',
        "goto :eof",
        "",
        ":copy_dll",
        f'if not exist %1 echo {escape_echo(message("termsrv.collect.batch_missing"))} %1 >> "{out}\\log.txt"',
        "if not exist %1 goto :eof",
        f'copy /b /y %1 "{out}\\%~2" >> "{out}\\log.txt"',
        "goto :eof",
    ]
    return CRLF.join(lines) + CRLF


def collect_batch_bytes() -> bytes:
    """Return the batch file as bytes in the console code page of Traditional Chinese Windows."""
    return collect_batch_text().encode(BATCH_CODE_PAGE)
