"""The Helm chart: lint, offline schema validation, one pod per enabled strategy, the singletons,
secrets by reference only, the set-up hook, the exogenous poll CronJob, identity, probes,
disruption budgets and network policies."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.deploy.chartkit import (
    BASE_SET,
    CHART,
    CRD_KINDS,
    KUBE_VERSION,
    REGISTRY,
    registry_with,
)

pytestmark = pytest.mark.timeout(1800)  # the first test may build the tools (see conftest)

KRAKEN = ["exchange.mode=kraken", "serviceAccount.roleArn=arn:aws:iam::123456789012:role/btcmeta-test"]
MINIMAL = ["bridge.enabled=false", "metaConsumer.enabled=false", "pdb.enabled=false", "setup.enabled=false",
           "serviceAccount.create=false", "serviceAccount.name=existing", "networkPolicy.enabled=false",
           "externalSecrets.clusterSecretStore.create=false", "exogenousPoll.enabled=false",
           "strategies.overrides.ott.replicas=2",
           "strategies.overrides.ott.resources.requests.cpu=1", "extraEnv.BTCMETA_EXPOSURE_STEP=0.5"]
#: Value sets the lint, schema and secret checks run under: defaults, live trading with an IAM
#: role, and every optional part switched off (with per-strategy overrides).
VARIANTS = {"defaults": [], "kraken-irsa": KRAKEN, "minimal": MINIMAL}
SINGLETONS = ("tick-emitter", "meta-consumer", "executor")
POLL = "btcmeta-exogenous-poll"
#: Kinds whose documents hold a pod template (see pod_template).
WORKLOADS = ("Deployment", "Job", "CronJob")


def enabled_names(registry: dict[str, Any]) -> set[str]:
    return {s["name"] for s in registry["strategies"] if s["enabled"]}


def strategy_deployments(rendered) -> dict[str, dict[str, Any]]:
    """Registry name -> Deployment, read from the container's args (run <name>)."""
    found = {}
    for dep in rendered.of_kind("Deployment"):
        if dep["metadata"]["labels"]["app.kubernetes.io/component"] != "strategy":
            continue
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", "strategy_consumers"]
        assert container["args"][0] == "run"
        found[container["args"][1]] = dep
    return found


