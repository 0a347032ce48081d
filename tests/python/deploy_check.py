"""Checks deploy/ and dashboards/ without Docker or a cluster.

- Kubernetes manifests: every document validates (strict) against the Kubernetes OpenAPI
  schemas shipped in the `kubernetes-validate` package (offline); CRDs it has no schema for
  (KEDA ScaledObject, Kustomization) get field checks instead. Then the fields that matter:
  probes on the worker's health port, HPA on CPU plus batch queue depth, ConfigMap routes
  that parse and are mounted at the config dir, placeholder-only Secrets, gateway Service.
- docker-compose.yml: KubeMQ community image, 3 workers pointed at it, gateway, Prometheus
  with the rules, Grafana with the dashboards, every mounted file present.
- Dockerfile: multi-stage, non-root, health check.
- Dashboards: what scripts/observability.sh cannot see (datasource variable on every panel,
  schema version, ids) and that each file is what dashboards/generate.py writes.

Needs PyYAML and kubernetes-validate (scripts/deploy-check.sh installs them in a venv).
Prints PASS/FAIL per check and `deploy: N passed, M failed`.
"""

import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
RESULTS = {"passed": 0, "failed": 0}
# Kinds kubernetes-validate has no schema for, checked field by field below.
CUSTOM_KINDS = {"ScaledObject", "Kustomization"}


def check(name, ok, detail=""):
    if ok:
        RESULTS["passed"] += 1
        print(f"PASS {name}")
    else:
        RESULTS["failed"] += 1
        print(f"FAIL {name}: {detail}")


def load_manifests():
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def find(docs, kind, name=None):
    for _, doc in docs:
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name):
            return doc
    return None


def validate_schemas(docs):
    version = kubernetes_validate.latest_version()
    for file, doc in docs:
        label = f"k8s.schema.{file}.{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if doc.get("kind") in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            check(label, True)
        except kubernetes_validate.SchemaNotFoundError as e:
            check(label, False, f"no schema: {e}")
        except kubernetes_validate.ValidationError as e:
            check(label, False, str(e))


def container(deployment):
    return deployment["spec"]["template"]["spec"]["containers"][0]


def named_port(c, port):
    """The number of a probe's port, by name or number."""
    if isinstance(port, int):
        return port
    return next((p["containerPort"] for p in c.get("ports", []) if p.get("name") == port), None)


def env_value(c, name):
    return next((e.get("value") for e in c.get("env", []) if e["name"] == name), None)


def check_worker(docs):
    worker = find(docs, "Deployment", "llm-router-worker")
    check("k8s.worker.deployment", worker is not None, "no Deployment llm-router-worker")
    if worker is None:
        return
    c = container(worker)
    args = c.get("args", [])
    check("k8s.worker.args", args[:1] == ["worker"] and "--broker" in args, f"args {args}")
    ready, live = c.get("readinessProbe", {}), c.get("livenessProbe", {})
    check("k8s.worker.readiness", ready.get("httpGet", {}).get("path") == "/ready"
          and named_port(c, ready["httpGet"].get("port")) == 9091, f"readinessProbe {ready}")
    check("k8s.worker.liveness", live.get("httpGet", {}).get("path") == "/health"
          and named_port(c, live["httpGet"].get("port")) == 9091, f"livenessProbe {live}")
    check("k8s.worker.metrics_port", "--metrics-port" not in args
          or args[args.index("--metrics-port") + 1] == "9091", f"args {args}")
    check("k8s.worker.binds_all_interfaces", env_value(c, "LLM_ROUTER_BIND") == "0.0.0.0",
          "LLM_ROUTER_BIND must be 0.0.0.0 or the probes cannot reach the pod")
    secret_refs = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
    check("k8s.worker.keys_from_secret", any(find(docs, "Secret", s) for s in secret_refs),
          f"envFrom secrets {secret_refs} not defined")
    check("k8s.worker.cpu_request", "cpu" in c.get("resources", {}).get("requests", {}),
          "the HPA's CPU target needs a CPU request")
    pod_security = worker["spec"]["template"]["spec"].get("securityContext", {})
    check("k8s.worker.non_root", pod_security.get("runAsNonRoot") is True, f"{pod_security}")
    check_config_mount(docs, "worker", worker)


