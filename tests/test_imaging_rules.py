"""Split planner and HAL advisor: tables of cases with the expected names, counts and verdicts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adminkb.errors import InputError
from adminkb.i18n import message
from adminkb.imaging.hal import BOARD_MAKER, COMMUNITY, SAME, SUPPORTED, Machine, advise_hal
from adminkb.imaging.split import MEDIA, MIB, ghost_span_names, plan_split, swm_names
from adminkb.imaging.sysprep import lint_text

GB = 1_000_000_000

# (image bytes, medium, base name, expected part count, expected media count)
SPLIT_CASES = [
    (600 * MIB, "cd74", "XP", 1, 1),
    (640 * MIB, "cd74", "XP", 1, 1),
    (640 * MIB + 1, "cd74", "XP", 2, 2),
    (5 * GB, "cd74", "WINXPSP3", 8, 8),
    (5 * GB, "cd80", "WINXPSP3", 7, 7),
    (2048 * MIB, "dvd", "XP", 1, 1),
    (4 * 1024 * MIB, "dvd", "XP", 2, 1),
    (5 * GB, "dvd", "XP", 3, 2),
    (5 * GB, "dvd-dl", "XP", 3, 1),
    (7 * 1024 * MIB, "dvd-dl", "XP", 4, 2),
    (3 * GB, "usb-fat32", None, 1, 1),
    (4000 * MIB + 1, "usb-fat32", None, 2, 1),
    (9 * GB, "usb-fat32", None, 3, 1),
]


@pytest.mark.parametrize("image_bytes, medium, base, parts, media", SPLIT_CASES)
def test_split_counts(image_bytes, medium, base, parts, media):
    plan = plan_split(image_bytes, medium, base=base)
    assert len(plan.parts) == parts
    assert plan.media_needed == media


@pytest.mark.parametrize("medium", sorted(MEDIA))
def test_medium_parts_fit(medium):
    chosen = MEDIA[medium]
    assert chosen.part_bytes * chosen.parts_per_medium <= chosen.capacity_bytes


def test_ghost_names_8_3():
    names = ghost_span_names("winxpsp3", 4)
    assert names == ("WINXPSP3.GHO", "WINXP001.GHS", "WINXP002.GHS", "WINXP003.GHS")
    for name in names:
        stem, extension = name.split(".")
        assert len(stem) <= 8
        assert len(extension) == 3


def test_ghost_short_base_kept():
    assert ghost_span_names("XP", 3) == ("XP.GHO", "XP001.GHS", "XP002.GHS")


def test_swm_names_numbered():
    assert swm_names("install", 3) == ("install.swm", "install2.swm", "install3.swm")


def test_ghost_commands():
    plan = plan_split(5 * GB, "cd74", base="XP", folder="E:\\images")
    assert plan.capture_command == "ghost -clone,mode=pdump,src=1:1,dst=E:\\images\\XP.GHO -split=640 -z9 -sure"
    assert plan.restore_command == "ghost -clone,mode=pload,src=E:\\images\\XP.GHO:1,dst=1:1 -sure"


def test_dism_commands():
    plan = plan_split(9 * GB, "usb-fat32", folder="D:\\sources")
    assert plan.capture_command == ("Dism /Split-Image /ImageFile:D:\\sources\\install.wim "
                                    "/SWMFile:D:\\sources\\install.swm /FileSize:4000")
    assert "/SWMFile:D:\\sources\\install*.swm" in plan.restore_command


def test_part_size_override():
    plan = plan_split(3000 * MIB, "dvd", base="XP", part_mb=1000)
    assert len(plan.parts) == 3
    assert "-split=1000" in plan.capture_command


@pytest.mark.parametrize("arguments, key", [
    ((100, "floppy"), "imaging.split.unknown_medium"),
    ((0, "cd74"), "imaging.split.bad_size"),
    ((-5, "dvd"), "imaging.split.bad_size"),
])
def test_split_rejects_bad_input(arguments, key):
    with pytest.raises(InputError) as raised:
        plan_split(*arguments)
    assert raised.value.key == key


def test_ghost_span_over_2gb_rejected():
    with pytest.raises(InputError) as raised:
        plan_split(5 * GB, "dvd", part_mb=4096)
    assert raised.value.key == "imaging.split.bad_part_size"


@pytest.mark.parametrize("base", ["WINDOWSXP1", "XP.GHO", "", "XP IMAGE"])
def test_ghost_bad_name_rejected(base):
    with pytest.raises(InputError) as raised:
        ghost_span_names(base, 2)
    assert raised.value.key == "imaging.split.bad_ghost_name"


def test_ghost_too_many_spans():
    with pytest.raises(InputError) as raised:
        plan_split(2000 * GB, "cd74", base="XP", part_mb=1)
    assert raised.value.key == "imaging.split.too_many_spans"


def test_swm_bad_name_rejected():
    with pytest.raises(InputError):
        swm_names("in:stall", 2)


# HAL advisor: (source machine, target machine, verdict, expected sysprep.inf line or None).
ACPI_UP = Machine(acpi=True, apic=True, processors=1)
ACPI_MP = Machine(acpi=True, apic=True, processors=2)
ACPI_PIC = Machine(acpi=True, apic=False)
MPS_UP = Machine(acpi=False, apic=True, processors=1)
MPS_MP = Machine(acpi=False, apic=True, processors=4)
STANDARD = Machine(acpi=False, apic=False)

HAL_CASES = [
    (ACPI_UP, ACPI_UP, SAME, None),
    (ACPI_UP, ACPI_MP, SUPPORTED, 'UpdateHAL = "ACPIAPIC_MP,%WINDIR%\\Inf\\Hal.inf"'),
    (ACPI_MP, ACPI_UP, SUPPORTED, 'UpdateUPHAL = "ACPIAPIC_UP,%WINDIR%\\Inf\\Hal.inf"'),
    (MPS_UP, MPS_MP, SUPPORTED, 'UpdateHAL = "MPS_MP,%WINDIR%\\Inf\\Hal.inf"'),
    (MPS_MP, MPS_UP, SUPPORTED, 'UpdateUPHAL = "MPS_UP,%WINDIR%\\Inf\\Hal.inf"'),
    (ACPI_PIC, ACPI_PIC, SAME, None),
    (ACPI_PIC, ACPI_UP, COMMUNITY, None),
    (ACPI_MP, ACPI_PIC, COMMUNITY, None),
    (ACPI_UP, MPS_UP, COMMUNITY, None),
    (MPS_MP, ACPI_MP, COMMUNITY, None),
    (STANDARD, ACPI_UP, COMMUNITY, None),
    (STANDARD, MPS_UP, COMMUNITY, None),
]


@pytest.mark.parametrize("source, target, verdict, line", HAL_CASES)
def test_hal_advice(source, target, verdict, line):
    advice = advise_hal(source, target)
    assert advice.verdict == verdict
    assert advice.update_line == line
    assert advice.supported == (verdict != COMMUNITY)
    assert message(advice.reason_key).strip()


@pytest.mark.parametrize("source, target, verdict, line", [case for case in HAL_CASES if case[3]])
def test_hal_line_passes_linter(source, target, verdict, line):
    text = f"[Unattended]\r\n{line}\r\n"
    assert lint_text(text).findings == []


# Motherboard makers (KB 828287): a move between matching HALs is supported only on one maker's boards.

def test_different_board_makers_not_supported():
    advice = advise_hal(replace(ACPI_UP, board_maker="ASUS"), replace(ACPI_MP, board_maker="Gigabyte"))
    assert advice.verdict == BOARD_MAKER
    assert advice.supported is False
    assert advice.update_line == 'UpdateHAL = "ACPIAPIC_MP,%WINDIR%\\Inf\\Hal.inf"'
    assert "ASUS" in advice.reason
    assert "Gigabyte" in advice.reason
    assert "KB 828287" in advice.reason


def test_same_hal_different_makers_not_supported():
    advice = advise_hal(replace(ACPI_UP, board_maker="Intel"), replace(ACPI_UP, board_maker="MSI"))
    assert advice.verdict == BOARD_MAKER
    assert advice.update_line is None


@pytest.mark.parametrize("source_maker, target_maker", [("ASUS", "asus"), ("Micro-Star ", "micro-star"),
                                                        (None, "ASUS"), ("ASUS", None), ("", "ASUS")])
def test_board_maker_same_or_unknown_supported(source_maker, target_maker):
    advice = advise_hal(replace(ACPI_UP, board_maker=source_maker), replace(ACPI_MP, board_maker=target_maker))
    assert advice.verdict == SUPPORTED


def test_supported_reason_states_board_condition():
    for target in (ACPI_UP, ACPI_MP):
        reason = advise_hal(ACPI_UP, target).reason
        assert "主機板" in reason
        assert "KB 828287" in reason


def test_community_move_ignores_board_maker():
    advice = advise_hal(replace(ACPI_UP, board_maker="ASUS"), replace(MPS_UP, board_maker="Gigabyte"))
    assert advice.verdict == COMMUNITY


def test_machine_hal_names():
    assert ACPI_UP.hal() == "ACPIAPIC_UP"
    assert ACPI_MP.hal() == "ACPIAPIC_MP"
    assert ACPI_PIC.hal() == "ACPIPIC_UP"
    assert MPS_UP.hal() == "MPS_UP"
    assert MPS_MP.hal() == "MPS_MP"
    assert STANDARD.hal() == "STANDARD_PC"


def test_machine_zero_processors_rejected():
    with pytest.raises(InputError) as raised:
        Machine(acpi=True, apic=True, processors=0).hal()
    assert raised.value.key == "imaging.hal.bad_processors"


def test_acpi_mismatch_reason():
    advice = advise_hal(ACPI_UP, MPS_UP)
    assert advice.reason_key == "imaging.hal.reason.acpi_mismatch"