def pod_template(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a Deployment, Job or CronJob."""
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return spec["template"]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_template(doc)["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def component(doc: dict[str, Any]) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def hook_weight(doc: dict[str, Any]) -> int | None:
    annotations = doc["metadata"].get("annotations") or {}
    if "helm.sh/hook" not in annotations:
        return None
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    return int(annotations["helm.sh/hook-weight"])


# ---- lint and schemas -------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_passes(tools, variant):
    cmd = [str(tools.helm), "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION]
    for item in [*BASE_SET, *VARIANTS[variant]]:
        cmd += ["--set", item]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_validates_against_the_kubernetes_schemas(render, variant):
    rendered = render(VARIANTS[variant], validate=True)
    invalid = [f"{r['kind']}/{r['name']}: {r.get('error')}"
               for r in rendered.records if r["status"] == "invalid"]
    assert not invalid, "\n".join(invalid)
    unchecked = {r["kind"] for r in rendered.records if r["status"] != "ok"}
    # Only the External Secrets CRDs lack a schema; their structure is checked below.
    assert unchecked <= set(CRD_KINDS)
    if variant != "minimal":
        assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "PodDisruptionBudget", "Job",
                "CronJob", "NetworkPolicy"} <= {
            r["kind"] for r in rendered.records if r["status"] == "ok"
        }


def test_optional_parts_switch_off_and_overrides_apply(render):
    rendered = render(MINIMAL)
    kinds = {d["kind"] for d in rendered.docs}
    assert kinds == {"ConfigMap", "Deployment", "ExternalSecret"}
    names = {d["metadata"]["name"] for d in rendered.of_kind("Deployment")}
    assert "btcmeta-bridge" not in names and "btcmeta-meta-consumer" not in names
    assert {"btcmeta-executor", "btcmeta-tick-emitter"} <= names
    ott = strategy_deployments(rendered)["ott"]
    assert ott["spec"]["replicas"] == 2
    resources = ott["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["cpu"] in (1, "1")
    assert resources["requests"]["memory"] and resources["limits"]["memory"]  # merged over the defaults
    others = [d for n, d in strategy_deployments(rendered).items() if n != "ott"]
    assert all(d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "100m"
               for d in others)
    for dep in rendered.of_kind("Deployment"):
        assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "existing"
    assert rendered.named("ConfigMap", "btcmeta-config")["data"]["BTCMETA_EXPOSURE_STEP"] == "0.5"


def test_the_validator_rejects_what_kubernetes_would(tools, tmp_path):
    """Guards the check above: a misspelt field and a wrong type must both be reported."""
    bad = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"replicas": "one", "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicy": "Always",
                                                       "livenessProbes": {}}]}}},
    }
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(bad) + "\n---\n" + json.dumps(unknown))
    records = tools.parse([path], validate=True)
    assert [r["status"] for r in records] == ["invalid", "invalid"]


def test_external_secrets_resources_are_well_formed(render):
    rendered = render(KRAKEN)
    stores = rendered.of_kind("ClusterSecretStore")
    assert len(stores) == 1
    store = stores[0]
    assert store["apiVersion"] == "external-secrets.io/v1"
    provider = store["spec"]["provider"]
    assert list(provider) == ["onepassword"]
    onepassword = provider["onepassword"]
    assert onepassword["connectHost"].startswith(("http://", "https://"))
    assert onepassword["vaults"] and all(isinstance(v, int) for v in onepassword["vaults"].values())
    token = onepassword["auth"]["secretRef"]["connectTokenSecretRef"]
    assert set(token) == {"name", "namespace", "key"} and all(token.values())

    externals = rendered.of_kind("ExternalSecret")
    assert {e["metadata"]["name"] for e in externals} == {
        "btcmeta-database", "btcmeta-exchange", "btcmeta-bridge", "btcmeta-setup-database"}
    for es in externals:
        spec = es["spec"]
        assert es["apiVersion"] == "external-secrets.io/v1"
        assert set(spec) == {"refreshInterval", "secretStoreRef", "target", "data"}
        assert re.fullmatch(r"\d+[smh]", spec["refreshInterval"])
        assert spec["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": store["metadata"]["name"]}
        assert spec["target"] == {"name": es["metadata"]["name"], "creationPolicy": "Owner",
                                  "deletionPolicy": "Retain"}
        for item in spec["data"]:
            assert set(item) == {"secretKey", "remoteRef"}
            assert re.fullmatch(r"BTCMETA_[A-Z_]+", item["secretKey"])
            assert set(item["remoteRef"]) == {"key", "property"} and all(item["remoteRef"].values())


# ---- one Deployment per enabled strategy ------------------------------------------------------


def test_chart_reads_the_repository_registry_through_its_symlink(render):
    link = CHART / "strategies_registry.json"
    assert link.is_symlink() and link.resolve() == REGISTRY.resolve()
    registry = json.loads(REGISTRY.read_text())
    rendered = render()
    assert set(strategy_deployments(rendered)) == enabled_names(registry)
    mounted = rendered.named("ConfigMap", "btcmeta-registry")["data"]["strategies_registry.json"]
    assert json.loads(mounted) == registry


def test_adding_an_enabled_entry_adds_exactly_one_deployment(render, tmp_path):
    before = render(registry=registry_with(tmp_path / "a", lambda s: None))

    def add(strategies):
        strategies.append({**strategies[0], "name": "new_momentum", "timeframe": "4h"})

    after = render(registry=registry_with(tmp_path / "b", add))
    old, new = strategy_deployments(before), strategy_deployments(after)
    assert set(new) - set(old) == {"new_momentum"} and set(old) <= set(new)
    assert len(after.of_kind("Deployment")) == len(before.of_kind("Deployment")) + 1
    dep = new["new_momentum"]
    assert dep["metadata"]["name"] == "btcmeta-strategy-new-momentum"
    assert dep["spec"]["template"]["metadata"]["annotations"]["btcmeta.io/timeframe"] == "4h"
    # Its PodDisruptionBudget comes with it; nothing else changes kind-wise.
    assert len(after.of_kind("PodDisruptionBudget")) == len(before.of_kind("PodDisruptionBudget")) + 1
    # Existing strategies are untouched (their own registry entry's checksum did not change).
    for name, dep_before in old.items():
        assert new[name] == dep_before


@pytest.mark.parametrize("how", ["remove", "disable"])
def test_removing_or_disabling_an_entry_removes_its_deployment(render, tmp_path, how):
    registry = json.loads(REGISTRY.read_text())
    victim = sorted(enabled_names(registry))[0]

    def change(strategies):
        for i, s in enumerate(strategies):
            if s["name"] == victim:
                if how == "remove":
                    del strategies[i]
                else:
                    s["enabled"] = False
                return

    rendered = render(registry=registry_with(tmp_path / "r", change))
    assert set(strategy_deployments(rendered)) == enabled_names(registry) - {victim}
    pdb_names = {p["metadata"]["name"] for p in rendered.of_kind("PodDisruptionBudget")}
    assert f"btcmeta-strategy-{victim.replace('_', '-')}" not in pdb_names


def test_a_broken_registry_stops_the_render(tools, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"strategies": [')
    cmd = [str(tools.helm), "template", "btcmeta", str(CHART), "--set", BASE_SET[0],
           "--set-file", f"registry={broken}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "registry" in done.stderr


def test_editing_one_strategy_restarts_only_that_strategy(render, tmp_path):
    registry = json.loads(REGISTRY.read_text())
    target = sorted(enabled_names(registry))[0]

    def bump(strategies):
        for s in strategies:
            if s["name"] == target:
                s["version"] = "9.9.9"

    before = strategy_deployments(render(registry=registry_with(tmp_path / "a", lambda s: None)))
    after = strategy_deployments(render(registry=registry_with(tmp_path / "b", bump)))
    changed = {n for n in before if before[n]["spec"]["template"] != after[n]["spec"]["template"]}
    assert changed == {target}


# ---- singletons and workloads -----------------------------------------------------------------


def test_executor_is_exactly_one_replica_with_recreate(render):
    # Even a value that asks for more cannot change it.
    rendered = render(["executor.replicas=3"])
    executor = rendered.named("Deployment", "btcmeta-executor")
    assert executor["spec"]["replicas"] == 1
    assert executor["spec"]["strategy"] == {"type": "Recreate"}
    container = executor["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "executor"] and container["args"] == ["run"]


@pytest.mark.parametrize("name", SINGLETONS)
def test_singletons_never_run_twice(render, name):
    dep = render().named("Deployment", f"btcmeta-{name}")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"]["type"] == "Recreate"


def test_each_service_runs_its_module_from_the_right_image(render):
    rendered = render(["image.registry=registry.example/btcmeta", "image.tag=abc123"])
    expected = {
        "btcmeta-tick-emitter": ("tick_emitter", "btcmeta-services"),
        "btcmeta-meta-consumer": ("meta_consumer", "btcmeta-meta"),
        "btcmeta-executor": ("executor", "btcmeta-services"),
        "btcmeta-bridge": ("bridge", "btcmeta-services"),
    }
    for name, (module, image) in expected.items():
        container = rendered.named("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", module]
        assert container["image"] == f"registry.example/btcmeta/{image}:abc123"
    for dep in strategy_deployments(rendered).values():
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith("/btcmeta-services:abc123")


def test_bridge_has_a_service_on_its_http_port(render):
    rendered = render()
    bridge = rendered.named("Deployment", "btcmeta-bridge")
    service = rendered.named("Service", "btcmeta-bridge")
    pod_labels = bridge["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    container = bridge["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["BTCMETA_BRIDGE__HOST"] == "0.0.0.0" and env["BTCMETA_BRIDGE__PORT"] == "8080"


def test_every_container_has_probes_resources_and_a_locked_down_context(render):
    rendered = render()
    for dep in rendered.of_kind("Deployment"):
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert c[probe]["httpGet"]["port"] == "metrics", (dep["metadata"]["name"], probe)
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
            assert c["resources"]["limits"]["memory"]
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_ask_the_health_endpoints_not_metrics(render, variant):
    """/metrics answers while a service is wedged (its server is a thread of its own): liveness and
    startup ask /healthz/live (the main loop turned), readiness /healthz/ready (and Postgres/Kafka
    answered), served by common/health.py on the metrics port of every service, the bridge too."""
    from common.health import LIVE_PATH, READY_PATH

    rendered = render(VARIANTS[variant])
    seen = set()
    for dep in rendered.of_kind("Deployment"):
        seen.add(component(dep))
        for c in dep["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert "metrics" in ports, dep["metadata"]["name"]
            paths = {probe: c[probe]["httpGet"]["path"] for probe in ("startupProbe", "readinessProbe",
                                                                      "livenessProbe")}
            assert paths == {"startupProbe": LIVE_PATH, "livenessProbe": LIVE_PATH,
                             "readinessProbe": READY_PATH}, dep["metadata"]["name"]
            # A readiness failure only takes the pod out of rotation; liveness must tolerate a
            # dependency outage longer than readiness does (it restarts the pod).
            live, ready = c["livenessProbe"], c["readinessProbe"]
            assert live["periodSeconds"] * live["failureThreshold"] >= ready["periodSeconds"] * ready[
                "failureThreshold"]
    assert {"tick-emitter", "executor", "strategy"} <= seen


def test_every_deployment_has_exactly_one_disruption_budget(render):
    rendered = render()
    pdbs = rendered.of_kind("PodDisruptionBudget")
    for dep in rendered.of_kind("Deployment"):
        labels = dep["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(covering) == 1, dep["metadata"]["name"]
    bridge_pdb = rendered.named("PodDisruptionBudget", "btcmeta-bridge")
    assert bridge_pdb["spec"]["minAvailable"] == 1


def test_all_pods_share_one_configmap_with_the_msk_settings(render):
    rendered = render(KRAKEN)
    config = rendered.named("ConfigMap", "btcmeta-config")["data"]
    assert config["BTCMETA_KAFKA__BOOTSTRAP_SERVERS"] == "b-1.test.example:9098"
    assert config["BTCMETA_KAFKA__SECURITY"] == "MSK_IAM"
    # The exchange mode is the executor's alone (kraken mode requires keys only it receives).
    assert "BTCMETA_EXCHANGE__MODE" not in config
    assert config["BTCMETA_REGISTRY_PATH"] == "/etc/btcmeta/registry/strategies_registry.json"
    for dep in rendered.of_kind("Deployment"):
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert {"configMapRef": {"name": "btcmeta-config"}} in container["envFrom"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/etc/btcmeta/registry" in mounts


def test_rendering_without_the_kafka_brokers_fails(tools):
    done = subprocess.run([str(tools.helm), "template", "btcmeta", str(CHART)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "kafka.bootstrapServers" in done.stderr


# ---- secrets ----------------------------------------------------------------------------------

SECRET_WORDS = re.compile(r"(SECRET|PASSWORD|TOKEN|API_KEY|DATABASE_URL|PRIVATE)", re.I)


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_secret_values_anywhere_in_the_output(render, variant):
    rendered = render(VARIANTS[variant])
    assert not rendered.of_kind("Secret"), "the chart must not create Secrets itself (ESO does)"
    for cm in rendered.of_kind("ConfigMap"):
        assert not [k for k in cm.get("data", {}) if SECRET_WORDS.search(k)], cm["metadata"]["name"]
    for doc in rendered.docs:
        if doc["kind"] not in WORKLOADS:
            continue
        for c in containers(doc):
            for env in c.get("env", []):
                assert not SECRET_WORDS.search(env["name"]), (doc["metadata"]["name"], env["name"])
    # No credential-looking text at all: connection URLs with passwords, 1Password values, keys.
    assert not re.search(r"postgres(ql)?(\+\w+)?://[^\s\"']*:[^\s\"']*@", rendered.text)
    assert "-----BEGIN" not in rendered.text


def test_each_secret_reaches_only_the_pods_that_need_it(render):
    def secret_refs(doc):
        return {e["secretRef"]["name"] for c in containers(doc) for e in c["envFrom"] if "secretRef" in e}

    paper = render()
    assert "btcmeta-exchange" not in {e["metadata"]["name"] for e in paper.of_kind("ExternalSecret")}
    assert secret_refs(paper.named("Deployment", "btcmeta-executor")) == {"btcmeta-database"}
    assert secret_refs(paper.named("CronJob", POLL)) == {"btcmeta-database"}

    live = render(KRAKEN)
    refs = {d["metadata"]["name"]: secret_refs(d) for d in live.of_kind("Deployment")}
    assert refs.pop("btcmeta-executor") == {"btcmeta-database", "btcmeta-exchange"}
    assert refs.pop("btcmeta-bridge") == {"btcmeta-database", "btcmeta-bridge"}
    assert all(r == {"btcmeta-database"} for r in refs.values()), refs
    assert secret_refs(live.named("Job", "btcmeta-setup")) == {"btcmeta-setup-database"}
    # The exogenous poll reads public sources only: the database, never the exchange keys.
    assert secret_refs(live.named("CronJob", POLL)) == {"btcmeta-database"}


@pytest.mark.parametrize("mode", ["paper", "kraken"])
def test_only_the_executor_is_told_the_exchange_mode(render, mode):
    rendered = render([f"exchange.mode={mode}"])
    assert rendered.of_kind("CronJob")
    for doc in [d for d in rendered.docs if d["kind"] in WORKLOADS]:
        env = {e["name"]: e.get("value") for c in containers(doc) for e in c.get("env", [])}
        if doc["metadata"]["name"] == "btcmeta-executor":
            assert env["BTCMETA_EXCHANGE__MODE"] == mode
        else:
            assert "BTCMETA_EXCHANGE__MODE" not in env, doc["metadata"]["name"]


# ---- set-up hook and identity -----------------------------------------------------------------


def test_setup_job_migrates_then_creates_topics_before_install_and_upgrade(render):
    rendered = render(KRAKEN)
    job = rendered.named("Job", "btcmeta-setup")
    pod = job["spec"]["template"]["spec"]
    assert [c["command"] for c in pod["initContainers"]] == [["python", "-m", "ops", "migrate"]]
    assert [c["command"] for c in pod["containers"]] == [["python", "-m", "ops", "topics"]]
    assert pod["restartPolicy"] == "Never"
    job_weight = hook_weight(job)
    assert job_weight is not None
    # What the Job uses exists before it: hooks of lower weight (ordinary resources come later).
    used = {("ServiceAccount", pod["serviceAccountName"]), ("ConfigMap", "btcmeta-setup-config"),
            ("ConfigMap", "btcmeta-setup-registry"), ("ExternalSecret", "btcmeta-setup-database"),
            ("ClusterSecretStore", "onepassword-btcmeta")}
    for kind, name in used:
        weight = hook_weight(rendered.named(kind, name))
        assert weight is not None and weight < job_weight, (kind, name)
    # The registry the Job's `ops topics` reads (bar topics per timeframe) is the rendered one.
    registry = rendered.named("ConfigMap", "btcmeta-setup-registry")["data"]["strategies_registry.json"]
    assert json.loads(registry) == json.loads(REGISTRY.read_text())
    # Every other resource is an ordinary release resource.
    hooks = {(d["kind"], d["metadata"]["name"]) for d in rendered.docs if hook_weight(d) is not None}
    assert hooks == used | {("Job", "btcmeta-setup")}


def test_pods_use_the_irsa_service_account_for_msk(render):
    arn = "arn:aws:iam::123456789012:role/btcmeta-test"
    rendered = render(KRAKEN)
    accounts = {a["metadata"]["name"]: a for a in rendered.of_kind("ServiceAccount")}
    assert set(accounts) == {"btcmeta", "btcmeta-setup"}
    for account in accounts.values():
        assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == arn
    for dep in [*rendered.of_kind("Deployment"), *rendered.of_kind("CronJob")]:
        assert pod_template(dep)["spec"]["serviceAccountName"] == "btcmeta"
    # Without a role the annotation is absent rather than empty.
    plain = render()
    for account in plain.of_kind("ServiceAccount"):
        assert "eks.amazonaws.com/role-arn" not in (account["metadata"].get("annotations") or {})


# ---- exogenous poll CronJob -------------------------------------------------------------------


def test_exogenous_poll_cronjob_runs_the_poll_from_the_services_image(render):
    rendered = render(["image.registry=registry.example/btcmeta", "image.tag=abc123"])
    cron = rendered.named("CronJob", POLL)
    assert component(cron) == "exogenous-poll"
    spec = cron["spec"]
    assert spec["schedule"] == "*/10 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    # A run is killed before the next one is due (every 10 minutes), and retried a bounded number of times.
    assert 0 < job["activeDeadlineSeconds"] < 600
    assert 0 <= job["backoffLimit"] <= 6
    pod = pod_template(cron)
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "exogenous-poll"
    [container] = pod["spec"]["containers"]
    assert container["command"] == ["python", "-m", "producers", "exogenous", "poll"]
    assert "args" not in container  # every configured source
    assert container["image"] == "registry.example/btcmeta/btcmeta-services:abc123"
    assert {"configMapRef": {"name": "btcmeta-config"}} in container["envFrom"]
    assert not [p for p in container.get("ports", [])], "a one-shot run listens on nothing"
    # Read-only root filesystem: HOME (/tmp in the ConfigMap) is a writable emptyDir.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["spec"]["volumes"]
    assert rendered.named("ConfigMap", "btcmeta-config")["data"]["HOME"] == "/tmp"
    # Locked down like every other pod, with its own resources.
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]


def test_exogenous_poll_schedule_sources_and_limits_come_from_values(render):
    rendered = render(["exogenousPoll.schedule=*/5 * * * *", "exogenousPoll.timeZone=Etc/UTC",
                       "exogenousPoll.args={--source,binance_funding}", "exogenousPoll.backoffLimit=0",
                       "exogenousPoll.activeDeadlineSeconds=240", "exogenousPoll.startingDeadlineSeconds=60",
                       "exogenousPoll.resources.limits.memory=1Gi"], validate=True)
    assert not [r for r in rendered.records if r["status"] == "invalid"]
    cron = rendered.named("CronJob", POLL)
    assert cron["spec"]["schedule"] == "*/5 * * * *" and cron["spec"]["timeZone"] == "Etc/UTC"
    assert cron["spec"]["startingDeadlineSeconds"] == 60
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] == 240
    [container] = containers(cron)
    assert container["args"] == ["--source", "binance_funding"]
    assert container["resources"]["limits"]["memory"] == "1Gi"


def test_exogenous_settings_in_the_configmap_default_to_config_py(render):
    """The ConfigMap's BTCMETA_EXOGENOUS__* parse to exactly config.py's defaults (data_dir aside:
    the shared files are imported by hand, not in the cluster), and an override reaches the poll."""
    from config import ExogenousSettings

    def exogenous(rendered) -> ExogenousSettings:
        data = rendered.named("ConfigMap", "btcmeta-config")["data"]
        prefix = "BTCMETA_EXOGENOUS__"
        fields = {k[len(prefix):].lower(): v for k, v in data.items() if k.startswith(prefix)}
        return ExogenousSettings(**fields)

    defaults = ExogenousSettings()
    rendered = exogenous(render())
    assert set(rendered.model_fields_set) == set(ExogenousSettings.model_fields) - {"data_dir"}
    assert rendered == defaults
    changed = exogenous(render(["exogenous.krakenFuturesUrl=https://futures.kraken.com",
                                "exogenous.binanceFuturesUrl=", "exogenous.fearGreedLimit=30"]))
    assert changed.kraken_futures_url == "https://futures.kraken.com"
    assert changed.binance_futures_url == "" and changed.fear_greed_limit == 30
    # Empty means off in producers.exogenous.live_sources: the chart can switch a source off.
    from producers.exogenous import live_sources

    names = {s.name for s in live_sources(changed)}
    assert "binance_funding" not in names and {"kraken_funding", "kraken_open_interest"} <= names


def test_exogenous_poll_switches_off_with_its_policy(render):
    rendered = render(["exogenousPoll.enabled=false"])
    assert not rendered.of_kind("CronJob")
    names = {p["metadata"]["name"] for p in rendered.of_kind("NetworkPolicy")}
    assert "btcmeta-exogenous-poll-egress" not in names and "btcmeta-egress" in names
    # No leftover exception for it in the release-wide policies.
    assert "exogenous-poll" not in json.dumps(rendered.of_kind("NetworkPolicy"))
    assert "exogenous-poll" in json.dumps(render().of_kind("NetworkPolicy"))


# ----------------------------------------------------------------------------- network policies


def _pod_templates(rendered) -> dict[str, dict[str, str]]:
    """Workload name -> the labels of its pods (Deployments, the set-up Job, the CronJob)."""
    return {d["metadata"]["name"]: pod_template(d)["metadata"]["labels"]
            for d in rendered.docs if d["kind"] in WORKLOADS}


def _selecting(policies: list[dict[str, Any]], labels: dict[str, str], kind: str) -> list[dict[str, Any]]:
    """The policies of type ``kind`` (Ingress/Egress) whose podSelector picks a pod with ``labels``."""
    def matches(expr):
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ops = {"In": lambda: labels.get(key) in values, "NotIn": lambda: labels.get(key) not in values,
               "Exists": lambda: key in labels, "DoesNotExist": lambda: key not in labels}
        return ops[op]()

    def picks(policy):
        selector = policy["spec"]["podSelector"]
        assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
        return (all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())
                and all(matches(e) for e in selector.get("matchExpressions") or []))
    return [p for p in policies if kind in p["spec"]["policyTypes"] and picks(p)]


def test_network_policies_close_every_pod_and_open_only_what_is_needed(render):
    rendered = render(["networkPolicy.bridge.allowedCidrs={203.0.113.0/24}"])
    policies = rendered.of_kind("NetworkPolicy")
    deny = rendered.named("NetworkPolicy", "btcmeta-default-deny")["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny.get("ingress") and not deny.get("egress")  # selects everything, allows nothing
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    pods = _pod_templates(rendered)
    assert {"btcmeta-bridge", "btcmeta-executor", "btcmeta-setup", POLL} <= set(pods)
    for name, labels in pods.items():
        if name == POLL:
            continue  # its own, narrower rules: test_exogenous_poll_network_policy
        ingress = [rule for p in _selecting(policies, labels, "Ingress")
                   for rule in p["spec"].get("ingress") or []]
        opened: dict[int, list[dict[str, Any]]] = {}
        for rule in ingress:  # every rule names its sources and its ports: nothing open to all
            assert rule.get("from") and rule.get("ports"), (name, rule)
            for port in rule["ports"]:
                opened.setdefault(port["port"], []).extend(rule["from"])
        expected = {9100} | ({8080} if labels["app.kubernetes.io/component"] == "bridge" else set())
        assert set(opened) == expected, name
        assert opened[9100] == [monitoring], name  # metrics and health: the monitoring namespace only
        egress = [rule for p in _selecting(policies, labels, "Egress")
                  for rule in p["spec"].get("egress") or []]
        ports = {p["port"] for rule in egress for p in rule["ports"]}
        assert {53, 9098, 5432} <= ports, name  # DNS, MSK, the database
        internet = [peer for rule in egress for peer in rule["to"]
                    if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"]
        is_executor = labels["app.kubernetes.io/component"] == "executor"
        assert bool(internet) == is_executor, name  # only the executor reaches Kraken
    bridge = rendered.named("NetworkPolicy", "btcmeta-bridge-ingress")["spec"]["ingress"]
    ingress_nginx = {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    cidr = {"ipBlock": {"cidr": "203.0.113.0/24"}}
    assert bridge == [{"from": [{"namespaceSelector": ingress_nginx}, cidr],
                       "ports": [{"port": 8080, "protocol": "TCP"}]}]


def test_network_policies_switch_off(render):
    assert not render(["networkPolicy.enabled=false"]).of_kind("NetworkPolicy")
    ingress_only = render(["networkPolicy.egress.enabled=false"])
    assert {p["metadata"]["name"] for p in ingress_only.of_kind("NetworkPolicy")} == {
        "btcmeta-default-deny", "btcmeta-bridge-ingress", "btcmeta-metrics-ingress"}
    assert ingress_only.named("NetworkPolicy", "btcmeta-default-deny")["spec"]["policyTypes"] == ["Ingress"]


def test_exogenous_poll_network_policy(render):
    """The poll pod: no ingress at all; egress to DNS, PostgreSQL and HTTPS on the internet (its
    public sources), nothing else (no MSK, no private ranges on 443)."""
    rendered = render()
    policies = rendered.of_kind("NetworkPolicy")
    labels = _pod_templates(rendered)[POLL]
    # Ingress: only the default deny selects it, and it allows nothing.
    ingress = _selecting(policies, labels, "Ingress")
    assert [p["metadata"]["name"] for p in ingress] == ["btcmeta-default-deny"]
    assert not ingress[0]["spec"].get("ingress")
    egress = _selecting(policies, labels, "Egress")
    assert {p["metadata"]["name"] for p in egress} == {"btcmeta-default-deny",
                                                       "btcmeta-exogenous-poll-egress"}
    rules = [rule for p in egress for rule in p["spec"].get("egress") or []]
    allowed = {(port["port"], port["protocol"]): rule["to"] for rule in rules for port in rule["ports"]}
    assert set(allowed) == {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")}
    dns = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert allowed[(53, "UDP")] == allowed[(53, "TCP")] == dns
    assert allowed[(5432, "TCP")] == [{"ipBlock": {"cidr": "10.0.0.0/8"}}]
    [internet] = allowed[(443, "TCP")]
    assert internet["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert set(internet["ipBlock"]["except"]) == {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                   "169.254.0.0/16"}
    # Every other pod of the release keeps the release-wide rules (MSK, database, AWS APIs).
    others = {n: lab for n, lab in _pod_templates(rendered).items() if n != POLL}
    for name, other in others.items():
        picked = {p["metadata"]["name"] for p in _selecting(policies, other, "Egress")}
        assert "btcmeta-egress" in picked and "btcmeta-exogenous-poll-egress" not in picked, name
        picked = {p["metadata"]["name"] for p in _selecting(policies, other, "Ingress")}
        assert "btcmeta-metrics-ingress" in picked, name
