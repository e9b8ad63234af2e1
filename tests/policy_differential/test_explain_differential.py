"""Differential test: `crosskey policy explain` (the Rust policy engine) and the test
emulator's KMS authorization (tests/testenv/moto/crosskey_moto) must reach the same
decision on every case: the hand-written corpus in tests/fixtures/policy-cases, whose
expected decisions come from the AWS documentation, and 10,000 random cases with a
fixed seed (casegen.py).

The binary is found through CROSSKEY_BIN (default target/debug/crosskey); build it
first (`make build`). Every disagreement is listed with both decisions and the Rust
reasons.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
from pathlib import Path

import pytest

import casegen

SEED = 19
RANDOM_CASES = int(os.environ.get("CROSSKEY_DIFF_CASES", "10000"))


def crosskey_bin() -> Path:
    path = Path(os.environ.get("CROSSKEY_BIN", casegen.REPO / "target" / "debug" / "crosskey"))
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build crosskey first (make build) or set CROSSKEY_BIN")
    return path


def explain_batch(cases: list[dict]) -> dict:
    """id -> {"decision", "reasons"} from one `crosskey policy explain --batch -` run."""
    lines = "".join(json.dumps(case) + "\n" for case in cases)
    proc = subprocess.run(
        [str(crosskey_bin()), "policy", "explain", "--batch", "-"],
        input=lines, capture_output=True, text=True, timeout=120, check=False,
    )
    answers = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    errors = [a for a in answers if "error" in a]
    assert proc.returncode == 0 and not errors, (proc.returncode, proc.stderr, errors[:5])
    assert len(answers) == len(cases)
    return {a["id"]: a for a in answers}


def disagreements(cases: list[dict]) -> list[str]:
    rust = explain_batch(cases)
    out = []
    for case in cases:
        emulator = casegen.emulator_decision(case)
        answer = rust[case["id"]]
        if answer["decision"] != emulator:
            out.append(
                f"{case['id']}: explain {answer['decision']}, emulator {emulator}\n"
                f"  explain reasons: {answer['reasons']}\n  case: {json.dumps(case)}"
            )
    return out


def test_fixture_corpus_matches_the_documented_decisions():
    cases = casegen.load_fixture_cases()
    assert len(cases) >= 20
    wrong = [
        f"{c['id']}: emulator {casegen.emulator_decision(c)}, documented {c['expected']}"
        for c in cases if casegen.emulator_decision(c) != c["expected"]
    ]
    assert not wrong, "\n".join(wrong)


def test_explain_agrees_with_the_emulator_on_the_fixture_corpus():
    found = disagreements(casegen.load_fixture_cases())
    assert not found, f"{len(found)} disagreements:\n" + "\n".join(found)


def test_explain_agrees_with_the_emulator_on_random_cases():
    cases = casegen.random_cases(RANDOM_CASES, SEED)
    # The generator must produce both outcomes, across accounts and with conditions.
    decisions = collections.Counter(casegen.emulator_decision(c) for c in cases[:2000])
    assert decisions["Allow"] > 200 and decisions["Deny"] > 200, decisions
    found = disagreements(cases)
    assert not found, f"{len(found)} of {len(cases)} cases disagree:\n" + "\n".join(found[:50])
