"""The ``napari-unet`` command: thin argument parsing over the headless API.

One module per sub-command (``predict``, ``train``, ``info`` with ``models``, ``evaluate``,
``demo``, ``export``), each registering its parser and handler; ``_common`` holds what they
share. Every sub-command reports bad input as one line on stderr and exits with status 2
(no traceback); outputs are written atomically.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence

from . import demo, evaluate, export, info, predict, train
from ._common import EXIT_BAD_INPUT, CliError, one_line, print_json

__all__ = ["EXIT_BAD_INPUT", "CliError", "build_parser", "main", "print_json"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``napari-unet``."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="napari-unet",
        description="U-Net segmentation (Ronneberger et al. 2015): predict, fine-tune, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    predict.add_parser(commands)
    train.add_parser(commands)
    info.add_parsers(commands)  # info, models
    evaluate.add_parser(commands)
    demo.add_parser(commands)
    export.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    _tolerant_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.handler(args)
    except KeyboardInterrupt:
        print("napari-unet: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # its reader stopped (`| head`): not bad input, nothing to say
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (CliError, ValueError, OSError) as error:
        print(f"napari-unet {args.command}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return int(status or 0)


#: The exit status of a command whose output's reader went away (128 + SIGPIPE, as a shell
#: reports a command killed by it).
EXIT_BROKEN_PIPE = 141


def _tolerant_streams() -> None:
    """Let stdout and stderr write any character: one their encoding lacks is escaped.

    On Windows, output sent to a file or a pipe is encoded in the console's code page
    (cp1252, say), strictly: a path holding "ł" made ``print`` raise, and a batch stop.
    """
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


def _silence_stdout() -> None:
    """Point stdout at the null device, so that Python's flush at exit finds no broken pipe
    (only the process's own stdout: a caller's replaced stream is left alone)."""
    import os

    own = sys.__stdout__
    if own is None or sys.stdout is not own:
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, own.fileno())
    except (OSError, ValueError):  # no file descriptor (a captured stream)
        pass
