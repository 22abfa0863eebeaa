"""What CI's pytest run ran, told from pytest's own results; fails on anything not run that is not allowed.

Two roles in one file (``.ci/run`` uses both):

- a pytest plugin, ``pytest -p ci_summary --ci-collection FILE`` (with ``.ci`` on ``PYTHONPATH``):
  after collection it writes FILE (JSON): the node ids selected, those of them marked ``slow``,
  those from the example plugin's own suite, and every node id deselected (``-m``, ``-k``,
  ``--deselect``; none is expected);
- ``python .ci/ci_summary.py JUNIT_XML COLLECTION_JSON ALLOWED_SKIPS``: reads pytest's junit XML and
  that file, lists every failure, skip and deselection with its reason, and ends with one line,
  e.g. ``ci: ran 1612 tests (slow included: 1, example plugin included: 5), 0 skipped, 0 deselected``.
  Exit status 1 when a test failed or errored, when no slow or example-plugin test ran, or when a test
  was skipped or deselected without a matching line in ALLOWED_SKIPS (see that file's header).
"""

from __future__ import annotations

import fnmatch
import json
import platform
import re
import sys
import xml.etree.ElementTree as ET

EXAMPLE_TESTS = "examples/zoo-llama/tests/"


# -- the pytest plugin -----------------------------------------------------------------------------

_deselected: list = []


def pytest_addoption(parser):
    parser.addoption("--ci-collection", metavar="FILE", help="write what was selected and deselected to FILE (JSON)")


def pytest_deselected(items):
    _deselected.extend(item.nodeid for item in items)


def pytest_collection_finish(session):
    path = session.config.getoption("--ci-collection")
    if not path:
        return
    items = session.items
    record = {
        "selected": [i.nodeid for i in items],
        "slow": [i.nodeid for i in items if i.get_closest_marker("slow")],
        "example": [i.nodeid for i in items if i.nodeid.startswith(EXAMPLE_TESTS)],
        "deselected": list(_deselected),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f)


# -- the summary -----------------------------------------------------------------------------------

def node_id(case) -> str:
    """``path/to/test_x.py::Class::name`` from a junit ``testcase`` (``classname`` is dotted)."""
    parts = (case.get("classname") or "").split(".")
    name = case.get("name") or ""
    for i in range(len(parts), 0, -1):  # the longest prefix that names a test file
        if parts[i - 1].startswith("test_") or parts[i - 1].endswith("_test"):
            return "::".join(["/".join(parts[:i]) + ".py", *parts[i:], name])
    return "::".join([p for p in (case.get("classname"), name) if p])  # a collection-level entry


def matches(nid: str, pattern: str) -> bool:
    """``*`` and ``?`` are wildcards; brackets are literal (they are part of parametrized test ids)."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, nid) is not None


def platform_tag() -> str:
    return f"{platform.system().lower()}-{platform.machine().lower()}"


def allowed_skips(path: str):
    """``[(pattern, reason)]`` for this platform from ALLOWED_SKIPS (``PATTERN | WHEN | REASON`` lines)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pattern, when, reason = (part.strip() for part in line.split("|", 2))
            negate = when.startswith("not ")
            tag = when[4:] if negate else when
            if when == "always" or (fnmatch.fnmatch(platform_tag(), tag) != negate):
                out.append((pattern, reason))
    return out


def summarize(junit: str, collection: str, allowed_file: str) -> int:
    record = json.load(open(collection, encoding="utf-8"))
    allowed = allowed_skips(allowed_file)
    ran, skipped, failed = 0, [], []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = {child.tag for child in case}
        nid = node_id(case)
        if outcome & {"failure", "error"}:
            failed.append(nid)
        if "skipped" in outcome:
            reason = next(child.get("message", "") for child in case if child.tag == "skipped")
            skipped.append((nid, reason))
        else:
            ran += 1
    problems = [f"ci: failed: {nid}" for nid in failed]
    allowed_seen = []
    for nid, reason in skipped + [(nid, "deselected") for nid in record["deselected"]]:
        match = next((why for pattern, why in allowed if matches(nid, pattern)), None)
        if match:
            allowed_seen.append(f"ci: allowed: {nid}: {reason} ({match})")
        else:
            problems.append(f"ci: not run and not allowed: {nid}: {reason}")
    if not record["slow"]:
        problems.append("ci: no test marked slow was selected")
    if not record["example"]:
        problems.append(f"ci: no test of the example plugin's own suite ({EXAMPLE_TESTS}) was selected")
    for line in allowed_seen + problems:
        print(line)
    print(f"ci: ran {ran} tests (slow included: {len(record['slow'])}, example plugin included: {len(record['example'])}), "
          f"{len(skipped)} skipped, {len(record['deselected'])} deselected" + (f", {len(failed)} failed" if failed else ""))
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} JUNIT_XML COLLECTION_JSON ALLOWED_SKIPS")
    sys.exit(summarize(*sys.argv[1:]))
