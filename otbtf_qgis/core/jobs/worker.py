"""The worker: runs one core job in its own process and speaks JSON lines.

``python -m otbtf_qgis.core <command> [--params JSON|@FILE] [--option value ...]``

With ``--jsonl`` (what the Processing algorithms use) stdout carries only protocol
lines (see :class:`otbtf_qgis.core.progress.JsonLinesReporter`); anything else that
writes to stdout (libraries, user model code) is sent to stderr. With
``--control-stdin`` the worker reads control lines on stdin: ``{"type": "cancel"}``
asks the job to stop at its next check, and end of input (the parent died) does the
same. ``SIGTERM`` cancels too: the job's cleanup runs and partial outputs are removed.

Exit codes: 0 success, 1 error (reported), 2 bad command line, 130 cancelled.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from types import FrameType
from typing import IO, Any

from otbtf_qgis.core.errors import CancelledError, DependencyError, InputError, OtbtfError
from otbtf_qgis.core.jobs.codec import add_config_arguments, config_from_args
from otbtf_qgis.core.jobs.commands import COMMANDS
from otbtf_qgis.core.progress import JsonLinesReporter, Reporter, TextReporter

#: The worker runtime: what requirements.txt pins and otbtf:createenvironment installs.
TENSORFLOW_REQUIREMENT = ("tensorflow-cpu==2.21.0 numpy==1.26.4 tensorboard==2.21.0 dask[distributed]==2026.8.0 "
                          "distributed==2026.8.0")
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def tensorflow_install_hint() -> str:
    """The exact command that installs TensorFlow for this interpreter."""
    return f"{sys.executable} -m pip install {TENSORFLOW_REQUIREMENT}"


def check_tensorflow() -> None:
    """Raise :class:`DependencyError` with install instructions if TensorFlow is missing."""
    if importlib.util.find_spec("tensorflow") is None:
        raise DependencyError(
            f"TensorFlow is not installed in the worker Python '{sys.executable}'. Install it with:\n"
            f"    {tensorflow_install_hint()}\n"
            "or point the plugin at a Python that has TensorFlow (Processing > Options > Providers > OTBTF > "
            "'Python interpreter with TensorFlow', or the OTBTF_QGIS_PYTHON environment variable).",
            "PYTHON")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser: one sub-command per registered job."""
    parser = argparse.ArgumentParser(prog="python -m otbtf_qgis.core",
                                     description="Run an otbtf_qgis job (the worker behind the QGIS algorithms).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, spec in COMMANDS.items():
        command = sub.add_parser(name, help=spec.help, description=spec.help)
        command.add_argument("--params", default=None,
                             help="settings as a JSON object, @FILE to read them from a file, or - for stdin")
        command.add_argument("--jsonl", action="store_true", help="speak the JSON-lines protocol on stdout")
        command.add_argument("--control-stdin", action="store_true",
                             help="read control lines (cancel) on stdin; end of input cancels")
        add_config_arguments(command, spec.config_class())
    return parser


def _load_params(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        with open(text[1:], encoding="utf-8") as handle:
            text = handle.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--params is not valid JSON ({exc}).", "PARAMS") from exc
    if not isinstance(data, dict):
        raise InputError("--params must be a JSON object.", "PARAMS")
    return data


def _protocol_stream() -> IO[str]:
    """Keep the real stdout for protocol lines; route fd 1 and ``sys.stdout`` to stderr."""
    sys.stdout.flush()
    private = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(private, "w", buffering=1, encoding="utf-8")


def _watch_stdin(reporter: JsonLinesReporter) -> None:
    def watch() -> None:
        for line in sys.stdin:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(message, dict) and message.get("type") == "cancel":
                reporter.cancel_event.set()
        reporter.cancel_event.set()  # end of input: the parent is gone

    threading.Thread(target=watch, name="otbtf-control", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worker; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    reporter: Reporter
    json_reporter: JsonLinesReporter | None = None
    if args.jsonl:
        json_reporter = JsonLinesReporter(_protocol_stream())
        reporter = json_reporter
        if args.control_stdin:
            _watch_stdin(json_reporter)
    else:
        reporter = TextReporter()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if json_reporter is not None:
            json_reporter.cancel_event.set()
        raise CancelledError("Cancelled: the worker was asked to stop.")

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        spec = COMMANDS[args.command]  # argparse has refused unknown names
        config = config_from_args(spec.config_class(), args, _load_params(args.params))
        if spec.needs_tensorflow:
            check_tensorflow()
        result = spec.function()(config, reporter)
    except CancelledError as exc:
        _report_error(json_reporter, exc.to_dict())
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        _report_error(json_reporter, CancelledError().to_dict())
        return EXIT_CANCELLED
    except OtbtfError as exc:
        _report_error(json_reporter, exc.to_dict())
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - anything unexpected is still reported, with its traceback
        traceback.print_exc(file=sys.stderr)
        _report_error(json_reporter, {"error": "InternalError", "message": f"{type(exc).__name__}: {exc}",
                                      "parameter": None})
        return EXIT_ERROR
    if json_reporter is not None:
        json_reporter.emit({"type": "result", "value": result})
    else:
        print(json.dumps(result, indent=2, default=str))
    return EXIT_OK


def _report_error(json_reporter: JsonLinesReporter | None, error: dict[str, Any]) -> None:
    if json_reporter is not None:
        json_reporter.emit({"type": "error", **error})
    else:
        where = f"{error['parameter']}: " if error.get("parameter") else ""
        sys.stderr.write(f"\nERROR ({error['error']}) {where}{error['message']}\n")
