"""The batch file that collects what the imaging checks read from an XP master, and what to copy back.

Python does not run on XP, so the admin runs this batch file on the master before Sysprep (from a
USB stick, say) and copies the folder it writes to a workstation. There `adminkb sysprep intelppm`
checks the SYSTEM hive or export, `adminkb.imaging.read_hal_dll` reads the copy of hal.dll, and
`adminkb sysprep lint` checks the copy of sysprep.inf.

The batch file changes nothing on the machine. It uses only commands that XP has:
- `reg save HKLM\\SYSTEM` writes the SYSTEM hive with every control set. reg.exe uses the
  RegSaveKey function, which needs administrator rights (the backup privilege) and fails when
  the file exists, so an old copy is deleted first.
- `reg export HKLM\\SYSTEM` writes the same keys as a .reg file, in case the hive cannot be saved.
  It prompts before overwriting a file, so an old copy is deleted first too.
- `copy` takes hal.dll and, when it exists, C:\\Sysprep\\sysprep.inf; `ver` records the version.
"""

from __future__ import annotations

from adminkb.i18n import message
from adminkb.termsrv.collect import BATCH_CODE_PAGE, CRLF, CopyBackItem, batch_end, batch_start, escape_echo

FOLDER_PREFIX = "imaging-collect-"

COPY_BACK = (
    CopyBackItem("SYSTEM.hiv", "imaging_collect.item_hive", False),
    CopyBackItem("system.reg", "imaging_collect.item_export", False),
    CopyBackItem("hal.dll", "imaging_collect.item_hal", True),
    CopyBackItem("sysprep.inf", "imaging_collect.item_sysprep", False),
    CopyBackItem("ver.txt", "imaging_collect.item_ver", True),
    CopyBackItem("log.txt", "imaging_collect.item_log", True),
)


def collect_batch_text() -> str:
    """Return the batch file text (CRLF line ends), with its messages in the current language."""
    out = "%OUT%"
    failed = escape_echo(message("imaging_collect.batch_failed"))
    lines = [
        *batch_start(FOLDER_PREFIX, "imaging_collect.batch_purpose", "imaging_collect.batch_read_only"),
        f'echo %DATE% %TIME% > "{out}\\log.txt"',
        f'ver > "{out}\\ver.txt"',
        "rem " + escape_echo(message("imaging_collect.batch_hive")),
        f'if exist "{out}\\SYSTEM.hiv" del "{out}\\SYSTEM.hiv"',
        f'reg save HKLM\\SYSTEM "{out}\\SYSTEM.hiv" >> "{out}\\log.txt" 2>&1',
        f'if errorlevel 1 echo {failed} reg save HKLM\\SYSTEM',
        f'if errorlevel 1 echo {failed} reg save HKLM\\SYSTEM >> "{out}\\log.txt"',
        f'if exist "{out}\\system.reg" del "{out}\\system.reg"',
        f'reg export HKLM\\SYSTEM "{out}\\system.reg" >> "{out}\\log.txt" 2>&1',
        f'if errorlevel 1 echo {failed} reg export HKLM\\SYSTEM >> "{out}\\log.txt"',
        f'copy /b /y "%SystemRoot%\\system32\\hal.dll" "{out}\\hal.dll" >> "{out}\\log.txt"',
        f'if exist "%SystemDrive%\\Sysprep\\sysprep.inf" copy /y "%SystemDrive%\\Sysprep\\sysprep.inf"'
        f' "{out}\\sysprep.inf" >> "{out}\\log.txt"',
        f'if not exist "%SystemDrive%\\Sysprep\\sysprep.inf" echo'
        f' {escape_echo(message("imaging_collect.batch_no_sysprep"))} >> "{out}\\log.txt"',
        *batch_end("imaging_collect.batch_done", "imaging_collect.batch_no_folder"),
    ]
    return CRLF.join(lines) + CRLF


def collect_batch_bytes() -> bytes:
    """Return the batch file as bytes in the console code page of Traditional Chinese Windows."""
    return collect_batch_text().encode(BATCH_CODE_PAGE)


def copy_back_rows() -> list[dict[str, object]]:
    """Return the files to copy back with their descriptions, as rows with `file` and `description`."""
    return [{"file": item.file, "description": item.description} for item in COPY_BACK]
