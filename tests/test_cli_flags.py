"""Short flags mean one thing in every command, the one mlx-lm gives them.

mlx-lm's own parsers are the reference: ``mlx_lm.convert -q`` is ``--quantize``, ``mlx_lm.generate -p``
``--prompt`` and ``-m`` ``--max-tokens``. ``zoo generate``/``zoo load`` used to read ``-q`` as
``--quiet``; that spelling still works when no bit width follows, with a deprecation warning.
"""

import argparse
import importlib

import pytest

from conftest import run_zoo
from zoo_registry.cli.main import build_parser, legacy_spellings


def option_map(parser) -> dict:
    """Short option -> its long option, in one argparse parser."""
    out = {}
    for action in parser._actions:  # argparse keeps no public list of a parser's options
        shorts = [o for o in action.option_strings if len(o) == 2 and o != "-h"]
        longs = [o for o in action.option_strings if o.startswith("--")]
        for short in shorts:
            out[short] = longs[0]
    return out


def commands() -> dict:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def mlx_lm_short_options() -> dict:
    """The short options of mlx-lm's generate and convert parsers (its CLI's convention)."""
    found = {}
    generate = importlib.import_module("mlx_lm.generate").setup_arg_parser()
    convert = importlib.import_module("mlx_lm.convert").configure_parser()
    for parser in (generate, convert):
        found.update(option_map(parser))
    return found


def test_every_short_flag_has_one_meaning_across_commands():
    meaning = {}
    for name, parser in commands().items():
        for short, long in option_map(parser).items():
            meaning.setdefault(short, {}).setdefault(long, []).append(name)
    assert meaning, "no short flags found: the parser walk is broken"
    clashes = {short: longs for short, longs in meaning.items() if len(longs) > 1}
    assert clashes == {}, f"a short flag means different things in different commands: {clashes}"


def test_short_flags_mean_what_they_mean_in_mlx_lm():
    theirs = mlx_lm_short_options()
    assert theirs["-q"] == "--quantize" and theirs["-p"] == "--prompt" and theirs["-m"] == "--max-tokens"
    for name, parser in commands().items():
        for short, long in option_map(parser).items():
            if short in theirs:
                assert long == theirs[short], f"zoo {name} {short} is {long}; in mlx-lm it is {theirs[short]}"


def test_every_command_that_quantizes_takes_dash_q():
    quantizing = [name for name, p in commands().items() if any("--quantize" in a.option_strings for a in p._actions)]
    assert set(quantizing) >= {"convert", "load", "generate", "serve", "chat"}
    for name in quantizing:
        assert option_map(commands()[name]).get("-q") == "--quantize", name


@pytest.mark.parametrize("argv, quiet, quantize", [
    (["generate", "m", "-p", "hi", "-q"], True, None),  # the old spelling, at the end
    (["generate", "-q", "m", "-p", "hi"], True, None),  # ... or before the model
    (["load", "m", "-q"], True, None),
    (["generate", "m", "-p", "hi", "-q", "4"], False, 4),  # -q BITS: quantize, as everywhere
    (["generate", "m", "-p", "hi", "-q8"], False, 8),
    (["--debug", "load", "m", "-q", "8", "--quiet"], True, 8),
])
def test_old_dash_q_still_means_quiet_when_no_bits_follow(argv, quiet, quantize):
    rewritten, notes = legacy_spellings(argv)
    args = build_parser().parse_args(rewritten)
    assert (args.quiet, args.quantize) == (quiet, quantize)
    assert len(notes) == (1 if "--quiet" in rewritten and "--quiet" not in argv else 0)


def test_convert_dash_q_is_untouched():
    assert legacy_spellings(["convert", "a", "b", "-q", "4"]) == (["convert", "a", "b", "-q", "4"], [])
    assert build_parser().parse_args(["convert", "a", "b", "-q", "4"]).quantize == 4


def test_the_old_spelling_prints_a_deprecation_warning(isolated_home, tmp_path):
    proc = run_zoo("load", str(tmp_path / "missing"), "-q")
    assert proc.returncode == 1  # the folder does not exist; the flag itself was accepted
    lines = proc.stderr.splitlines()
    assert lines[0] == ("zoo: warning: `zoo load -q` as --quiet is deprecated: -q means --quantize BITS in every command "
                        "(as in mlx_lm.convert); write --quiet"), proc.stderr
    assert lines[1].startswith("zoo: error: ")
