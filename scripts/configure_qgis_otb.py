#!/usr/bin/python3
"""Turn on QGIS's OTB Processing provider (``otb:*`` algorithms) in a QGIS profile, headless.

QGIS's provider (the core plugin ``otbprovider``) lists no algorithm until two Processing
settings point at an OTB installation: the OTB folder (the prefix holding
``bin/otbApplicationLauncherCommandLine`` and ``share/otb/description``, ``/usr`` for
Debian's packages) and the application folder (the ``otbapp_*.so`` files). They live in
the profile's ``QGIS3.ini`` under ``[Processing]`` as ``Configuration\\OTB_FOLDER`` and
``Configuration\\OTB_APP_FOLDER``; the plugin itself is enabled under ``[PythonPlugins]``.
This writes those three values with Qt's own settings class (so the file stays a valid
Qt settings file) and leaves everything else as it is. Running it again changes nothing.

Usage: configure_qgis_otb.py PROFILE_DIR [--otb-folder /usr] [--app-folder DIR]
(PROFILE_DIR is what ``QGIS_CUSTOM_CONFIG_PATH`` points at; the application folder is
found under the OTB folder when not given.) Run it with the Python that has PyQt5
(``/usr/bin/python3`` on Debian).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PyQt5.QtCore import QSettings

LAUNCHER = Path("bin") / "otbApplicationLauncherCommandLine"
DESCRIPTIONS = Path("share") / "otb" / "description" / "algs.txt"


def profile_ini(profile_dir: Path) -> Path:
    """The settings file of the ``default`` profile under ``QGIS_CUSTOM_CONFIG_PATH``."""
    return profile_dir / "profiles" / "default" / "QGIS" / "QGIS3.ini"


def find_app_folder(otb_folder: Path) -> Path | None:
    """The folder of the ``otbapp_*.so`` files under ``otb_folder`` (multiarch or plain ``lib``)."""
    candidates = [*sorted((otb_folder / "lib").glob("*/otb/applications")), otb_folder / "lib" / "otb" / "applications"]
    return next((folder for folder in candidates if any(folder.glob("otbapp_*.so"))), None)


def check_installation(otb_folder: Path, app_folder: Path) -> None:
    """Raise ``SystemExit`` with the fix when the folders are not an OTB installation QGIS can use."""
    if not (otb_folder / LAUNCHER).is_file():
        raise SystemExit(f"OTB folder {otb_folder}: no {LAUNCHER}; install Debian's otb-bin (make setup-otb)")
    if not (otb_folder / DESCRIPTIONS).is_file():
        raise SystemExit(f"OTB folder {otb_folder}: no {DESCRIPTIONS}; install Debian's otb-qgis (make setup-otb)")
    if not any(app_folder.glob("otbapp_*.so")):
        raise SystemExit(f"OTB application folder {app_folder}: no otbapp_*.so; install Debian's libotb-apps")


def configure(profile_dir: Path, otb_folder: Path, app_folder: Path) -> bool:
    """Enable ``otbprovider`` and set its folders in the profile; return whether anything changed."""
    ini = profile_ini(profile_dir)
    ini.parent.mkdir(parents=True, exist_ok=True)
    settings = QSettings(str(ini), QSettings.Format.IniFormat)
    wanted = {
        "PythonPlugins/otbprovider": "true",
        "Processing/Configuration/OTB_FOLDER": str(otb_folder),
        "Processing/Configuration/OTB_APP_FOLDER": str(app_folder),
    }
    changed = False
    for key, value in wanted.items():
        if str(settings.value(key, "")) != value:
            settings.setValue(key, value)
            changed = True
    settings.sync()
    if settings.status() != QSettings.Status.NoError:
        raise SystemExit(f"could not write {ini}")
    return changed


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description="Enable QGIS's OTB provider in a QGIS profile.")
    parser.add_argument("profile", type=Path, help="the profile folder (QGIS_CUSTOM_CONFIG_PATH)")
    parser.add_argument("--otb-folder", type=Path, default=Path("/usr"))
    parser.add_argument("--app-folder", type=Path, help="folder of the otbapp_*.so files (default: found)")
    args = parser.parse_args(argv)
    app_folder = args.app_folder or find_app_folder(args.otb_folder)
    if app_folder is None:
        raise SystemExit(f"no OTB applications (otbapp_*.so) under {args.otb_folder}/lib; install Debian's libotb-apps")
    check_installation(args.otb_folder, app_folder)
    changed = configure(args.profile.resolve(), args.otb_folder, app_folder)
    state = "enabled" if changed else "already enabled"
    print(f"QGIS OTB provider {state} in {profile_ini(args.profile)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
