"""The CLI's error boundary: exit 1 with one ``zoo: error:`` line (and maybe a hint), never a traceback.

Real commands on real bad inputs run in subprocesses; the last-resort translations (OSError,
MemoryError, a bug) are exercised in-process by making a command raise them, since no bad input
should be able to reach them. Exit codes are documented in docs/reliability.md.
"""

import json
import shutil

import pytest

from conftest import run_zoo
from zoo_registry.cli import main as cli


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory):
    from zoo_hunyuan.tiny import generate

    return generate(tmp_path_factory.mktemp("tiny") / "hunyuan-tiny", seed=0)


def assert_one_error(proc, message, hint=None):
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("[transformers]")]
    assert lines == [f"zoo: error: {message}"] + ([f"hint: {hint}"] if hint else []), proc.stderr


def test_load_of_a_truncated_checkpoint(isolated_home, tmp_path, tiny_source):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_source, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:100_000])
    proc = run_zoo("load", folder)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"zoo: error: {weights}: truncated or corrupt: tensor ")
    assert proc.stderr.splitlines()[1] == "hint: the file is damaged or incomplete (an interrupted download?); download or convert it again"


def test_load_check_finite(isolated_home, tmp_path, tiny_source):
    import mlx.core as mx

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_source, folder)
    w = mx.load(str(folder / "model.safetensors"))
    w["model.norm.weight"] = w["model.norm.weight"] / 0.0 * 0.0  # all NaN
    mx.save_safetensors(str(folder / "model.safetensors"), w)
    proc = run_zoo("load", folder, "--check-finite", "--json")
    assert_one_error(proc, f"{folder / 'model.safetensors'}: tensor 'model.norm.weight' holds 64 non-finite values (NaN or inf) of 64",
                     "the checkpoint is corrupt or was saved from a diverged run; download or convert it again "
                     "(loading without --check-finite would use these values)")
    assert proc.stdout == ""


def test_generate_from_a_missing_folder(isolated_home, tmp_path):
    proc = run_zoo("generate", tmp_path / "nowhere" / "model", "--prompt", "hi")
    assert_one_error(proc, f"{tmp_path / 'nowhere' / 'model'}: no such folder, model card or Hugging Face repo id",
                     "`zoo list` shows the model cards; a repo id looks like owner/name")


def test_validate_an_alias_bomb_card(isolated_home, tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefghijkl", "bcdefghijklm"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    card = tmp_path / "bomb.yaml"
    card.write_text("name: bomb\narchitecture: hunyuan\nsource: {path: x}\n" + "\n".join(lines) + "\ntags: *m\n")
    proc = run_zoo("validate", card)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [f"{card}: invalid YAML: more than 100 YAML aliases (line 16); refusing a possible alias bomb"]


def test_usage_error_exits_2(isolated_home):
    proc = run_zoo("load")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == "zoo load: error: the following arguments are required: NAME|PATH|REPO_ID"


# -- the last boundary, in-process ------------------------------------------------------------------


def run_raising(monkeypatch, capsys, exc, *extra):
    """Run ``zoo [extra] list`` with the list command replaced by one raising ``exc``."""
    parser = cli.build_parser()

    def boom(args):
        raise exc

    original = parser.parse_args

    def parse(argv=None):
        args = original(argv)
        args.run = boom
        return args

    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", parse)
    code = cli.main([*extra, "list"])
    return code, capsys.readouterr()


def test_unexpected_bug_is_an_internal_error_without_traceback(monkeypatch, capsys):
    code, out = run_raising(monkeypatch, capsys, ValueError("[load_safetensors] something odd\n  at line 2"))
    assert code == 1
    assert out.err == ("zoo: internal error: ValueError: [load_safetensors] something odd at line 2 "
                       "(run with --debug for the traceback; please report)\n")


def test_debug_shows_the_traceback_of_an_internal_error(monkeypatch, capsys):
    with pytest.raises(KeyError):
        run_raising(monkeypatch, capsys, KeyError("x"), "--debug")


def test_os_error_names_the_file(monkeypatch, capsys):
    code, out = run_raising(monkeypatch, capsys, PermissionError(13, "Permission denied", "/out/model.safetensors"))
    assert code == 1
    assert out.err == "zoo: error: /out/model.safetensors: Permission denied\n"


def test_out_of_memory(monkeypatch, capsys):
    code, out = run_raising(monkeypatch, capsys, MemoryError())
    assert code == 1
    assert out.err == "zoo: error: out of memory\nhint: quantize (--quantize 4), pick a smaller model, or close other programs\n"


def test_interrupt_exits_130(monkeypatch, capsys):
    code, out = run_raising(monkeypatch, capsys, KeyboardInterrupt())
    assert code == 130 and out.err == "zoo: interrupted\n"


def test_zoo_warnings_print_as_one_line(monkeypatch, capsys):
    import warnings

    from zoo_registry.errors import ZooWarning

    parser = cli.build_parser()
    original = parser.parse_args

    def parse(argv=None):
        args = original(argv)
        args.run = lambda a: warnings.warn("config.json::$.auto_map: ignored", ZooWarning) or 0
        return args

    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(parser, "parse_args", parse)
    assert cli.main(["list"]) == 0
    assert capsys.readouterr().err == "zoo: warning: config.json::$.auto_map: ignored\n"
