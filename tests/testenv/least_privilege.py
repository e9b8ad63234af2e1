"""Least-privilege report: what the operator was allowed by `deploy/iam/` against what it
used, from the decision logs (`authz-decisions.jsonl`) that each emulator of a test run
wrote (tests/testenv/testenv.sh starts it with --decision-log).

It fails (exit 1) on
- any denial of the operator's roles that no test declared as provoked (a test declares
  one through the emulator's POST /_crosskey/authz/expected), and
- any action the shipped policies allow that no call used, unless
  `deploy/iam/not-exercised.txt` names it with the reason.
It also fails when that file names an action that was used after all (a stale excuse).

Usage: least_privilege.py DIR...   (searched recursively for authz-decisions.jsonl)
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
IAM_DIR = ROOT / "deploy" / "iam"
EXCUSES = IAM_DIR / "not-exercised.txt"
# The operator's identities: the hub role (operator-policy.json) and the role it
# assumes in every account (target-role-policy.json).
POLICIES = {"crosskey-operator": "operator-policy.json", "crosskey": "target-role-policy.json"}


def role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if ":role/" in arn else ""


def allowed_actions(policy_file: str) -> set[str]:
    doc = json.loads((IAM_DIR / policy_file).read_text())
    actions = set()
    for statement in doc["Statement"]:
        if statement["Effect"] == "Allow":
            value = statement["Action"]
            actions.update([value] if isinstance(value, str) else value)
    return actions


def excuses() -> dict[str, str]:
    """action -> reason, from not-exercised.txt (`action  reason`, # comments)."""
    out = {}
    for line in EXCUSES.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            action, _, reason = line.partition(" ")
            out[action] = reason.strip()
    return out


def main(dirs: list[str]) -> int:
    logs = sorted(p for d in dirs for p in pathlib.Path(d).rglob("authz-decisions.jsonl"))
    entries = []
    for log in logs:
        for line in log.read_text().splitlines():
            if line.strip():
                entries.append(json.loads(line))
    ours = [e for e in entries if role_name(e["principal"]) in POLICIES]
    print(f"least-privilege report: {len(logs)} decision logs, {len(ours)} distinct decisions of the operator's roles")
    if not ours:
        print("  no decision of the operator's roles was recorded: nothing proves the policies")
        return 1
    failed = False

    unexpected = [e for e in ours if e["decision"] == "Deny" and not e.get("expected")]
    expected = [e for e in ours if e["decision"] == "Deny" and e.get("expected")]
    print(f"  denials provoked by tests: {len(expected)}; unexpected denials: {len(unexpected)}")
    for e in unexpected:
        failed = True
        print(f"    DENIED {e['principal']} {e['action']} on {e['resource']} ({e['reason']})")

    excused = excuses()
    for role, policy_file in POLICIES.items():
        granted = allowed_actions(policy_file)
        used = {e["action"] for e in ours if role_name(e["principal"]) == role and e["decision"] == "Allow"}
        unused = sorted(granted - used)
        print(f"  {policy_file}: {len(granted)} actions allowed, {len(granted & used)} used by the tests")
        for action in unused:
            if action in excused:
                print(f"    not exercised, excused: {action} ({excused[action]})")
            else:
                failed = True
                print(f"    UNUSED {action}: remove it from deploy/iam/{policy_file}, add the test "
                      f"that needs it, or excuse it in deploy/iam/not-exercised.txt")
        for action in sorted(used & set(excused)):
            failed = True
            print(f"    STALE EXCUSE {action}: the tests used it; remove it from not-exercised.txt")
        # A call the policy does not grant by name (e.g. a wildcard) is still reported.
        for action in sorted(used - granted):
            print(f"    used but not listed by name: {action}")
    print("least-privilege report: " + ("FAILED" if failed else "OK"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or [str(ROOT / "target" / "testenv-tests")]))
