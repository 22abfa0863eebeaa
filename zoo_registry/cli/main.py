"""Entry point of the ``zoo`` console script.

Exit codes (the full table, with examples, is in ``docs/reliability.md``):

- 0: success;
- 1: an error: bad input, failed validation, a missing or refused model, an unreadable file, not
  enough memory, or a bug inside zoo or a plugin (reported as an internal error);
- 2: a usage error (unknown command or option, a missing argument), printed by argparse;
- 130: interrupted with Ctrl-C.

Every error is printed as one ``zoo: error: ...`` line (plus a ``hint: ...`` line when zoo knows
the fix) and no traceback unless ``--debug`` is given. Errors zoo raises on purpose are
:class:`~zoo_registry.errors.ZooError`; the boundaries that read files translate what MLX,
transformers or the OS raise into those. What still reaches this function is translated here:
``OSError`` (a full disk, a permission denied while writing) and ``MemoryError`` are the
environment's fault and print as errors; anything else is a bug and prints as
``zoo: internal error: ... (run with --debug for the traceback; please report)``.
Warnings zoo emits on purpose (:class:`~zoo_registry.errors.ZooWarning`) print as
``zoo: warning: ...``.

This is the CLI's one boundary with the process-wide registry: :func:`main` looks it up once and
hands it to the command as ``args.registry``; no command module looks one up itself.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ..errors import ZooError, ZooWarning

# Command modules are imported to build the parser; they keep heavy imports (MLX) inside run().
COMMANDS = ("list", "plugins", "info", "validate", "load", "generate", "convert", "serve", "chat")
MLX_COMMANDS = ("load", "generate", "convert", "serve", "chat")  # these compute with MLX: pick the CPU BLAS first
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
INTERNAL_SUFFIX = "(run with --debug for the traceback; please report)"
LEGACY_QUIET, BIT_WIDTHS = ("load", "generate"), ("4", "8")  # commands whose -q was --quiet; their --quantize choices


def build_parser():
    parser = argparse.ArgumentParser(prog="zoo", description="A plugin-based model zoo for MLX.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__package__}.{name}_cmd")
        except ModuleNotFoundError as e:
            if e.name == f"{__package__}.{name}_cmd":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    for command in sub.choices.values():  # `zoo load X --debug` as well as `zoo --debug load X`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """``zoo: warning: MESSAGE`` for zoo's own warnings; Python's format for the rest."""
    out = file or sys.stderr
    try:
        if issubclass(category, ZooWarning):
            out.write(f"zoo: warning: {message}\n")
        else:
            out.write(warnings.formatwarning(message, category, filename, lineno, line))
    except OSError:  # stderr closed
        pass


def _error(message: str, hint=None) -> int:
    print(f"zoo: error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return EXIT_ERROR


def _os_error(e: OSError) -> str:
    where = f"{e.filename}: " if getattr(e, "filename", None) else ""
    return f"{where}{e.strerror or e}"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def legacy_spellings(argv):
    """``(argv, warnings)``: spellings that changed meaning, rewritten to what they meant then.

    ``-q`` is ``--quantize BITS`` in every command, as in ``mlx_lm.convert`` (``zoo convert -q 4``);
    ``zoo generate``/``zoo load`` used to read a bare ``-q`` as ``--quiet``. A ``-q`` there that is
    not followed by a bit width still means ``--quiet``, with a deprecation warning.
    """
    argv, notes = list(argv), []
    command = next((i for i, a in enumerate(argv) if a in COMMANDS), None)
    if command is None or argv[command] not in LEGACY_QUIET:
        return argv, notes
    for i in range(command + 1, len(argv)):
        if argv[i] == "--":
            break
        if argv[i] == "-q" and (i + 1 == len(argv) or argv[i + 1] not in BIT_WIDTHS):
            argv[i] = "--quiet"
            notes.append(f"`zoo {argv[command]} -q` as --quiet is deprecated: -q means --quantize BITS in every command "
                         "(as in mlx_lm.convert); write --quiet")
    return argv, notes


def main(argv=None) -> int:
    parser = build_parser()
    argv, notes = legacy_spellings(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)  # usage errors exit 2 here
    debug = args.debug
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        for note in notes:
            warnings.warn(note, ZooWarning, stacklevel=1)
        if args.command in MLX_COMMANDS:
            from ..runtime import blas

            blas.activate()  # must precede the first `import mlx.core`; a bad ZOO_BLAS is a ZooError
        from ..registry import get_registry

        args.registry = get_registry()  # the commands use this one and never look one up
        return int(args.run(args) or 0)
    except ZooError as e:
        if debug:
            raise
        return _error(e, getattr(e, "hint", None))
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except MemoryError:
        if debug:
            raise
        return _error("out of memory", hint="quantize (--quantize 4), pick a smaller model, or close other programs")
    except OSError as e:
        if debug:
            raise
        return _error(_os_error(e))
    except Exception as e:  # noqa: BLE001 - the last boundary: a bug must not print a traceback
        if debug:
            raise
        print(f"zoo: internal error: {type(e).__name__}: {_one_line(e)} {INTERNAL_SUFFIX}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
