"""The Argo CD health checks in deploy/argocd/health, run with a Lua 5.1 interpreter.

Argo CD runs a `resource.customizations.health.<group>_<kind>` script with the object
in the global `obj` and reads the table it returns (`status`, `message`). These tests
do the same with the Lua 5.1 interpreter that lupa bundles (`lupa.lua51`; Argo CD's
gopher-lua implements Lua 5.1) on sample objects, and check that deploy/argocd/argocd-cm-health.yaml embeds the scripts verbatim.

Regenerate the ConfigMap after editing a script:
    .venv/bin/python tests/argocd/test_health.py --write
"""

import copy
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HEALTH = ROOT / "deploy" / "argocd" / "health"
CONFIGMAP = ROOT / "deploy" / "argocd" / "argocd-cm-health.yaml"
GROUP = "crosskey.dev"
KINDS = ["AwsAccount", "SharedKey", "CrossAccountVault"]
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


# One reason per kind the operator reports for a state only a user can fix, and one it
# recovers from by itself.
TERMINAL = {
    "AwsAccount": "AssumeRoleFailed",
    "SharedKey": "PolicyInvalid",
    "CrossAccountVault": "KeyMismatch",
}
TRANSIENT = {
    "AwsAccount": "VerificationFailed",
    "SharedKey": "Throttled",
    "CrossAccountVault": "KeyNotReady",
}


@pytest.mark.parametrize("kind", KINDS)
def test_ready_true_for_the_current_generation_is_healthy(kind):
    obj = sample(kind, conditions=[
        {"type": "Drifted", "status": "False", "reason": "InSync", "message": ""},
        ready("True", "Converged", "all in place", generation=2),
    ])
    assert health(kind, obj) == {"status": "Healthy", "message": "Converged: all in place"}


@pytest.mark.parametrize("kind", KINDS)
def test_ready_false_for_a_terminal_reason_is_degraded(kind):
    obj = sample(kind, conditions=[ready("False", TERMINAL[kind], "fix the spec")])
    assert health(kind, obj) == {
        "status": "Degraded",
        "message": f"{TERMINAL[kind]}: fix the spec",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_ready_false_for_a_retried_reason_is_progressing(kind):
    obj = sample(kind, conditions=[ready("False", TRANSIENT[kind], "retrying")])
    assert health(kind, obj) == {
        "status": "Progressing",
        "message": f"{TRANSIENT[kind]}: retrying",
    }


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
    # A terminal reason of an old generation is not Degraded either: the new spec may fix it.
    old_failure = [ready("False", TERMINAL[kind], generation=2)]
    result = health(kind, sample(kind, generation=3, observed=2, conditions=old_failure))
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


@pytest.mark.parametrize("kind", KINDS)
def test_the_script_does_not_modify_the_object(kind):
    obj = sample(kind, conditions=[ready("True", "Converged", generation=2)])
    before = copy.deepcopy(obj)
    health(kind, obj)
    assert obj == before


def degraded_reasons(kind):
    table = re.search(r"local degraded = \{\n(.*?)\n\}", script(kind), re.S)
    assert table, f"{kind}.lua has no `local degraded = {{...}}` table"
    return re.findall(r"^\s+(\w+) = true,$", table.group(1), re.M)


@pytest.mark.parametrize("kind", KINDS)
def test_every_degraded_reason_is_one_the_operator_reports(kind):
    source = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.rs"))
    reasons = degraded_reasons(kind)
    assert TERMINAL[kind] in reasons and TRANSIENT[kind] not in reasons
    for reason in reasons:
        assert f'"{reason}"' in source, f"{kind}.lua: no condition reason {reason} in src/"
        obj = sample(kind, conditions=[ready("False", reason)])
        assert health(kind, obj)["status"] == "Degraded", reason


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
