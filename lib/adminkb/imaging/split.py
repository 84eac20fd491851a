"""Split planning: how many Ghost spans or DISM .swm files an image needs, their names, the commands.

Disc capacities are decimal bytes as the disc formats define them; Ghost's -split and DISM's
/FileSize take megabytes, counted here as MiB (1,048,576 bytes), which leaves the larger margin.
NOTE: the documentation consulted does not say which megabyte either tool means.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from adminkb.errors import InputError

MIB = 1024 * 1024
# Ghost 2003 writes spans of at most 2 GB.
GHOST_MAX_SPAN_MB = 2048
# 8.3 names: a base of 1 to 8 characters from the DOS set, and three digits for span numbers.
DOS_NAME = re.compile(r"[A-Z0-9_\-$~!#%&'(){}^@`]{1,8}")
GHOST_SPAN_DIGITS = 3
MAX_GHOST_SPANS = 10 ** GHOST_SPAN_DIGITS - 1


@dataclass(frozen=True)
class Medium:
    """A medium to plan for: its capacity and the part size in MB that fits it with margin."""

    name: str
    capacity_bytes: int
    part_mb: int
    tool: str  # "ghost" or "dism"

    @property
    def part_bytes(self) -> int:
        return self.part_mb * MIB

    @property
    def parts_per_medium(self) -> int:
        return max(1, self.capacity_bytes // self.part_bytes)


MEDIA: dict[str, Medium] = {
    # CD-R 74 min: 333,000 sectors of 2,048 bytes.
    "cd74": Medium("cd74", 333_000 * 2048, 640, "ghost"),
    # CD-R 80 min: 360,000 sectors of 2,048 bytes.
    "cd80": Medium("cd80", 360_000 * 2048, 690, "ghost"),
    "dvd": Medium("dvd", 4_700_372_992, GHOST_MAX_SPAN_MB, "ghost"),
    "dvd-dl": Medium("dvd-dl", 8_543_666_176, GHOST_MAX_SPAN_MB, "ghost"),
    # FAT32 stores files of at most 4 GiB - 1 byte, so DISM splits at 4,000 MB.
    "usb-fat32": Medium("usb-fat32", 4 * 1024 * MIB - 1, 4000, "dism"),
}


@dataclass(frozen=True)
class SplitPlan:
    """The parts an image is split into, how many media they fill, and the commands to run."""

    tool: str
    medium: Medium
    image_bytes: int
    part_mb: int
    parts: tuple[str, ...]
    capture_command: str
    restore_command: str

    @property
    def media_needed(self) -> int:
        if self.tool == "dism":
            # All .swm files go to one FAT32 volume when it is large enough.
            return 1
        return math.ceil(len(self.parts) / self.medium.parts_per_medium)


def ghost_span_names(base: str, count: int) -> tuple[str, ...]:
    """Return Ghost's file names: BASE.GHO, then BASE001.GHS... with the base cut to fit 8.3."""
    base = _dos_base(base)
    if count > MAX_GHOST_SPANS + 1:
        raise InputError("imaging.split.too_many_spans", value=count, maximum=MAX_GHOST_SPANS + 1,
                         next_key="imaging.split.too_many_spans_next")
    stem = base[: 8 - GHOST_SPAN_DIGITS]
    return (f"{base}.GHO", *(f"{stem}{number:03d}.GHS" for number in range(1, count)))


def swm_names(base: str, count: int) -> tuple[str, ...]:
    """Return DISM's split names: base.swm, base2.swm, base3.swm..."""
    if not base or any(character in base for character in '\\/:*?"<>|'):
        raise InputError("imaging.split.bad_swm_name", value=base)
    return (f"{base}.swm", *(f"{base}{number}.swm" for number in range(2, count + 1)))


def _dos_base(base: str) -> str:
    upper = base.upper()
    if not DOS_NAME.fullmatch(upper):
        raise InputError("imaging.split.bad_ghost_name", value=base, next_key="imaging.split.bad_ghost_name_next")
    return upper


def plan_split(image_bytes: int, medium: str, base: str | None = None, folder: str = "D:\\",
               part_mb: int | None = None) -> SplitPlan:
    """Plan how to split an image of `image_bytes` for `medium` (a key of MEDIA).

    `part_mb` overrides the medium's part size. Ghost media give .GHO/.GHS spans and
    ghost commands; "usb-fat32" gives DISM .swm files and Dism commands.
    """
    if medium not in MEDIA:
        raise InputError("imaging.split.unknown_medium", value=medium, choices=", ".join(MEDIA))
    if image_bytes <= 0:
        raise InputError("imaging.split.bad_size", value=image_bytes)
    chosen = MEDIA[medium]
    size_mb = part_mb if part_mb is not None else chosen.part_mb
    limit = GHOST_MAX_SPAN_MB if chosen.tool == "ghost" else chosen.capacity_bytes // MIB
    if not 1 <= size_mb <= limit:
        raise InputError("imaging.split.bad_part_size", value=size_mb, maximum=limit)
    count = max(1, math.ceil(image_bytes / (size_mb * MIB)))
    folder = folder if folder.endswith("\\") else folder + "\\"
    if chosen.tool == "ghost":
        names = ghost_span_names(base or "XP", count)
        capture = (f"ghost -clone,mode=pdump,src=1:1,dst={folder}{names[0]} "
                   f"-split={size_mb} -z9 -sure")
        restore = f"ghost -clone,mode=pload,src={folder}{names[0]}:1,dst=1:1 -sure"
    else:
        names = swm_names(base or "install", count)
        stem = names[0][: -len(".swm")]
        capture = (f"Dism /Split-Image /ImageFile:{folder}{stem}.wim /SWMFile:{folder}{names[0]} "
                   f"/FileSize:{size_mb}")
        restore = (f"Dism /Apply-Image /ImageFile:{folder}{names[0]} /SWMFile:{folder}{stem}*.swm "
                   f"/Index:1 /ApplyDir:C:\\")
    return SplitPlan(chosen.tool, chosen, image_bytes, size_mb, names, capture, restore)
