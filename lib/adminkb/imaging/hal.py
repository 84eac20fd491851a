"""HAL advisor for Windows XP images: can an image move from one machine to another, and how.

Microsoft's rules (KB 309283): ACPI APIC uniprocessor and multiprocessor HALs move between each
other, and so do the non-ACPI APIC (MPS) ones, with UpdateUPHAL or UpdateHAL in sysprep.inf.
An ACPI PIC image goes only to ACPI PIC machines, and no image moves between ACPI and non-ACPI.
Any other move relies on the community method (a Standard PC master and a third-party tool that
forces HAL detection at first boot), which Microsoft does not support.

Microsoft also does not support restoring an image on a computer whose motherboard comes from
another maker than the master's (KB 828287, "Unsupported Sysprep scenarios"), even when the HALs
match. When both machines name their motherboard maker, the advisor applies that rule too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.imaging.sysprep_form import hal_update_line

# hal.inf id -> (Device Manager name, file). STANDARD_PC is this module's own name, because
# hal.inf has no Sysprep id for Standard PC.
HALS: dict[str, tuple[str, str]] = {
    "STANDARD_PC": ("Standard PC", "hal.dll"),
    "MPS_UP": ("MPS Uniprocessor PC", "halapic.dll"),
    "MPS_MP": ("MPS Multiprocessor PC", "halmps.dll"),
    "ACPIPIC_UP": ("Advanced Configuration and Power Interface (ACPI) PC", "halacpi.dll"),
    "ACPIAPIC_UP": ("ACPI Uniprocessor PC", "halaacpi.dll"),
    "ACPIAPIC_MP": ("ACPI Multiprocessor PC", "halmacpi.dll"),
}

SAME = "same"
SUPPORTED = "supported"
COMMUNITY = "community"
# The HALs allow the move, but the motherboards come from different makers.
BOARD_MAKER = "board_maker"


@dataclass(frozen=True)
class Machine:
    """What decides a machine's HAL: ACPI on, an APIC present, and logical processors (with Hyper-Threading)."""

    acpi: bool
    apic: bool
    processors: int = 1
    # The motherboard maker as the BIOS or the case label names it, or None when unknown.
    board_maker: str | None = None

    def hal(self) -> str:
        """Return the hal.inf id of the HAL that XP Setup installs on this machine."""
        if self.processors < 1:
            raise InputError("imaging.hal.bad_processors", value=self.processors)
        multi = self.processors > 1
        if self.acpi and self.apic:
            return "ACPIAPIC_MP" if multi else "ACPIAPIC_UP"
        if self.acpi:
            return "ACPIPIC_UP"
        if self.apic:
            return "MPS_MP" if multi else "MPS_UP"
        return "STANDARD_PC"


@dataclass(frozen=True)
class HalAdvice:
    """The verdict for one move: which rule applies and the sysprep.inf line it needs, if any."""

    source_hal: str
    target_hal: str
    verdict: str
    update_line: str | None
    reason_key: str
    reason_values: dict[str, object] = field(default_factory=dict)

    @property
    def supported(self) -> bool:
        return self.verdict in (SAME, SUPPORTED)

    @property
    def reason(self) -> str:
        """Return the reason for the verdict in the user's language."""
        return message(self.reason_key, **self.reason_values)


# HAL pairs that Microsoft supports moving between with UpdateUPHAL or UpdateHAL.
_FAMILIES = (("ACPIAPIC_UP", "ACPIAPIC_MP"), ("MPS_UP", "MPS_MP"))


def advise_hal(source: Machine, target: Machine) -> HalAdvice:
    """Return whether an image built on `source` can run on `target` under Microsoft's rules.

    A move between matching HALs is supported only between motherboards of one maker. With an
    unknown maker the verdict is same or supported, and its texts state that condition.
    """
    source_hal, target_hal = source.hal(), target.hal()
    if source_hal == target_hal:
        advice = HalAdvice(source_hal, target_hal, SAME, None, "imaging.hal.reason.same")
    else:
        advice = _family_move(source_hal, target_hal)
    if advice is not None:
        if _different_makers(source, target):
            return HalAdvice(source_hal, target_hal, BOARD_MAKER, advice.update_line, "imaging.hal.reason.board_maker",
                             {"source_maker": source.board_maker, "target_maker": target.board_maker})
        return advice
    if source.acpi != target.acpi:
        reason = "imaging.hal.reason.acpi_mismatch"
    elif source_hal == "ACPIPIC_UP" or target_hal == "ACPIPIC_UP":
        reason = "imaging.hal.reason.acpi_pic"
    else:
        reason = "imaging.hal.reason.other"
    return HalAdvice(source_hal, target_hal, COMMUNITY, None, reason)


def _family_move(source_hal: str, target_hal: str) -> HalAdvice | None:
    """Return the supported advice for two HALs of one family (UP and MP), or None for other pairs."""
    for family in _FAMILIES:
        if source_hal in family and target_hal in family:
            key = "UpdateHAL" if target_hal.endswith("_MP") else "UpdateUPHAL"
            return HalAdvice(source_hal, target_hal, SUPPORTED, hal_update_line(key, target_hal),
                             "imaging.hal.reason.family")
    return None


def _different_makers(source: Machine, target: Machine) -> bool:
    """Tell whether both machines name a motherboard maker and the names differ (ignoring case and spaces)."""
    if not (source.board_maker and source.board_maker.strip() and target.board_maker and target.board_maker.strip()):
        return False
    return _maker_key(source.board_maker) != _maker_key(target.board_maker)


def _maker_key(name: str) -> str:
    return "".join(name.split()).casefold()
