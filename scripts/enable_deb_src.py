#!/usr/bin/env python3
"""Enable Debian's source repositories (``deb-src``) so that ``apt-get source`` works.

Reads every APT source (one-line ``*.list`` files and deb822 ``*.sources`` files) and, for
each Debian repository (a host under ``debian.org``) configured as ``deb`` without its
``deb-src`` counterpart, adds that counterpart to one file of our own in deb822 format.
The user's files are never edited, so removing that file undoes everything; third-party
repositories are left alone. Running it again changes nothing. It prints what it did;
the caller runs ``apt-get update`` afterwards.

Usage: enable_deb_src.py [--apt-dir /etc/apt] [--dry-run]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

OWN_FILE_NAME = "otbtf-qgis-deb-src.sources"


@dataclass(frozen=True)
class Entry:
    """One repository line: a type (``deb`` or ``deb-src``), a URI, a suite and its components."""

    kind: str
    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str

    @property
    def key(self) -> tuple[str, str]:
        """The repository identity used to match ``deb`` with ``deb-src``."""
        return self.uri.rstrip("/"), self.suite


def parse_one_line(text: str) -> list[Entry]:
    """Entries of a one-line-style ``sources.list`` (``deb [options] uri suite component...``)."""
    entries = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        options = ""
        match = re.match(r"^(deb|deb-src)\s+\[([^\]]*)\]\s+(.*)$", line)
        if match:
            kind, options, rest = match.groups()
        else:
            kind, _, rest = line.partition(" ")
        words = rest.split()
        if kind not in ("deb", "deb-src") or len(words) < 2:
            continue
        signed_by = ""
        for option in options.split():
            name, _, value = option.partition("=")
            if name == "signed-by":
                signed_by = value
        entries.append(Entry(kind, words[0], words[1], tuple(words[2:]), signed_by))
    return entries


def parse_deb822(text: str) -> list[Entry]:
    """Entries of a deb822-style ``*.sources`` file (stanzas of ``Field: value``, blank-line separated)."""
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        current = ""
        for raw in stanza.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1] in (" ", "\t") and current:
                fields[current] += " " + raw.strip()
                continue
            name, sep, value = raw.partition(":")
            if sep:
                current = name.strip().lower()
                fields[current] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for kind in fields.get("types", "").split():
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    entries.append(Entry(kind, uri, suite, tuple(fields.get("components", "").split()),
                                         fields.get("signed-by", "")))
    return entries


def configured_entries(apt_dir: Path) -> list[Entry]:
    """Every repository entry configured under ``apt_dir`` (``sources.list`` and ``sources.list.d``)."""
    entries = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        entries += parse_one_line(main_list.read_text(encoding="utf-8"))
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                entries += parse_one_line(path.read_text(encoding="utf-8"))
            elif path.suffix == ".sources":
                entries += parse_deb822(path.read_text(encoding="utf-8"))
    return entries


def is_debian_repository(uri: str) -> bool:
    """Whether ``uri`` is one of Debian's own archives (any host under ``debian.org``)."""
    host = urlparse(uri).hostname or ""
    return host == "debian.org" or host.endswith(".debian.org")


def missing_sources(entries: list[Entry]) -> list[Entry]:
    """The Debian ``deb`` entries that have no ``deb-src`` counterpart, in configuration order."""
    have_source = {entry.key for entry in entries if entry.kind == "deb-src"}
    missing: dict[tuple[str, str], Entry] = {}
    for entry in entries:
        if entry.kind == "deb" and is_debian_repository(entry.uri) and entry.key not in have_source:
            missing.setdefault(entry.key, entry)
    return list(missing.values())


def render_deb822(entries: list[Entry]) -> str:
    """``deb-src`` stanzas for ``entries``, one per (URI, components, key), suites grouped."""
    groups: dict[tuple[str, tuple[str, ...], str], list[str]] = {}
    for entry in entries:
        groups.setdefault((entry.uri, entry.components, entry.signed_by), []).append(entry.suite)
    stanzas = []
    for (uri, components, signed_by), suites in groups.items():
        lines = ["Types: deb-src", f"URIs: {uri}", f"Suites: {' '.join(suites)}"]
        if components:
            lines.append(f"Components: {' '.join(components)}")
        if signed_by:
            lines.append(f"Signed-By: {signed_by}")
        stanzas.append("\n".join(lines))
    header = ("# Added by otbtf_qgis (make setup-otb): Debian source packages, for `apt-get source otb`.\n"
              "# Safe to delete; run `apt-get update` afterwards.\n")
    return header + "\n\n".join(stanzas) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Add the missing Debian ``deb-src`` entries; print what was done."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--apt-dir", type=Path, default=Path("/etc/apt"))
    parser.add_argument("--dry-run", action="store_true", help="print the file that would be written")
    args = parser.parse_args(argv)
    own_file = args.apt_dir / "sources.list.d" / OWN_FILE_NAME
    missing = missing_sources(configured_entries(args.apt_dir))
    if not missing:
        print("Debian deb-src repositories: already enabled")
        return 0
    # Rewrite our own file with what it already holds plus what is missing, so that
    # nothing it added before is lost.
    previous = parse_deb822(own_file.read_text(encoding="utf-8")) if own_file.is_file() else []
    wanted = [Entry("deb", e.uri, e.suite, e.components, e.signed_by) for e in previous] + missing
    text = render_deb822(wanted)
    if args.dry_run:
        print(text, end="")
        return 0
    own_file.write_text(text, encoding="utf-8")
    suites = ", ".join(f"{e.uri} {e.suite}" for e in missing)
    print(f"Debian deb-src repositories enabled in {own_file}: {suites}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
