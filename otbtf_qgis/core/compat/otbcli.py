"""``otbcli``-style command lines for OTBTF's applications on this package's engine.

``python -m otbtf_qgis.core.compat.otbcli TensorflowModelServe -source1.il xs.tif -source1.rfieldx 64 ...``
(``-help`` after the application name lists its keys). ``scripts/otbcli_TensorflowModelServe``
and ``scripts/otbcli_PatchesExtraction`` run it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from otbtf_qgis.core.compat.keys import EXTRACTION, SERVE, Application, key_spec, normalised_key
from otbtf_qgis.core.compat.otb import PatchesExtraction, TensorflowModelServe
from otbtf_qgis.core.errors import CancelledError, InputError, OtbtfError
from otbtf_qgis.core.progress import Reporter, TextReporter

APPLICATIONS: dict[str, tuple[Application, Callable[[Mapping[str, Any], Reporter | None], dict[str, Any]]]] = {
    "TensorflowModelServe": (SERVE, TensorflowModelServe),
    "PatchesExtraction": (EXTRACTION, PatchesExtraction),
}
KEY_TOKEN = re.compile(r"^-[A-Za-z][\w.:]*$")


def parse_command_line(application: str, tokens: Sequence[str]) -> dict[str, Any]:
    """Read ``otbcli``-style arguments (``-key value [value ...]``) into a parameter dict.

    A token ``-name`` starts a key (``-9999`` is a value); list keys take every value up
    to the next key, outputs a file name and an optional pixel type, booleans ``on``/``off``
    (or nothing, meaning on).

    Raises:
        InputError: an unknown key, a value without key, or a wrong number of values.
    """
    spec_of = APPLICATIONS[application][0]
    params: dict[str, Any] = {}
    current: str | None = None
    values: dict[str, list[str]] = {}
    for token in tokens:
        if KEY_TOKEN.match(token):
            current = token[1:]
            key_spec(spec_of, normalised_key(current))
            if current in values:
                raise InputError(f"-{current} is given twice.", current)
            values[current] = []
        elif current is None:
            raise InputError(f"'{token}' comes before any -key: write -key value.", "COMMAND")
        else:
            values[current].append(token)
    for key, given in values.items():
        kind = key_spec(spec_of, normalised_key(key)).kind
        if kind in ("images", "strings"):
            if not given:
                raise InputError(f"-{key} needs at least one value.", key)
            params[key] = given
        elif kind == "output":
            if len(given) not in (1, 2):
                raise InputError(f"-{key} takes a file name and optionally a pixel type, got {len(given)} values.",
                                 key)
            params[key] = given
        elif kind == "bool" and not given:
            params[key] = True
        elif len(given) != 1:
            raise InputError(f"-{key} takes one value, got {len(given)}: {' '.join(given) or 'none'}.", key)
        else:
            params[key] = given[0]
    return params


def usage(application: str | None = None) -> str:
    """Help text: the applications, or the keys of one."""
    if application is None:
        return ("usage: python -m otbtf_qgis.core.compat.otbcli {TensorflowModelServe|PatchesExtraction} "
                "-key value ...\n(-help after the application name lists its keys)\n")
    spec = APPLICATIONS[application][0]
    lines = [f"{application} (OTBTF keys; N = 1, 2, ... for each source)"]
    lines += [f"  -source<N>.{key:<14} {item.help}" for key, item in spec.source_keys.items()]
    lines += [f"  -{key:<24} {item.help}" for key, item in spec.keys.items()]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 1 error, 2 usage, 130 cancelled)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "-help", "--help"):
        sys.stdout.write(usage())
        return 0 if args else 2
    application = args[0]
    if application not in APPLICATIONS:
        sys.stderr.write(f"ERROR: unknown application '{application}'. Available: {', '.join(APPLICATIONS)}.\n")
        return 2
    if any(token in ("-h", "-help", "--help") for token in args[1:]):
        sys.stdout.write(usage(application))
        return 0
    reporter = TextReporter()
    try:
        params = parse_command_line(application, args[1:])
        if application == "TensorflowModelServe":
            from otbtf_qgis.core.jobs.worker import check_tensorflow

            check_tensorflow()
        result = APPLICATIONS[application][1](params, reporter)
    except (CancelledError, KeyboardInterrupt):
        sys.stderr.write("\nCancelled.\n")
        return 130
    except OtbtfError as exc:
        where = f"{exc.parameter}: " if exc.parameter else ""
        sys.stderr.write(f"\nERROR ({type(exc).__name__}) {where}{exc.message}\n")
        return 1
    sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
