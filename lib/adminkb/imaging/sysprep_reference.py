"""Sections and keys of sysprep.inf (Sysprep 2.0, Windows XP) that the linter knows.

Source: the Windows XP deployment reference, ref.chm in DEPLOY.CAB (pages "[Unattended]
(Sysprep.inf)", "[GuiUnattended]", "[UserData]", "[RegionalSettings]"), and the sections that the
XP Setup Manager writes when it builds a sysprep.inf. Section and key names are case-insensitive,
as Setup reads them, so every name here is stored in lower case beside its usual spelling.
"""

from __future__ import annotations

import re

# Usual spelling of each key, by section. A section that maps to None takes free-form keys
# (hardware ids, adapter names, numbered commands), so the linter checks no key name there.
SECTION_KEYS: dict[str, tuple[str, ...] | None] = {
    "Unattended": ("ExtendOemPartition", "InstallFilesPath", "KeepPageFile", "OemPnPDriversPath",
                   "OemSkipEula", "ResetSourcePath", "TapiConfigured", "UpdateHAL",
                   "UpdateInstalledDrivers", "UpdateUPHAL"),
    "GuiUnattended": ("AdminPassword", "EncryptedAdminPassword", "AutoLogon", "AutoLogonCount",
                      "EMSSkipUnattendProcessing", "OEMDuplicatorString", "OEMSkipRegional",
                      "OEMSkipWelcome", "ServerWelcome", "TimeZone"),
    "UserData": ("ComputerName", "FullName", "OrgName", "ProductKey"),
    "Identification": ("JoinWorkgroup", "JoinDomain", "DomainAdmin", "DomainAdminPassword",
                       "MachineObjectOU", "DoOldStyleDomainJoin"),
    "RegionalSettings": ("InputLocale", "InputLocale_DefaultUser", "Language", "LanguageGroup",
                         "SystemLocale", "UserLocale", "UserLocale_DefaultUser"),
    "Networking": ("InstallDefaultComponents",),
    "Display": ("AutoConfirm", "BitsPerPel", "ConfigureAtLogon", "Vrefresh", "Xresolution",
                "Yresolution"),
    "TapiLocation": ("AreaCode", "CountryCode", "Dialing", "LongDistanceAccess"),
    "Branding": ("BrandIEUsingUnattended", "IEBrandingFile"),
    "Proxy": ("Proxy_Enable", "Use_Same_Proxy", "HTTP_Proxy_Server", "Secure_Proxy_Server",
              "FTP_Proxy_Server", "Gopher_Proxy_Server", "Socks_Proxy_Server", "Proxy_Override"),
    "URL": ("Home_Page", "Search_Page", "Help_Page", "AutoConfig", "AutoConfigURL",
            "AutoConfigJSURL"),
    "LicenseFilePrintData": ("AutoMode", "AutoUsers"),
    "OEM_Ads": ("Logo", "Background", "Banner"),
    "SetupMgr": ("DistFolder", "DistShare"),
    "Sysprep": ("BuildMassStorageSection",),
    "SysprepMassStorage": None,
    "GuiRunOnce": None,
    "NetAdapters": None,
    "NetClients": None,
    "NetProtocols": None,
    "NetServices": None,
}
# NOTE: sections added by service packs or used only by other tools ([WindowsFirewall], [Shell],
# [FavoritesEx]...) are not listed, so the linter reports them as unknown-section warnings.

# Numbered keys that Setup Manager writes: ComputerName0.. in [SetupMgr] for a list of names,
# Quick_Link_1_Name.. in [URL].
NUMBERED_KEYS: dict[str, re.Pattern[str]] = {
    "setupmgr": re.compile(r"computername\d+", re.IGNORECASE),
    "url": re.compile(r"quick_link_\d+(_name)?", re.IGNORECASE),
}

# Per-adapter and per-protocol parameter sections such as [params.Adapter1] or
# [params.MS_TCPIP.Adapter1] take free-form keys.
PARAMS_SECTION = re.compile(r"params\..+", re.IGNORECASE)

# Keys that exist only in Unattend.txt (full unattended Setup). Mini-Setup ignores them in
# sysprep.inf, so a setting the admin relies on silently does nothing.
UNATTEND_TXT_ONLY_KEYS = ("DriverSigningPolicy", "NonDriverSigningPolicy", "OemPreinstall",
                          "UnattendMode", "TargetPath", "FileSystem", "Repartition",
                          "NoWaitAfterTextMode", "NoWaitAfterGUIMode", "UnattendSwitch",
                          "CrashDumpSetting", "OemFilesPath", "ProfilesDir", "DetachedProgram",
                          "Arguments")

# HAL ids that hal.inf accepts, by the key that may name them.
UNIPROCESSOR_HAL_IDS = ("ACPIAPIC_UP", "ACPIPIC_UP", "MPS_UP")
MULTIPROCESSOR_HAL_IDS = ("ACPIAPIC_MP", "MPS_MP", "SYSPRO_MP")

# Time zone names and their decimal TimeZone index for sysprep.inf.
# NOTE: a subset of Microsoft's index table, the zones checked against it; a decimal index not
# listed here is not reported, because the linter cannot tell whether it is valid.
TIME_ZONES: dict[str, int] = {
    "Pacific Standard Time": 4,
    "Central Standard Time": 20,
    "Eastern Standard Time": 35,
    "GMT Standard Time": 85,
    "Greenwich Standard Time": 90,
    "W. Europe Standard Time": 110,
    "India Standard Time": 190,
    "China Standard Time": 210,
    "Singapore Standard Time": 215,
    "Taipei Standard Time": 220,
    "Korea Standard Time": 230,
    "Tokyo Standard Time": 235,
    "AUS Eastern Standard Time": 255,
}


def _lower_index() -> dict[str, tuple[str, str]]:
    """Map each lower-case key name to (usual section name, usual key spelling)."""
    index: dict[str, tuple[str, str]] = {}
    for section, keys in SECTION_KEYS.items():
        for key in keys or ():
            index.setdefault(key.lower(), (section, key))
    return index


KEY_HOME = _lower_index()
SECTIONS_LOWER = {name.lower(): name for name in SECTION_KEYS}
UNATTEND_ONLY_LOWER = {key.lower(): key for key in UNATTEND_TXT_ONLY_KEYS}


def section_spelling(name: str) -> str | None:
    """Return the usual spelling of a known section, or None when the linter does not know it."""
    if PARAMS_SECTION.fullmatch(name):
        return name
    return SECTIONS_LOWER.get(name.lower())


def takes_free_keys(section: str) -> bool:
    """Return whether a known section takes free-form keys or plain lines (hardware ids, commands)."""
    if PARAMS_SECTION.fullmatch(section):
        return True
    usual = SECTIONS_LOWER.get(section.lower())
    return usual is not None and SECTION_KEYS[usual] is None


def is_known_key(section: str, key: str) -> bool:
    """Return whether `key` belongs in `section` (both matched without regard to case)."""
    if PARAMS_SECTION.fullmatch(section):
        return True
    usual = SECTIONS_LOWER.get(section.lower())
    if usual is None:
        return False
    keys = SECTION_KEYS[usual]
    if keys is None:
        return True
    if key.lower() in {known.lower() for known in keys}:
        return True
    pattern = NUMBERED_KEYS.get(usual.lower())
    return bool(pattern and pattern.fullmatch(key))
