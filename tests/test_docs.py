"""README and CI stay true to the code: the two commands, the CLI tour, the benchmark table."""

import re
import subprocess
import sys
from pathlib import Path

from darla.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _block(marker: str) -> str:
    m = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)\n```\s*<!-- /{marker} -->", README, re.S)
    assert m, f"README.md lacks its {marker} block"
    return m.group(1).strip()


def test_readme_has_the_two_setup_commands_with_the_cpu_constraints():
    run, test = _block("run-command"), _block("test-command")
    assert run.endswith("darla run") and "-c constraints/cpu.txt" in run
    assert "pytest" in test and '".[test]"' in test
    assert "torch==" in (ROOT / "constraints" / "cpu.txt").read_text()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "test-command" in ci  # .ci/run extracts the command from README, so they cannot drift


def test_every_cli_subcommand_is_in_the_readme_tour():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert f"darla {name}" in README, f"README's CLI tour does not mention `darla {name}`"


def test_readme_benchmark_table_matches_the_committed_results():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "table.py"), "--check"])
    assert proc.returncode == 0, "README benchmark table is stale: run python benchmarks/table.py"
