"""The Argo CD health checks in deploy/argocd/health, run with a Lua 5.1 interpreter.

Argo CD runs a `resource.customizations.health.<group>_<kind>` script with the object
in the global `obj` and reads the table it returns (`status`, `message`). These tests
do the same with the Lua 5.1 interpreter that lupa bundles (`lupa.lua51`; Argo CD's
gopher-lua implements Lua 5.1) on sample objects, and check that deploy/argocd/argocd-cm-health.yaml embeds the scripts verbatim.

Regenerate the ConfigMap after editing a script:
    .venv/bin/python tests/argocd/test_health.py --write
"""

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HEALTH = ROOT / "deploy" / "argocd" / "health"
CONFIGMAP = ROOT / "deploy" / "argocd" / "argocd-cm-health.yaml"
GROUP = "crosskey.dev"
KINDS = ["AwsAccount", "SharedKey", "CrossAccountVault", "CrossAccountBackupPlan"]
HEADER = """\
# Argo CD health checks for the crosskey kinds: merge `data` into the argocd-cm ConfigMap
# (or into the `configs.cm` values of the argo-cd Helm chart). Each script is a verbatim
# copy of health/<Kind>.lua, written by `.venv/bin/python tests/argocd/test_health.py
# --write`; tests/argocd/test_health.py fails when they differ.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
"""


def key(kind):
    return f"resource.customizations.health.{GROUP}_{kind}"


def script(kind):
    return (HEALTH / f"{kind}.lua").read_text()


def render_configmap():
    out = [HEADER]
    for kind in KINDS:
        out.append(f"  {key(kind)}: |\n")
        for line in script(kind).splitlines(keepends=True):
            out.append("    " + line if line.strip() else "\n")
    return "".join(out)


def to_lua(lua, value):
    """A JSON-like Python value as Lua values, the way Argo CD hands `obj` to a script."""
    if isinstance(value, dict):
        table = lua.table()
        for k, v in value.items():
            table[k] = to_lua(lua, v)
        return table
    if isinstance(value, list):
        table = lua.table()
        for i, v in enumerate(value, start=1):
            table[i] = to_lua(lua, v)
        return table
    return value


def health(kind, obj):
    from lupa.lua51 import LuaRuntime

    lua = LuaRuntime(unpack_returned_tuples=True)
    assert lua.eval("_VERSION") == "Lua 5.1"
    lua.globals().obj = to_lua(lua, obj)
    hs = lua.execute(script(kind))
    assert hs is not None, f"{kind}.lua returned nothing"
    result = dict(hs.items())
    assert set(result) <= {"status", "message"}, result
    assert result.get("status") in {"Healthy", "Progressing", "Degraded"}, result
    assert isinstance(result.get("message"), str) and result["message"], result
    return result


def ready(status, reason, message="details", generation=None):
    condition = {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def sample(kind, generation=2, observed=2, conditions=None, status=True):
    obj = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": kind,
        "metadata": {"name": "sample", "generation": generation},
        "spec": {},
    }
    if kind != "AwsAccount":
        obj["metadata"]["namespace"] = "team-a"
    if status:
        obj["status"] = {"conditions": conditions or []}
        if observed is not None:
            obj["status"]["observedGeneration"] = observed
    return obj


def condition(type_, status, reason, message="details", generation=None):
    result = ready(status, reason, message, generation)
    result["type"] = type_
    return result


# One reason per kind for which the operator reports Stalled (only a person can fix
# it), and one for which it reports Reconciling (it retries on its own).
TERMINAL = {
    "AwsAccount": "AssumeRoleFailed",
    "SharedKey": "PolicyInvalid",
    "CrossAccountVault": "KeyMismatch",
    "CrossAccountBackupPlan": "PlanExists",
}
TRANSIENT = {
    "AwsAccount": "VerificationFailed",
    "SharedKey": "Throttled",
    "CrossAccountVault": "KeyNotReady",
    "CrossAccountBackupPlan": "VaultNotReady",
}


def stalled_conditions(kind, message="fix the spec", generation=None):
    reason = TERMINAL[kind]
    return [
        ready("False", reason, message, generation),
        condition("Reconciling", "False", "Stalled", "no progress", generation),
        condition("Stalled", "True", reason, message, generation),
    ]


