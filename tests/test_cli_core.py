"""The listing commands: fast, no MLX, no tracebacks, documented exit codes."""

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import run_zoo

NO_MLX = textwrap.dedent(
    """
    import sys
    from zoo_registry.cli.main import main
    code = main({argv!r})
    heavy = sorted(m for m in sys.modules if m == "mlx" or m.startswith(("mlx.", "mlx_lm", "zoo_hunyuan.model", "torch", "transformers")))
    print("HEAVY=" + ",".join(heavy), file=sys.stderr)
    sys.exit(code)
    """
)


@pytest.mark.parametrize(
    "argv",
    [["list"], ["list", "--json"], ["plugins"], ["info", "hunyuan"], ["info", "hunyuan_v1_dense", "--json"], ["validate", "CONFIG"]],
    ids=lambda a: " ".join(a),
)
def test_listing_commands_import_no_model_code_or_mlx(isolated_home, tmp_path, argv):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "hunyuan"}))
    argv = [str(config) if a == "CONFIG" else a for a in argv]
    proc = subprocess.run([sys.executable, "-c", NO_MLX.format(argv=argv)], capture_output=True, text=True)
    heavy = [line for line in proc.stderr.splitlines() if line.startswith("HEAVY=")]
    assert heavy == ["HEAVY="], proc.stderr


def test_unknown_command_is_a_usage_error(isolated_home):
    proc = run_zoo("frobnicate")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_info_on_unknown_name_suggests_the_closest(isolated_home):
    proc = run_zoo("info", "hunyaun")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == "zoo: error: nothing named 'hunyaun' (did you mean 'hunyuan'?)"
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(isolated_home):
    proc = run_zoo("--debug", "info", "hunyaun")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "UnknownNameError" in proc.stderr


def test_debug_also_works_after_the_subcommand(isolated_home):
    proc = run_zoo("info", "hunyaun", "--debug")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "UnknownNameError" in proc.stderr


def test_python_dash_m_zoo_registry_is_the_cli(isolated_home):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "zoo_registry", "info", "hunyaun"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == "zoo: error: nothing named 'hunyaun' (did you mean 'hunyuan'?)"


def test_info_prints_every_schema_field_with_its_description(isolated_home):
    info = json.loads(run_zoo("info", "hunyuan", "--json", check=0).stdout)
    assert info["provider"] == "hunyuan"
    keys = {f["key"]: f for f in info["fields"]}
    for key in ("use_mixed_mlp_moe", "use_cla", "cla_share_factor", "num_shared_expert", "moe_topk"):
        assert keys[key]["description"], key
    assert all(f["description"] for f in info["fields"]), [f["key"] for f in info["fields"] if not f["description"]]


def test_validate_reports_a_misspelled_key_with_file_path_and_suggestion(isolated_home, tmp_path):
    config = tmp_path / "config.json"
    good = json.loads(run_zoo("info", "hunyuan", "--json", check=0).stdout)  # schema exists
    assert good["config_schema"]
    config.write_text(json.dumps({"model_type": "hunyuan", "cla_share_factr": 2}))
    proc = run_zoo("validate", config)
    assert proc.returncode == 1
    assert f"{config}::$.cla_share_factr: unknown key (did you mean 'cla_share_factor'?)" in proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr


def test_validate_lists_all_errors_across_files(isolated_home, tmp_path):
    bad_card = tmp_path / "card.yaml"
    bad_card.write_text("name: x\narchitecture: hunyuan\nsource: {path: .}\nlicence: mit\n")
    bad_yaml = tmp_path / "broken.yaml"
    bad_yaml.write_text("name: [unclosed\n")
    proc = run_zoo("validate", bad_card, bad_yaml)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert f"{bad_card}::$.licence: unknown key (did you mean 'license'?)" in lines
    assert any(line.startswith(f"{bad_yaml}:2:1: invalid YAML") for line in lines), lines