def check_config_mount(docs, role, deployment):
    c = container(deployment)
    config_dir = env_value(c, "LLM_ROUTER_CONFIG_DIR")
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", [])}
    maps = [v["configMap"]["name"] for name, v in volumes.items()
            if "configMap" in v and mounts.get(name) == config_dir]
    check(f"k8s.{role}.routes_mounted_at_config_dir", bool(maps),
          f"no ConfigMap mounted at LLM_ROUTER_CONFIG_DIR={config_dir}")
    for name in maps:
        cm = find(docs, "ConfigMap", name)
        check(f"k8s.{role}.configmap_exists", cm is not None, f"ConfigMap {name} missing")
        if cm:
            check_routes(cm)


def check_routes(cm):
    files = {k: v for k, v in cm.get("data", {}).items() if k.endswith(".toml")}
    check("k8s.configmap.toml_file", bool(files), "no *.toml key in the ConfigMap")
    for key, text in files.items():
        try:
            config = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            check(f"k8s.configmap.{key}.parses", False, str(e))
            continue
        endpoints, routes = config.get("endpoints", {}), config.get("routes", {})
        targets = [t["endpoint"] for r in routes.values() for t in r.get("targets", [])]
        check(f"k8s.configmap.{key}.routes", bool(routes) and all(t in endpoints for t in targets),
              f"routes {list(routes)} name endpoints {targets}, defined {list(endpoints)}")
        check(f"k8s.configmap.{key}.no_keys", not re.search(r"api-key\s*=", text),
              "keys belong in the Secret (api-key-env names the variable)")


def check_secrets(docs):
    secrets = [doc for _, doc in docs if doc["kind"] == "Secret"]
    check("k8s.secret.exists", bool(secrets), "no Secret")
    for s in secrets:
        values = {**s.get("stringData", {}), **s.get("data", {})}
        real = [k for k, v in values.items() if v != "REPLACE_ME"]
        check(f"k8s.secret.{s['metadata']['name']}.placeholders_only", not real,
              f"{real} hold something other than REPLACE_ME")


def check_autoscaling(docs):
    hpa = find(docs, "HorizontalPodAutoscaler")
    check("k8s.hpa.exists", hpa is not None, "no HorizontalPodAutoscaler")
    if hpa:
        check("k8s.hpa.v2", hpa["apiVersion"] == "autoscaling/v2", hpa["apiVersion"])
        check("k8s.hpa.target", hpa["spec"]["scaleTargetRef"]["name"] == "llm-router-worker",
              str(hpa["spec"]["scaleTargetRef"]))
        metrics = hpa["spec"]["metrics"]
        cpu = [m for m in metrics if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
        queue = [m for m in metrics if m["type"] in ("External", "Pods")
                 and "batch_queue_depth" in m[m["type"].lower()]["metric"]["name"]]
        check("k8s.hpa.cpu", bool(cpu), "no CPU metric")
        check("k8s.hpa.batch_queue_depth", bool(queue), "no batch queue depth metric")
    keda = find(docs, "ScaledObject")
    if keda:
        triggers = keda["spec"]["triggers"]
        check("k8s.keda.target", keda["spec"]["scaleTargetRef"]["name"] == "llm-router-worker", "")
        check("k8s.keda.queue_and_cpu",
              any("batch_queue_depth" in t.get("metadata", {}).get("query", "") for t in triggers)
              and any(t["type"] == "cpu" for t in triggers), str(triggers))


def check_gateway_and_broker(docs):
    gateway = find(docs, "Deployment", "llm-router-gateway")
    service = find(docs, "Service", "llm-router-gateway")
    check("k8s.gateway.deployment", gateway is not None, "no Deployment llm-router-gateway")
    check("k8s.gateway.service", service is not None, "no Service llm-router-gateway")
    if gateway and service:
        labels = gateway["spec"]["template"]["metadata"]["labels"]
        selector = service["spec"]["selector"]
        check("k8s.gateway.service_selects_pods",
              all(labels.get(k) == v for k, v in selector.items()), f"{selector} vs {labels}")
        c = container(gateway)
        ports = {p["name"] for p in c["ports"]}
        check("k8s.gateway.service_port",
              all(p["targetPort"] in ports for p in service["spec"]["ports"]), f"{ports}")
        check_config_mount(docs, "gateway", gateway)
    kubemq = find(docs, "StatefulSet", "kubemq")
    image = container(kubemq)["image"] if kubemq else ""
    check("k8s.kubemq.community_image", image.startswith("kubemq/kubemq-community"), image)
    for role in ("worker", "gateway"):
        d = find(docs, "Deployment", f"llm-router-{role}")
        args = container(d).get("args", []) if d else []
        broker = args[args.index("--broker") + 1] if "--broker" in args else ""
        check(f"k8s.{role}.broker_is_kubemq_service", broker.startswith("kubemq") and broker.endswith(":50000"), broker)


def check_kustomization(docs):
    kustomization = find(docs, "Kustomization")
    check("k8s.kustomization.exists", kustomization is not None, "no kustomization.yaml")
    if kustomization:
        listed = set(kustomization["resources"])
        missing = [r for r in listed if not (K8S / r).exists()]
        files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "worker-keda-scaledobject.yaml"}
        check("k8s.kustomization.resources", not missing and files <= listed,
              f"missing files {missing}, unlisted {sorted(files - listed)}")


