"""Offline validation of deploy/kubernetes (run by tests/deploy.rs).

- DaemonSet and Service: kubernetes-validate --strict (the Kubernetes OpenAPI schemas; chosen
  because kubeconform is not packaged in apt/PyPI/npm/crates.io, and kubernetes-validate is on
  PyPI).
- ServiceMonitor: a trimmed copy of the prometheus-operator CRD schema (servicemonitor.schema.json),
  as kubernetes-validate has no CRD schemas.
- Cross-references: Service selector and ServiceMonitor selector match the pod labels; port
  names and numbers agree; the DaemonSet's hostPath mounts are read-only; the Prometheus
  example's relabel regexes compile.
"""
import json, re, subprocess, sys, pathlib
import yaml, jsonschema

root = pathlib.Path(sys.argv[1])
k = root / "deploy/kubernetes"
r = subprocess.run(["kubernetes-validate", "--strict", "--quiet",
                    str(k / "daemonset.yaml"), str(k / "service.yaml")],
                   capture_output=True, text=True)
out = r.stdout + r.stderr
assert r.returncode == 0 and "ERROR" not in out and "FAIL" not in out, out
ds = yaml.safe_load((k / "daemonset.yaml").read_text())
svc = yaml.safe_load((k / "service.yaml").read_text())
sm = yaml.safe_load((k / "servicemonitor.yaml").read_text())
schema = json.loads((root / "tests/deploy/servicemonitor.schema.json").read_text())
jsonschema.validate(sm, schema)

pod = ds["spec"]["template"]
labels = pod["metadata"]["labels"]
assert ds["spec"]["selector"]["matchLabels"].items() <= labels.items()
assert svc["spec"]["selector"].items() <= labels.items()
assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
assert sm["metadata"]["namespace"] in sm["spec"]["namespaceSelector"]["matchNames"]
assert svc["metadata"]["namespace"] == ds["metadata"]["namespace"] == sm["metadata"]["namespace"]
c = pod["spec"]["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
assert sm["spec"]["endpoints"][0]["port"] in [p["name"] for p in svc["spec"]["ports"]]
assert svc["spec"]["ports"][0]["targetPort"] in ports
assert int(pod["metadata"]["annotations"]["prometheus.io/port"]) == ports["metrics"]
assert any(a.endswith(":%d" % ports["metrics"]) for a in c["args"] if a.startswith("--listen"))
assert "--host-root=/host" in c["args"]
assert pod["spec"]["hostPID"] is True
sc = c["securityContext"]
assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and not sc["privileged"]
assert sc["capabilities"]["drop"] == ["ALL"]
assert sorted(sc["capabilities"]["add"]) == ["SYSLOG", "SYS_PTRACE"]
vols = {v["name"]: v["hostPath"]["path"] for v in pod["spec"]["volumes"]}
for m in c["volumeMounts"]:
    if m["name"] == "store":
        # The flight recorder's store: the one writable mount, at its own path.
        assert vols["store"] == "/var/lib/memlens" and m["mountPath"] == "/var/lib/memlens", m
        assert not m.get("readOnly", False), m
        continue
    assert m["readOnly"] is True, m
    assert m["mountPath"] == "/host" + vols[m["name"]], m
# No /dev/kmsg: a container cannot open a hostPath char device without privileged; the kernel
# log is read with syslog(2), which CAP_SYSLOG allows (see the DaemonSet's comment).
assert "/dev/kmsg" not in vols.values()
for p in ["/sys/fs/cgroup", "/proc", "/var/log/pods", "/var/log/containers",
          "/var/lib/docker/containers", "/var/lib/memlens"]:
    assert p in vols.values(), p

prom = yaml.safe_load((k / "prometheus-scrape-config.yaml").read_text())
job = prom["scrape_configs"][0]
for rc in job["relabel_configs"]:
    if "regex" in rc:
        re.compile(rc["regex"])
print("deploy manifests OK")
