"""The batch file that collects an IIS SMTP server's configuration, events, logs and mailroot listing.

Python does not run on Windows Server 2003 or XP, so the admin runs this batch file on the server
and copies the folder it writes to a workstation. There `adminkb config read`, `adminkb log read`,
`adminkb mailroot scan` (on a copied mailroot) and `adminkb diagnose` read the copies.

The batch file only reads, with tools that ship with those systems:
- `iiscnfg.vbs /save` (Server 2003 only) writes the in-memory metabase to MetaBase.xml first,
  then `copy` takes MetaBase.xml. IIS 5.1 on XP keeps a binary MetaBase.bin instead, so on XP the
  batch file stores `adsutil.vbs enum` text of the SMTP service for a person to read.
- `cscript eventquery.vbs` (XP Professional and Server 2003; there is no wevtutil before
  Vista) writes the SMTPSVC events of the System log as CSV, in the OEM code page because the
  output is redirected without //U; `adminkb.eventlog` reads it. `wmic nteventlog ... call
  BackupEventlog` saves the whole System log as .evt, which Vista and later convert to .evtx
  with `wevtutil epl System.evt System.evtx /lf:true`.
- A small VBScript run by `cscript` copies the log files changed in the last N days, because
  `forfiles` is missing on XP and `%DATE%` is written differently in each locale.
- `dir /s /a /t:w` lists the mailroot with sizes and last-write times.
"""

from __future__ import annotations

import re
from pathlib import PureWindowsPath

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.termsrv.collect import BATCH_CODE_PAGE, CRLF, CopyBackItem, batch_end, batch_start, escape_echo

FOLDER_PREFIX = "smtp-collect-"
DEFAULT_MAILROOT = r"C:\Inetpub\mailroot"
DEFAULT_LOG_FOLDER = r"%SystemRoot%\System32\LogFiles"
DEFAULT_DAYS = 7
MAX_DAYS = 366


COPY_BACK = (
    CopyBackItem("MetaBase.xml", "collect.item_metabase", False),
    CopyBackItem("adsutil_smtpsvc.txt", "collect.item_adsutil", False),
    CopyBackItem("smtpsvc_events.csv", "collect.item_events_csv", True),
    CopyBackItem("System.evt", "collect.item_evt", False),
    CopyBackItem("logs\\", "collect.item_logs", True),
    CopyBackItem("mailroot_dir.txt", "collect.item_mailroot", True),
    CopyBackItem("ver.txt", "collect.item_ver", True),
    CopyBackItem("log.txt", "collect.item_log", True),
)

# The VBScript that copies files changed in the last N days: arguments are folder, target, days.
_RECENT_COPY_VBS = (
    "Set fso = CreateObject(\"Scripting.FileSystemObject\")",
    "Set args = WScript.Arguments",
    "If Not fso.FolderExists(args(0)) Then WScript.Quit 2",
    "For Each f In fso.GetFolder(args(0)).Files",
    "  If DateDiff(\"d\", f.DateLastModified, Now) <= CInt(args(2)) Then f.Copy args(1) & \"\\\", True",
    "Next",
)


def copy_back_table() -> list[dict[str, str]]:
    """Return the files to copy back, with their descriptions, as rows for a table."""
    return [{message("collect.column.name"): item.file, message("collect.column.description"): item.description}
            for item in COPY_BACK]


def _checked_path(text: str, option: str) -> str:
    # Quotes and the characters cmd treats specially would break out of the quoted path.
    if not text or re.search(r'["&|<>^\r\n]', text):
        raise InputError("collect.bad_path", value=text, option=option, next_key="collect.bad_path_next")
    return str(PureWindowsPath(text))


def _escape_vbs_line(line: str) -> str:
    """Escape the cmd operators that stand outside quoted strings in the VBScript lines."""
    return line.replace("&", "^&").replace("<", "^<").replace(">", "^>")


