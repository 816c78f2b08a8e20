"""README's two set-up commands exist and CI runs the test one verbatim."""
from tests.conftest import REPO


def test_ci_runs_the_readme_test_command():
    lines = [l.strip() for l in (REPO / "README.md").read_text().splitlines() if l.startswith("    ")]
    demo, tests = lines[0], lines[1]
    assert "demo" in demo and "pytest" in tests
    assert tests in (REPO / ".ci" / "run").read_text()