def check_compose():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose.get("services", {})
    for name in ("kubemq", "worker", "gateway", "prometheus", "grafana"):
        check(f"compose.service.{name}", name in services, f"services: {list(services)}")
    if not all(s in services for s in ("kubemq", "worker", "gateway", "prometheus", "grafana")):
        return
    check("compose.kubemq.community_image",
          services["kubemq"]["image"].startswith("kubemq/kubemq-community"), services["kubemq"]["image"])
    worker = services["worker"]
    command = worker.get("command", [])
    check("compose.worker.replicas", worker.get("deploy", {}).get("replicas") == 3, str(worker.get("deploy")))
    check("compose.worker.command", command[:3] == ["worker", "--broker", "kubemq:50000"], str(command))
    check("compose.gateway.broker", "kubemq:50000" in services["gateway"].get("command", []), "")
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                check(f"compose.{name}.mount.{source}", (DEPLOY / source).exists(), "missing on disk")
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"] for j in prometheus["scrape_configs"]}
    check("compose.prometheus.jobs", {"llm-router-worker", "llm-router-gateway"} <= jobs, str(jobs))
    mounted = [v.split(":")[1] for v in services["prometheus"]["volumes"]]
    check("compose.prometheus.rules_mounted",
          all(r in mounted for r in prometheus.get("rule_files", [])) and prometheus.get("rule_files"),
          f"rule_files {prometheus.get('rule_files')} vs mounts {mounted}")
    grafana_mounts = services["grafana"]["volumes"]
    check("compose.grafana.dashboards", any(v.startswith("../dashboards:") for v in grafana_mounts),
          str(grafana_mounts))


def check_dockerfile():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    check("dockerfile.multi_stage", len(stages) >= 2, f"stages {stages}")
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    check("dockerfile.non_root", bool(users) and users[-1].split(":")[0] not in ("root", "0"), f"USER {users}")
    check("dockerfile.healthcheck", re.search(r"^HEALTHCHECK\s", text, re.M) is not None, "no HEALTHCHECK")
    check("dockerfile.small_runtime", "slim" in stages[-1] or "distroless" in stages[-1], stages[-1])


def check_dashboards():
    spec = importlib.util.spec_from_file_location("generate", ROOT / "dashboards" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    generated = generate.render()
    files = sorted((ROOT / "dashboards").glob("*.json"))
    check("dashboards.four", {f.name for f in files} >= {"overview.json", "providers.json", "batch.json", "broker.json"},
          str([f.name for f in files]))
    uids = set()
    for path in files:
        text = path.read_text()
        board = json.loads(text)
        name = path.stem
        check(f"dashboards.{name}.generated", generated.get(path.name) == text,
              "differs from dashboards/generate.py: run python3 dashboards/generate.py")
        check(f"dashboards.{name}.schema_version", board.get("schemaVersion", 0) >= 36, str(board.get("schemaVersion")))
        uids.add(board.get("uid"))
        variables = board.get("templating", {}).get("list", [])
        check(f"dashboards.{name}.datasource_variable",
              any(v["name"] == "datasource" and v["type"] == "datasource" and v["query"] == "prometheus"
                  for v in variables), "no datasource variable of type prometheus")
        panels = [p for p in board["panels"] if p.get("type") != "row"]
        bad = [p["title"] for p in panels
               if p.get("datasource", {}).get("uid") != "${datasource}"
               or any(t.get("datasource", {}).get("uid") != "${datasource}" for t in p.get("targets", []))]
        check(f"dashboards.{name}.panels_use_datasource_variable", not bad, str(bad))
        ids = [p["id"] for p in board["panels"]]
        check(f"dashboards.{name}.panel_ids_unique", len(ids) == len(set(ids)), str(ids))
    check("dashboards.uids_unique", len(uids) == len(files), str(uids))


def main():
    docs = load_manifests()
    validate_schemas(docs)
    check_worker(docs)
    check_secrets(docs)
    check_autoscaling(docs)
    check_gateway_and_broker(docs)
    check_kustomization(docs)
    check_compose()
    check_dockerfile()
    check_dashboards()
    print(f"deploy: {RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
