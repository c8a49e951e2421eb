"""The tests written in the docs pass: `monitors test docs/examples/*.rules`, and the test blocks of the
pairs in docs/examples.md (at least fifteen of them carry tests)."""

from __future__ import annotations

from pathlib import Path

import monitors_dsl
from monitors_dsl.cli import main
from tests.support.examples import PAIRS

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_examples_shipped_with_the_docs_pass(capsys):
    files = sorted(str(p) for p in (ROOT / "docs" / "examples").glob("*.rules") if p.name != "broken.rules")
    assert files
    code, out, err = _run(capsys, "test", *files)
    assert code == 0, out + err
    assert " 0 failed" in err and " 0 tests" not in err
    code, _, err = _run(capsys, "test", str(ROOT / "docs" / "examples" / "broken.rules"))
    assert code == 1 and "unknown function `lats`" in err


def test_the_examples_of_the_docs_page_pass():
    tested = [(words, text) for words, text in PAIRS if monitors_dsl.parse(text).tests]
    assert len(tested) >= 15
    for words, text in tested:
        results = monitors_dsl.run_tests(text)
        assert results and all(r.passed for r in results), (words, [r.failures or r.error for r in results])


def test_the_example_of_the_language_reference_passes():
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    section = text[text.index("## Tests\n"):text.index("Write two for a rule")]
    document = "\n".join(line[4:] for line in section.split("\n") if line.startswith("    "))
    assert monitors_dsl.validate(document) == []
    results = monitors_dsl.run_tests(document)
    assert [(r.name, r.passed) for r in results] == [("btc_crosses", True), ("btc_stays_below", True)]