def collect_batch_text(*, mailroot: str = DEFAULT_MAILROOT, site: int = 1, days: int = DEFAULT_DAYS,
                       log_folder: str = DEFAULT_LOG_FOLDER) -> str:
    """Return the batch file text (CRLF line ends), with its messages in the current language.

    `site` is the virtual server number N of `/LM/SmtpSvc/N` and of the `SMTPSVC<N>` log
    folder under `log_folder`. `days` is how many days of log files to copy (1 to 366).
    """
    if not isinstance(site, int) or not 1 <= site <= 254:
        raise InputError("collect.bad_site", value=site, next_key="collect.bad_site_next")
    if not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InputError("collect.bad_days", value=days, maximum=MAX_DAYS, next_key="collect.bad_days_next")
    mailroot = _checked_path(mailroot, "--mailroot")
    logs = _checked_path(log_folder, "--log-folder") + f"\\SMTPSVC{site}"
    out = "%OUT%"
    vbs = f"{out}\\copy_recent.vbs"
    lines = [
        *batch_start(FOLDER_PREFIX, "collect.batch_purpose", "collect.batch_read_only"),
        f'if not exist "{out}\\logs\\" mkdir "{out}\\logs"',
        f'echo %DATE% %TIME% > "{out}\\log.txt"',
        f'ver > "{out}\\ver.txt"',
        "rem MetaBase.xml (IIS 6.0) or adsutil.vbs text (IIS 5.1 on XP)",
        'if exist "%SystemRoot%\\system32\\iiscnfg.vbs" cscript //nologo "%SystemRoot%\\system32\\iiscnfg.vbs" /save'
        f' >> "{out}\\log.txt" 2>&1',
        'if exist "%SystemRoot%\\system32\\inetsrv\\MetaBase.xml" copy /y'
        f' "%SystemRoot%\\system32\\inetsrv\\MetaBase.xml" "{out}\\MetaBase.xml" >> "{out}\\log.txt"',
        'if not exist "%SystemRoot%\\system32\\inetsrv\\MetaBase.xml" if exist "%SystemDrive%\\Inetpub\\AdminScripts\\adsutil.vbs"'
        f' cscript //nologo "%SystemDrive%\\Inetpub\\AdminScripts\\adsutil.vbs" enum_all /p smtpsvc > "{out}\\adsutil_smtpsvc.txt" 2>&1',
        "rem " + escape_echo(message("collect.batch_events")),
        'cscript //nologo "%SystemRoot%\\system32\\eventquery.vbs" /l system /fi "source eq smtpsvc" /fo csv /v'
        f' > "{out}\\smtpsvc_events.csv" 2>> "{out}\\log.txt"',
        f'if exist "{out}\\System.evt" del "{out}\\System.evt"',
        f'wmic nteventlog where "LogFileName=\'System\'" call BackupEventlog "{out}\\System.evt" >> "{out}\\log.txt" 2>&1',
        "rem " + escape_echo(message("collect.batch_logs", days=days)),
    ]
    # The redirection comes first, so a line that ends in a digit ("Quit 2") is not read as "2>>".
    for index, line in enumerate(_RECENT_COPY_VBS):
        redirect = ">>" if index else ">"
        lines.append(f'{redirect}"{vbs}" echo {_escape_vbs_line(line)}')
    lines += [
        f'cscript //nologo "{vbs}" "{logs}" "{out}\\logs" {days} >> "{out}\\log.txt" 2>&1',
        f'if errorlevel 2 echo {escape_echo(message("collect.batch_no_logs"))} "{logs}" >> "{out}\\log.txt"',
        f'del "{vbs}"',
        f'dir /s /a /-c /t:w "{mailroot}" > "{out}\\mailroot_dir.txt" 2>&1',
        *batch_end("collect.batch_done", "collect.batch_no_folder"),
    ]
    return CRLF.join(lines) + CRLF


def collect_batch_bytes(**options: object) -> bytes:
    """Return the batch file as bytes in the console code page of Traditional Chinese Windows."""
    return collect_batch_text(**options).encode(BATCH_CODE_PAGE)
