"""The hardening deploy/kubernetes.yaml promises, checked (the schema check cannot see a setting that was removed).

Usage: python3 deploy/kubernetes_policy.py deploy/kubernetes.yaml   (needs PyYAML; deploy/check runs it)
Prints one line per broken rule, naming the document and the field, and exits 1 if there is any.
"""

import sys

import yaml


def check_pod(where, pod):
    errors = []

    def need(cond, what):
        if not cond:
            errors.append(f"{where}: {what}")

    need(pod.get("automountServiceAccountToken") is False, "spec.automountServiceAccountToken must be false")
    psc = pod.get("securityContext") or {}
    need(psc.get("runAsNonRoot") is True, "securityContext.runAsNonRoot must be true")
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        value = psc.get(key)
        need(isinstance(value, int) and value > 0, f"securityContext.{key} must be a non-zero numeric ID")
    need((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
         "securityContext.seccompProfile.type must be RuntimeDefault")
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        cw = f"container {c.get('name')}"
        image = c.get("image", "")
        tag = image.rsplit("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
        need("@sha256:" in image or (tag and tag != "latest"), f"{cw}: image {image!r} needs a version tag or digest")
        sc = c.get("securityContext") or {}
        need(sc.get("allowPrivilegeEscalation") is False, f"{cw}: allowPrivilegeEscalation must be false")
        need(sc.get("readOnlyRootFilesystem") is True, f"{cw}: readOnlyRootFilesystem must be true")
        need(sc.get("privileged") in (None, False), f"{cw}: must not be privileged")
        need((sc.get("capabilities") or {}).get("drop") == ["ALL"], f"{cw}: capabilities.drop must be [ALL]")
        need(not (sc.get("capabilities") or {}).get("add"), f"{cw}: must add no capabilities")
        res = c.get("resources") or {}
        need("memory" in (res.get("requests") or {}), f"{cw}: resources.requests.memory is required")
        need("memory" in (res.get("limits") or {}), f"{cw}: resources.limits.memory is required")
        env = {e.get("name"): e for e in c.get("env", [])}
        need("CAMPAIGND_STORE__URL" not in env, f"{cw}: the database URL must come from a file (CAMPAIGND_STORE__URL_FILE)")
        need("CAMPAIGND_PLATFORM__SECRET_KEY" not in env, f"{cw}: the secret key must come from a file")
        for probe in ("readinessProbe", "livenessProbe"):
            port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
            need(port == "admin", f"{cw}: {probe} must use the admin port")
    return errors


def main(paths):
    errors = []
    pods = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if not doc:
                    continue
                kind = doc.get("kind")
                where = f"{path}: {kind}/{doc.get('metadata', {}).get('name')}"
                if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
                    pods += 1
                    errors += check_pod(where, doc["spec"]["template"]["spec"])
                elif kind == "Pod":
                    pods += 1
                    errors += check_pod(where, doc["spec"])
    if pods == 0:
        errors.append(f"{', '.join(paths)}: no pod template found")
    for e in errors:
        print(f"policy: {e}")
    if not errors:
        print(f"policy: {pods} pod template(s) hardened as documented")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