def retrying_conditions(kind, message="retrying", generation=None):
    reason = TRANSIENT[kind]
    return [
        ready("False", reason, "the error", generation),
        condition("Reconciling", "True", reason, message, generation),
        condition("Stalled", "False", "Retrying", "on its own", generation),
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_ready_true_for_the_current_generation_is_healthy(kind):
    obj = sample(kind, conditions=[
        {"type": "Drifted", "status": "False", "reason": "InSync", "message": ""},
        ready("True", "Converged", "all in place", generation=2),
        condition("Reconciling", "False", "Converged", "all in place", generation=2),
        condition("Stalled", "False", "Converged", "all in place", generation=2),
    ])
    assert health(kind, obj) == {"status": "Healthy", "message": "Converged: all in place"}


@pytest.mark.parametrize("kind", KINDS)
def test_stalled_is_degraded_with_its_reason(kind):
    obj = sample(kind, conditions=stalled_conditions(kind, generation=2))
    assert health(kind, obj) == {
        "status": "Degraded",
        "message": f"{TERMINAL[kind]}: fix the spec",
    }
    # Without observedGeneration on the conditions (kstatus does not demand it).
    obj = sample(kind, conditions=stalled_conditions(kind))
    assert health(kind, obj)["status"] == "Degraded"


@pytest.mark.parametrize("kind", KINDS)
def test_reconciling_is_progressing_with_its_reason(kind):
    obj = sample(kind, conditions=retrying_conditions(kind))
    assert health(kind, obj) == {
        "status": "Progressing",
        "message": f"{TRANSIENT[kind]}: retrying",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_the_operator_not_the_script_decides_what_is_degraded(kind):
    # Ready=False for a reason that usually stalls, but no Stalled condition: the
    # script keeps no list of reasons of its own.
    obj = sample(kind, conditions=[ready("False", TERMINAL[kind], "fix the spec")])
    assert health(kind, obj) == {
        "status": "Progressing",
        "message": f"{TERMINAL[kind]}: fix the spec",
    }
    for reason in ("AccessDenied", "KeyInUse", "VaultNotEmpty"):
        assert reason not in script(kind)


@pytest.mark.parametrize("kind", KINDS)
def test_ready_unknown_is_progressing(kind):
    obj = sample(kind, conditions=[ready("Unknown", TERMINAL[kind])])
    assert health(kind, obj)["status"] == "Progressing"


@pytest.mark.parametrize("kind", KINDS)
def test_a_stale_status_is_progressing_even_when_it_said_ready(kind):
    # The spec changed (generation 3) after the operator last wrote the status.
    healthy = [ready("True", "Converged", "ok", generation=2)]
    result = health(kind, sample(kind, generation=3, observed=2, conditions=healthy))
    assert result["status"] == "Progressing"
    assert "generation 3" in result["message"], result
    # Also when the condition itself is older than the status.
    result = health(kind, sample(kind, generation=3, observed=3, conditions=healthy))
    assert result["status"] == "Progressing"
    # A stall of an old generation is not Degraded either: the new spec may fix it.
    old_failure = stalled_conditions(kind, generation=2)
    result = health(kind, sample(kind, generation=3, observed=2, conditions=old_failure))
    assert result["status"] == "Progressing"
    result = health(kind, sample(kind, generation=3, observed=3, conditions=old_failure))
    assert result["status"] == "Progressing"
    # No observedGeneration at all: never observed.
    result = health(kind, sample(kind, observed=None, conditions=healthy))
    assert result["status"] == "Progressing"


@pytest.mark.parametrize("kind", KINDS)
def test_no_status_or_no_ready_condition_is_progressing(kind):
    result = health(kind, sample(kind, status=False))
    assert result["status"] == "Progressing"
    result = health(kind, sample(kind, conditions=[]))
    assert result["status"] == "Progressing"
    only_drift = [{"type": "Drifted", "status": "True", "reason": "DriftDetected"}]
    assert health(kind, sample(kind, conditions=only_drift))["status"] == "Progressing"


def from_lua(value):
    """A Lua value back as Python: a table with keys 1..n is a list, an empty table is
    an empty dict, any other table a dict."""
    from lupa.lua51 import lua_type

    if lua_type(value) != "table":
        return value
    items = dict(value.items())
    if items and sorted(items) == list(range(1, len(items) + 1)):
        return [from_lua(items[i]) for i in range(1, len(items) + 1)]
    return {k: from_lua(v) for k, v in items.items()}


def as_from_lua(value):
    """`value` the way `from_lua(to_lua(value))` gives it back when nothing changed."""
    if isinstance(value, dict):
        return {k: as_from_lua(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_from_lua(v) for v in value] if value else {}
    return value


# Objects that reach each branch of the scripts (no status, stale, no Ready condition,
# Healthy, Degraded, Progressing), each with fields a script could fill in, drop or
# reorder: several conditions, a missing message, an empty reason.
def modification_samples(kind):
    drift = {"type": "Drifted", "status": "True", "reason": "DriftDetected", "message": "m"}
    no_message = {"type": "Ready", "status": "False", "reason": TRANSIENT[kind]}
    empty_reason = dict(ready("Unknown", ""), observedGeneration=2)
    return [
        sample(kind, status=False),
        sample(kind, conditions=[]),
        sample(kind, generation=3, observed=2, conditions=[ready("True", "Converged")]),
        sample(kind, observed=None, conditions=[ready("True", "Converged")]),
        sample(kind, conditions=[drift]),
        sample(kind, generation=3, observed=3, conditions=[ready("True", "Converged", generation=2)]),
        sample(kind, conditions=[drift, ready("True", "Converged", generation=2), drift]),
        sample(kind, conditions=[ready("False", TERMINAL[kind]), drift]),
        sample(kind, conditions=stalled_conditions(kind, generation=2)),
        sample(kind, conditions=retrying_conditions(kind) + [drift]),
        sample(kind, conditions=[no_message]),
        sample(kind, conditions=[empty_reason]),
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_the_script_does_not_modify_the_object(kind):
    from lupa.lua51 import LuaRuntime

    for obj in modification_samples(kind):
        lua = LuaRuntime(unpack_returned_tuples=True)
        table = to_lua(lua, obj)
        lua.globals().obj = table
        lua.execute(script(kind))
        # The table Argo CD handed over, and whatever `obj` names afterwards, read back
        # from Lua: what the script did to them is visible here.
        assert from_lua(table) == as_from_lua(obj), obj
        assert from_lua(lua.globals().obj) == as_from_lua(obj), obj
        # The same check, sensitive: a change to the object is seen by it.
        table["metadata"]["name"] = "changed"
        assert from_lua(table) != as_from_lua(obj)


def test_the_kinds_share_one_script_apart_from_its_header():
    bodies = {kind: script(kind).split("\n", 2)[2] for kind in KINDS}
    assert len(set(bodies.values())) == 1, "the health scripts differ beyond their header"


@pytest.mark.parametrize("kind", KINDS)
def test_the_script_has_the_form_argo_cd_expects(kind):
    text = script(kind)
    assert re.search(r"^hs = \{\}$", text, re.M), "hs = {} at the top level"
    assert text.rstrip().endswith("return hs")


def test_the_kinds_are_the_crds_kinds():
    crds = [d for d in yaml.safe_load_all((ROOT / "crds" / "crosskey.yaml").read_text()) if d]
    assert sorted((c["spec"]["group"], c["spec"]["names"]["kind"]) for c in crds) == sorted(
        (GROUP, kind) for kind in KINDS
    )
    assert sorted(p.stem for p in HEALTH.glob("*.lua")) == sorted(KINDS)


def test_the_argocd_cm_snippet_embeds_the_scripts_verbatim():
    text = CONFIGMAP.read_text()
    assert text == render_configmap(), (
        "deploy/argocd/argocd-cm-health.yaml is stale: "
        "run `.venv/bin/python tests/argocd/test_health.py --write`"
    )
    cm = yaml.safe_load(text)
    assert (cm["apiVersion"], cm["kind"]) == ("v1", "ConfigMap")
    assert cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"] == {key(kind): script(kind) for kind in KINDS}


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        CONFIGMAP.write_text(render_configmap())
    else:
        sys.exit("usage: test_health.py --write")
