"""CI's last line (.ci/ci_summary.py) tells the truth, and CI fails on what was not run and not allowed.

The summary is run as .ci/run runs it, on a junit report and a collection record written here in
pytest's own formats (the junit XML of ``pytest --junitxml``), and on the real .ci/allowed-skips.
"""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "ci_summary.py"
ALLOWED = ROOT / ".ci" / "allowed-skips"
SLOW = "tests/test_example_plugin.py::test_the_plugins_own_tests_pass_with_only_the_shipped_pytest_plugin"
EXAMPLE = "examples/zoo-llama/tests/test_zoo_llama.py::test_model[llama]"


def junit(cases) -> str:
    """``cases``: (classname, name, outcome, message); outcome is passed, skipped or failure."""
    rows = []
    for classname, name, outcome, message in cases:
        inner = "" if outcome == "passed" else f'<{outcome} message="{message}"/>'
        rows.append(f'<testcase classname="{classname}" name="{name}" time="0.1">{inner}</testcase>')
    return f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{"".join(rows)}</testsuite></testsuites>'


def summarize(tmp_path, cases, deselected=(), slow=(SLOW,), example=(EXAMPLE,), allowed=ALLOWED):
    (tmp_path / "junit.xml").write_text(junit(cases))
    (tmp_path / "collection.json").write_text(json.dumps(
        {"selected": [], "slow": list(slow), "example": list(example), "deselected": list(deselected)}))
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "junit.xml"), str(tmp_path / "collection.json"), str(allowed)],
                          capture_output=True, text=True)
    return proc.returncode, proc.stdout.splitlines()


PASSED = [("tests.test_a", "test_one", "passed", ""), ("tests.test_example_plugin", SLOW.split("::")[1], "passed", ""),
          ("examples.zoo-llama.tests.test_zoo_llama", "test_model[llama]", "passed", "")]


def test_all_run_is_exit_0_and_says_so(tmp_path):
    code, lines = summarize(tmp_path, PASSED)
    assert code == 0
    assert lines == ["ci: ran 3 tests (slow included: 1, example plugin included: 1), 0 skipped, 0 deselected"]


def test_an_unlisted_skip_fails_naming_the_test_and_reason(tmp_path):
    code, lines = summarize(tmp_path, PASSED + [("tests.test_b", "test_two[x]", "skipped", "no tiktoken")])
    assert code == 1
    assert "ci: not run and not allowed: tests/test_b.py::test_two[x]: no tiktoken" in lines
    assert lines[-1] == "ci: ran 3 tests (slow included: 1, example plugin included: 1), 1 skipped, 0 deselected"


def test_a_deselected_test_fails(tmp_path):
    code, lines = summarize(tmp_path, PASSED, deselected=["tests/test_a.py::test_slow_one"])
    assert code == 1 and "ci: not run and not allowed: tests/test_a.py::test_slow_one: deselected" in lines
    assert lines[-1].endswith("0 skipped, 1 deselected")


def test_a_failure_and_no_slow_or_example_test_fail(tmp_path):
    code, lines = summarize(tmp_path, [("tests.test_a", "test_one", "failure", "assert 0")], slow=(), example=())
    assert code == 1
    assert {"ci: failed: tests/test_a.py::test_one", "ci: no test marked slow was selected"} <= set(lines)
    assert lines[-1] == "ci: ran 1 tests (slow included: 0, example plugin included: 0), 0 skipped, 0 deselected, 1 failed"


@pytest.mark.parametrize("when, allowed_here", [
    ("always", True),
    (f"{platform.system().lower()}-{platform.machine().lower()}", True),
    (f"not {platform.system().lower()}-{platform.machine().lower()}", False),
    ("not plan9-*", True),
])
def test_an_allowed_skip_passes_only_where_its_line_says(tmp_path, when, allowed_here):
    allowed = tmp_path / "allowed"
    allowed.write_text(f"# comment\n\ntests/test_b.py::test_two[*] | {when} | the reason\n")
    code, lines = summarize(tmp_path, PASSED + [("tests.test_b", "test_two[x]", "skipped", "why")], allowed=allowed)
    assert code == (0 if allowed_here else 1)
    assert ("ci: allowed: tests/test_b.py::test_two[x]: why (the reason)" in lines) is allowed_here


def test_class_based_and_example_node_ids(tmp_path):
    code, lines = summarize(tmp_path, PASSED + [("tests.test_c.TestGroup", "test_x", "skipped", "r"),
                                                ("examples.zoo-llama.tests.test_zoo_llama", "test_y", "skipped", "r")])
    assert "ci: not run and not allowed: tests/test_c.py::TestGroup::test_x: r" in lines
    assert "ci: not run and not allowed: examples/zoo-llama/tests/test_zoo_llama.py::test_y: r" in lines


def test_the_allow_list_is_short_and_every_line_has_a_reason():
    entries = [line for line in ALLOWED.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert 1 <= len(entries) <= 5
    for line in entries:
        pattern, when, reason = (part.strip() for part in line.split("|", 2))
        assert pattern.startswith("tests/") and "::" in pattern and when and len(reason) > 20, line
        assert when != "always", f"{line}: an always-allowed skip is a test CI never runs"
