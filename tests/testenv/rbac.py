"""The operator's Kubernetes RBAC in the test world, from the chart and the audit log.

    rbac.py select < rendered.yaml > rbac.yaml
        Keeps the ServiceAccount, (Cluster)Roles and (Cluster)RoleBindings of a
        `helm template` of charts/crosskey: exactly the RBAC the chart gives the operator.

    rbac.py check DIR... [--excuses FILE]
        Reads each DIR's operator-rbac.yaml (the rules applied by testenv.sh) and
        logs/audit.jsonl (the API server's audit log), and fails when the operator's
        ServiceAccount was refused a request (403), or when the chart grants a
        (group, resource, verb) that no request of the operator used, unless FILE
        excuses it with a reason.
"""

import json
import sys
from pathlib import Path

import yaml

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
OPERATOR = "system:serviceaccount:crosskey:crosskey"


def select(stream):
    docs = [d for d in yaml.safe_load_all(stream) if d and d.get("kind") in RBAC_KINDS]
    return yaml.safe_dump_all(docs, sort_keys=False)


def granted(rbac_file):
    """(group, resource, verb) of every rule bound to the operator's ServiceAccount."""
    docs = [d for d in yaml.safe_load_all(Path(rbac_file).read_text()) if d]
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("ClusterRole", "Role")}
    grants = set()
    for binding in (d for d in docs if d["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        bound = any(
            s.get("kind") == "ServiceAccount"
            and f"system:serviceaccount:{s.get('namespace')}:{s.get('name')}" == OPERATOR
            for s in binding.get("subjects") or []
        )
        role = roles.get((binding["roleRef"]["kind"], binding["roleRef"]["name"]))
        if not bound or role is None:
            continue
        for rule in role.get("rules") or []:
            for group in rule.get("apiGroups", [""]):
                for resource in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        grants.add((group, resource, verb))
    return grants


# After a restart the API server answers 403 for a moment, until its RBAC caches are
# filled; refusals this long after it reported ready are still counted as its own.
RESTART_SETTLE_SECONDS = 10


def parse_time(text):
    """An RFC 3339 UTC timestamp (nanoseconds allowed) as seconds since the epoch."""
    from datetime import datetime, timezone

    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return seconds + float("0." + (fraction or "0"))


def restart_windows(log_file):
    """(start, end) of each API server restart that testenv.sh recorded."""
    windows = []
    if Path(log_file).exists():
        for line in Path(log_file).read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                windows.append((parse_time(parts[0]), parse_time(parts[1]) + RESTART_SETTLE_SECONDS))
    return windows


def requests(audit_file):
    """(group, resource, verb, code, received) of every request made as the operator."""
    found = []
    if not Path(audit_file).exists():
        return found
    with open(audit_file) as lines:
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            user = (event.get("impersonatedUser") or event.get("user") or {}).get("username")
            ref = event.get("objectRef")
            if user != OPERATOR or not ref:
                continue
            resource = ref.get("resource", "")
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            code = (event.get("responseStatus") or {}).get("code", 0)
            received = parse_time(event.get("requestReceivedTimestamp", "1970-01-01T00:00:00Z"))
            found.append((ref.get("apiGroup", ""), resource, event.get("verb", ""), code, received))
    return found


def excuses(path):
    """`group resource verb  # reason` lines."""
    out = set()
    if not path or not Path(path).exists():
        return out
    for line in Path(path).read_text().splitlines():
        rule, _, reason = line.partition("#")
        parts = rule.split()
        if len(parts) == 3 and reason.strip():
            group = "" if parts[0] == "core" else parts[0]
            out.add((group, parts[1], parts[2]))
    return out


def check(dirs, excuse_file):
    grants, used, refused, restarting = set(), set(), [], 0
    for d in map(Path, dirs):
        if not (d / "operator-rbac.yaml").exists():
            continue
        grants |= granted(d / "operator-rbac.yaml")
        windows = restart_windows(d / "logs" / "apiserver-restarts.log")
        for group, resource, verb, code, received in requests(d / "logs" / "audit.jsonl"):
            if code == 403 and any(start <= received <= end for start, end in windows):
                restarting += 1
            elif code == 403:
                refused.append(f"{verb} {group or 'core'}/{resource} ({d.name})")
            else:
                used.add((group, resource, verb))
    if not grants:
        print("no operator-rbac.yaml found: nothing was checked", file=sys.stderr)
        return 1
    unused = sorted(grants - used - excuses(excuse_file))
    print(f"operator requests: {len(used)} distinct (group, resource, verb) used of {len(grants)} granted")
    if restarting:
        print(f"refusals while the API server restarted (not the chart's RBAC): {restarting}")
    failed = False
    if refused:
        failed = True
        print("the chart's RBAC refused the operator:")
        for r in sorted(set(refused)):
            print(f"  {r}")
    if unused:
        failed = True
        print("granted by the chart but used by no test (remove it, or excuse it with a reason):")
        for group, resource, verb in unused:
            print(f"  {group or 'core'} {resource} {verb}")
    return 1 if failed else 0


def main(argv):
    if len(argv) >= 1 and argv[0] == "select":
        sys.stdout.write(select(sys.stdin))
        return 0
    if len(argv) >= 1 and argv[0] == "check":
        args, excuse_file = argv[1:], None
        if "--excuses" in args:
            i = args.index("--excuses")
            excuse_file = args[i + 1]
            args = args[:i] + args[i + 2:]
        dirs = [Path(a) for a in args] + [p for a in args for p in sorted(Path(a).glob("*")) if p.is_dir()]
        return check(dirs, excuse_file)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
