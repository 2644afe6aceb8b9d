#!/usr/bin/env python3
"""deploy_static.py -- static checks of deploy/Dockerfile, deploy/k8s and deploy/systemd.

Run by tests/e2e/deploy_static.sh (which also runs the dynamic parts: the image's
HEALTHCHECK command and the KEDA queries against a real database). No Docker
engine and no Kubernetes API here: these checks read the files, cross-check
them against each other, against docker-compose.yml and against the
configuration table in common/config.c (DESIGN.md's variables), and report
every problem, not just the first one.

usage: deploy_static.py ROOT [BUILD_DIR]   (prints problems, exits 1 if any)
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(sys.argv[1])
BUILD = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
problems = []


def bad(where, msg):
    problems.append(f"{where}: {msg}")


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


# ---- the configuration names (common/config.c's table = DESIGN.md's table + extras)
config_vars = set(re.findall(r'\{"((?:DATABASE_URL|IMPORTER_[A-Z_]+))", CFG_', read("common/config.c")))
if "DATABASE_URL" not in config_vars or "IMPORTER_HTTP_ADDR" not in config_vars:
    bad("common/config.c", f"cannot read the config table (found {sorted(config_vars)})")
design = os.path.join(ROOT, "..", "shared", "DESIGN.md")
if os.path.exists(design):
    with open(design, encoding="utf-8") as f:
        text = f.read()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    design_vars = set(re.findall(r"`((?:DATABASE_URL|IMPORTER_[A-Z_]+))`", table))
    design_vars -= {"IMPORTER_URL", "IMPORTER_TOKEN"}  # importctl's, not the servers'
    for v in sorted(design_vars - config_vars):
        bad("common/config.c", f"DESIGN.md's {v} is not in the config table")

compose = yaml.safe_load(read("docker-compose.yml"))
services = compose["services"]


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


# ==== deploy/Dockerfile ========================================================
def dockerfile_instructions(text):
    """[(lineno, INSTRUCTION, args)] with continuation lines joined, comments dropped."""
    out, buf, start = [], "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # comment lines inside a continuation are removed by Docker
        if not buf:
            start = n
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((start, word.upper(), rest.strip()))
        buf = ""
    if buf:
        out.append((start, "UNTERMINATED", buf))
    return out


KNOWN = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
         "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
DF = "deploy/Dockerfile"
ins = dockerfile_instructions(read(DF))
stages = []  # [{"name", "base", "ins": [...]}]
for n, word, args in ins:
    if word not in KNOWN:
        bad(DF, f"line {n}: unknown instruction {word}")
        continue
    if word == "FROM":
        m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
        if not m:
            bad(DF, f"line {n}: FROM {args!r}")
            continue
        stages.append({"base": m.group(1), "name": m.group(2), "ins": []})
    elif not stages:
        bad(DF, f"line {n}: {word} before the first FROM")
    else:
        stages[-1]["ins"].append((n, word, args))

if len(stages) != 2:
    bad(DF, f"expected 2 stages (build, runtime), found {len(stages)}")
else:
    build, runtime = stages
    if build["base"] != "debian:12" or build["name"] != "build":
        bad(DF, f"build stage must be 'debian:12 AS build', is {build['base']} AS {build['name']}")
    if runtime["base"] != "debian:12-slim":
        bad(DF, f"runtime stage must be FROM debian:12-slim, is {runtime['base']}")

    def apt_packages(stage):
        pkgs = []
        for n, word, args in stage["ins"]:
            if word != "RUN":
                continue
            for part in re.split(r"&&|;", args):
                toks = shlex.split(part)
                if toks[:2] == ["apt-get", "install"]:
                    if "--no-install-recommends" not in toks:
                        bad(DF, f"line {n}: apt-get install without --no-install-recommends")
                    pkgs += [t for t in toks[2:] if not t.startswith("-")]
            if "apt-get install" in args and "rm -rf /var/lib/apt/lists" not in args:
                bad(DF, f"line {n}: apt lists are not removed in the installing layer")
            if "apt-get install" in args and "apt-get update" not in args:
                bad(DF, f"line {n}: apt-get install without apt-get update in the same RUN")
        return pkgs

    build_pkgs, run_pkgs = apt_packages(build), apt_packages(runtime)
    for need in ("build-essential", "cmake", "pkg-config", "libpq-dev", "libjson-c-dev",
                 "libevent-dev", "libssl-dev", "check"):
        if need not in build_pkgs:
            bad(DF, f"build stage does not install {need} (CMakeLists.txt needs it)")
    # tests/deps.txt's build section and the build stage must agree.
    deps = [l.split("#")[0].strip() for l in read("tests/deps.txt").split("# throwaway")[0].splitlines()]
    for d in filter(None, deps):
        if d not in build_pkgs:
            bad(DF, f"build stage lacks {d} (tests/deps.txt builds with it)")
    for p in run_pkgs:
        if re.search(r"-dev$|^(build-essential|gcc.*|g\+\+.*|cpp.*|cmake|make|pkg-config|check|binutils)$", p):
            bad(DF, f"runtime stage installs build tool or headers: {p}")
    if "ca-certificates" not in run_pkgs:
        bad(DF, "runtime stage lacks ca-certificates (sslmode=verify-full)")
    for p in build_pkgs + run_pkgs:
        # apt's lists may have been cleaned; an installed package is known too.
        r = subprocess.run(["apt-cache", "show", "--no-all-versions", p], capture_output=True, text=True)
        if (r.returncode != 0 or "Package:" not in r.stdout) and \
                subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0:
            bad(DF, f"package {p} is unknown to apt and dpkg (Debian 12)")

    # Built paths: cmake -B <dir> in the build stage; COPY --from=build of the two binaries.
    build_run = " ".join(a for _, w, a in build["ins"] if w == "RUN")
    m = re.search(r"cmake -S \. -B (\S+)", build_run)
    bdir = m.group(1) if m else None
    if bdir is None:
        bad(DF, "build stage has no 'cmake -S . -B <dir>'")
    if "--target importer-worker importer-gateway" not in build_run:
        bad(DF, "build stage should build exactly the two binaries (--target ...)")
    if "CMAKE_BUILD_TYPE=Release" not in build_run:
        bad(DF, "build stage is not a Release build")
    copied = {}
    for n, word, args in runtime["ins"]:
        if word in ("COPY", "ADD"):
            toks = shlex.split(args)
            if word == "ADD":
                bad(DF, f"line {n}: use COPY, not ADD")
            if "--from=build" not in toks:
                bad(DF, f"line {n}: the runtime stage copies only from the build stage")
            srcs = [t for t in toks if not t.startswith("--")]
            dest = srcs.pop()
            for s in srcs:
                copied[os.path.basename(s)] = (s, dest)
    for binary, subdir in (("importer-worker", "worker"), ("importer-gateway", "api")):
        if binary not in copied:
            bad(DF, f"{binary} is not copied into the runtime stage")
            continue
        src, dest = copied[binary]
        if bdir and src != f"{bdir}/{subdir}/{binary}":
            bad(DF, f"{binary} is copied from {src}, cmake builds it in {bdir}/{subdir}/{binary}")
        if f"add_executable({binary} " not in read(f"{subdir}/CMakeLists.txt"):
            bad(DF, f"{subdir}/CMakeLists.txt does not build {binary}")
        if dest.rstrip("/") != "/usr/local/bin":
            bad(DF, f"{binary} goes to {dest}, not /usr/local/bin")
    # Build-stage COPY sources must exist in the context (the repo root).
    for n, word, args in build["ins"]:
        if word == "COPY":
            for s in [t for t in shlex.split(args) if not t.startswith("--")][:-1]:
                if not os.path.exists(os.path.join(ROOT, s)):
                    bad(DF, f"line {n}: COPY source {s} does not exist")
    # .dockerignore must not hide what the build needs.
    ignore = [l.strip() for l in read(".dockerignore").splitlines() if l.strip() and not l.startswith("#")]
    import fnmatch
    for need in ["CMakeLists.txt", "cmake", "common", "worker", "api", "sql", "tests",
                 "sql/0001_schema.sql", "tests/CMakeLists.txt"]:
        excluded = False
        for pat in ignore:
            neg = pat.startswith("!")
            p = pat[1:] if neg else pat
            p = p.rstrip("/")
            if fnmatch.fnmatch(need, p) or fnmatch.fnmatch(need, p.replace("**/", "")):
                excluded = not neg
        if excluded:
            bad(".dockerignore", f"excludes {need}, which the build stage needs")
    for must in (".git", ".local/"):
        if must not in ignore:
            bad(".dockerignore", f"does not exclude {must}")

    # Runtime: shared libraries. Every NEEDED of the built binaries (sanitizer
    # runtimes aside) must come from a package the runtime stage installs, or
    # from one debian:12-slim always has (libc6, libgcc-s1).
    if BUILD:
        base_pkgs = {"libc6", "libgcc-s1"}
        for rel in ("worker/importer-worker", "api/importer-gateway"):
            path = os.path.join(BUILD, rel)
            out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
            ldd = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
            where = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
            for so in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out):
                if re.match(r"lib(asan|ubsan)\.so", so):
                    continue
                real = os.path.realpath(where.get(so, so))
                r = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True)
                if r.returncode != 0:  # merged /usr: dpkg knows the /lib path
                    r = subprocess.run(["dpkg", "-S", where.get(so, so)], capture_output=True, text=True)
                pkg = r.stdout.split(":", 1)[0] if r.returncode == 0 else None
                if pkg is None:
                    bad(DF, f"{rel} needs {so}: no Debian package owns {real}")
                elif pkg not in run_pkgs and pkg not in base_pkgs:
                    bad(DF, f"{rel} needs {so} from {pkg}, which the runtime stage does not install")
        for p in run_pkgs:
            if p.startswith("lib") and p not in ("libssl3",):
                pass  # extra libraries are allowed but looked at below

    # Non-root user, HEALTHCHECK, ports and commands consistent with docker-compose.yml.
    users = [a for _, w, a in runtime["ins"] if w == "USER"]
    if not users:
        bad(DF, "runtime stage has no USER (runs as root)")
    elif users[-1].split(":")[0] in ("0", "root"):
        bad(DF, f"runtime USER is {users[-1]}")
    else:
        uid = users[-1].split(":")[0]
        rt_run = " ".join(a for _, w, a in runtime["ins"] if w == "RUN")
        if f"--uid {uid}" not in rt_run and uid not in rt_run:
            bad(DF, f"USER {uid} is not created in the runtime stage")
    hcs = [a for _, w, a in runtime["ins"] if w == "HEALTHCHECK"]
    if len(hcs) != 1 or "CMD" not in hcs[0]:
        bad(DF, "runtime stage needs exactly one HEALTHCHECK ... CMD")
    elif "/healthz" not in hcs[0] or "IMPORTER_HTTP_ADDR" not in hcs[0]:
        bad(DF, "HEALTHCHECK does not probe the gateway's /healthz on IMPORTER_HTTP_ADDR")
    if any(w in ("ENTRYPOINT",) for _, w, _ in runtime["ins"]):
        bad(DF, "no ENTRYPOINT: compose and k8s give the command (importer-worker / importer-gateway ...)")
    exposed = {int(p.split("/")[0]) for _, w, a in runtime["ins"] if w == "EXPOSE" for p in a.split()}
    gw = services.get("gateway", {})
    gw_port = port_of(gw.get("environment", {}).get("IMPORTER_HTTP_ADDR", "0.0.0.0:8080"))
    if gw_port not in exposed:
        bad(DF, f"EXPOSE does not include the gateway port {gw_port}")
    for port in gw.get("ports", []):
        if int(str(port).rsplit(":", 1)[1]) != gw_port:
            bad("docker-compose.yml", f"gateway publishes {port}, but listens on {gw_port}")
    for name, svc in services.items():
        if "build" in svc:
            b = svc["build"]
            if b.get("dockerfile") != DF or b.get("context", ".") != ".":
                bad("docker-compose.yml", f"{name}: build is {b}, expected context . and {DF}")
            cmd = svc.get("command", [])
            if not cmd or cmd[0] not in copied:
                bad("docker-compose.yml", f"{name}: command {cmd} is not a binary of the image")
    for _, w, a in runtime["ins"]:
        if w in ("ENV", "ARG") and re.search(r"SECRET|PASSWORD|DATABASE_URL", a):
            bad(DF, f"the image bakes in a secret or connection string: {w} {a}")

# ==== deploy/k8s ===============================================================
K8S = os.path.join(ROOT, "deploy/k8s")
docs = []  # (file, doc)
for fn in sorted(os.listdir(K8S)):
    if not fn.endswith((".yaml", ".yml")):
        bad("deploy/k8s", f"{fn}: not a .yaml file")
        continue
    try:
        with open(os.path.join(K8S, fn), encoding="utf-8") as f:
            for d in yaml.safe_load_all(f):
                if d is not None:
                    docs.append((fn, d))
    except yaml.YAMLError as e:
        bad(f"deploy/k8s/{fn}", f"YAML: {e}")

objs = {}
for fn, d in docs:
    if d.get("kind") == "Kustomization":
        continue
    where = f"deploy/k8s/{fn}"
    for key in ("apiVersion", "kind", "metadata"):
        if key not in d:
            bad(where, f"a document lacks {key}")
    md = d.get("metadata", {})
    if "namespace" in md:
        bad(where, f"{d.get('kind')} {md.get('name')}: sets a namespace (manifests are namespace-agnostic)")
    if md.get("labels", {}).get("app.kubernetes.io/name") != "importer":
        bad(where, f"{d.get('kind')} {md.get('name')}: label app.kubernetes.io/name is not importer")
    k = (d.get("kind"), md.get("name"))
    if k in objs:
        bad(where, f"duplicate {k}")
    objs[k] = (fn, d)

kust = [d for fn, d in docs if d.get("kind") == "Kustomization"]
if len(kust) != 1:
    bad("deploy/k8s", "expected one kustomization.yaml")
else:
    listed = set(kust[0].get("resources", []))
    for fn in listed:
        if not os.path.exists(os.path.join(K8S, fn)):
            bad("deploy/k8s/kustomization.yaml", f"lists missing {fn}")
    for fn in {fn for fn, _ in docs} - listed - {"kustomization.yaml", "secret.example.yaml"}:
        bad("deploy/k8s/kustomization.yaml", f"does not list {fn}")
    if "secret.example.yaml" in listed:
        bad("deploy/k8s/kustomization.yaml", "must not apply the example Secret")


def need(kind, name):
    if (kind, name) not in objs:
        bad("deploy/k8s", f"missing {kind} {name}")
        return None
    return objs[(kind, name)][1]


secret = need("Secret", "importer-secrets")
cm = need("ConfigMap", "importer-config")
job = need("Job", "importer-migrate")
wdep = need("Deployment", "importer-worker")
gdep = need("Deployment", "importer-gateway")
svc = need("Service", "importer-gateway")
so = need("ScaledObject", "importer-worker")
if secret is not None:
    if "secret.example" not in objs[("Secret", "importer-secrets")][0] or "EXAMPLE ONLY" not in \
            open(os.path.join(K8S, objs[("Secret", "importer-secrets")][0])).read():
        bad("deploy/k8s", "the Secret must live in secret.example.yaml, marked EXAMPLE ONLY")
    for k, v in secret.get("stringData", {}).items():
        if "<" not in v:
            bad("deploy/k8s/secret.example.yaml", f"{k} holds a value, not a <placeholder>")
secret_keys = set((secret or {}).get("stringData", {})) | set((secret or {}).get("data", {}))
cm_data = (cm or {}).get("data", {})
for k in cm_data:
    if k not in config_vars:
        bad("deploy/k8s/configmap.yaml", f"{k} is not a configuration variable (common/config.c)")
    elif k.endswith("_ADDR"):
        if not re.fullmatch(r"[0-9.]+:\d+", cm_data[k]):
            bad("deploy/k8s/configmap.yaml", f"{k}={cm_data[k]} is not host:port")
    if k in ("DATABASE_URL", "IMPORTER_LISTEN_DATABASE_URL", "IMPORTER_JWT_SECRET"):
        bad("deploy/k8s/configmap.yaml", f"{k} is a secret: it belongs in the Secret")


def pod_spec(d):
    return d["spec"]["template"]["spec"]


def containers(d):
    return pod_spec(d)["containers"]


def env_of(c, where):
    names = {}
    for e in c.get("env", []):
        n = e["name"]
        if n in names:
            bad(where, f"{n} set twice")
        if n not in config_vars:
            bad(where, f"env {n} is not a configuration variable (common/config.c / DESIGN.md)")
        vf = e.get("valueFrom", {})
        if "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            if ref.get("name") != "importer-secrets" or ref.get("key") not in secret_keys:
                bad(where, f"{n}: secretKeyRef {ref} does not match the Secret's keys")
            names[n] = ("secret", ref.get("key"))
        elif "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            if ref.get("name") != "importer-config" or ref.get("key") not in cm_data:
                bad(where, f"{n}: configMapKeyRef {ref} does not match the ConfigMap")
            elif ref.get("key") != n:
                bad(where, f"{n} reads ConfigMap key {ref.get('key')}")
            names[n] = ("config", cm_data.get(ref.get("key")))
        elif "value" in e:
            if n in ("DATABASE_URL", "IMPORTER_LISTEN_DATABASE_URL", "IMPORTER_JWT_SECRET"):
                bad(where, f"{n} given as a literal value, not from the Secret")
            names[n] = ("value", e["value"])
        else:
            bad(where, f"{n} has neither value nor valueFrom")
    return names


def check_workload(d, where, component, binary, compose_svc, required):
    labels = d["spec"]["template"]["metadata"].get("labels", {})
    sel = d["spec"].get("selector", {}).get("matchLabels") if d["kind"] != "Job" else None
    if labels.get("app.kubernetes.io/component") != component:
        bad(where, f"pod label component is not {component}")
    if sel is not None and any(labels.get(k) != v for k, v in sel.items()):
        bad(where, f"selector {sel} does not match the pod labels {labels}")
    ps = pod_spec(d)
    sc = ps.get("securityContext", {})
    if not sc.get("runAsNonRoot") or sc.get("runAsUser") in (None, 0):
        bad(where, "pods must run as non-root with an explicit runAsUser")
    (c,) = containers(d)
    env = env_of(c, where)
    for r in required:
        if r not in env:
            bad(where, f"{binary} needs {r}")
    cmd = c.get("command", [])
    want = services.get(compose_svc, {}).get("command")
    if cmd != want:
        bad(where, f"command {cmd} differs from docker-compose.yml's {compose_svc}: {want}")
    res = c.get("resources", {})
    if "requests" not in res or "memory" not in res.get("limits", {}):
        bad(where, "container needs resource requests and a memory limit")
    if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
        bad(where, "allowPrivilegeEscalation must be false")
    return c, env, labels


if job is not None:
    check_workload(job, "migrate Job", "migrate", "importer-worker migrate", "migrate", ["DATABASE_URL"])
    if pod_spec(job).get("restartPolicy") not in ("OnFailure", "Never"):
        bad("migrate Job", "restartPolicy must be OnFailure or Never")
wenv = {}
if wdep is not None:
    c, wenv, wlabels = check_workload(wdep, "worker Deployment", "worker", "importer-worker", "worker",
                                      ["DATABASE_URL", "IMPORTER_LISTEN_DATABASE_URL"])
    if "IMPORTER_JWT_SECRET" in wenv or "IMPORTER_HTTP_ADDR" in wenv:
        bad("worker Deployment", "the worker gets gateway-only settings")
    if pod_spec(wdep).get("terminationGracePeriodSeconds", 30) < 30:
        bad("worker Deployment", "terminationGracePeriodSeconds < 30 cannot cover a batch")
    if wdep["spec"].get("replicas", 1) < 2:
        bad("worker Deployment", "replicas < 2")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if "IMPORTER_METRICS_ADDR" in wenv:
        mport = port_of(wenv["IMPORTER_METRICS_ADDR"][1])
        if ports.get("metrics") != mport:
            bad("worker Deployment", f"port 'metrics' {ports.get('metrics')} != IMPORTER_METRICS_ADDR port {mport}")
        probe = c.get("livenessProbe", {}).get("httpGet", {})
        if probe and (probe.get("path") != "/metrics" or probe.get("port") not in ("metrics", mport)):
            bad("worker Deployment", f"liveness probe {probe} does not hit /metrics on the metrics port")
        if wdep["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/port") != str(mport):
            bad("worker Deployment", "prometheus.io/port annotation differs from the metrics port")
gport = None
if gdep is not None:
    c, genv, glabels = check_workload(gdep, "gateway Deployment", "gateway", "importer-gateway", "gateway",
                                      ["DATABASE_URL", "IMPORTER_LISTEN_DATABASE_URL", "IMPORTER_JWT_SECRET"])
    gport = port_of(genv.get("IMPORTER_HTTP_ADDR", ("", "0.0.0.0:8080"))[1])
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports.get("http") != gport or gport != 8080:
        bad("gateway Deployment", f"container port 'http' {ports.get('http')} != IMPORTER_HTTP_ADDR port {gport} (8080)")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        g = c.get(probe, {}).get("httpGet", {})
        if g.get("path") != path or g.get("port") not in ("http", gport):
            bad("gateway Deployment", f"{probe} must GET {path} on port http, is {g}")
    if svc is not None:
        sel = svc["spec"].get("selector", {})
        if any(glabels.get(k) != v for k, v in sel.items()):
            bad("gateway Service", f"selector {sel} does not select the gateway pods")
        if wdep is not None and all(wlabels.get(k) == v for k, v in sel.items()):
            bad("gateway Service", f"selector {sel} also selects the worker pods")
        for p in svc["spec"].get("ports", []):
            if p.get("port") != 8080 or p.get("targetPort") not in ("http", gport):
                bad("gateway Service", f"port {p} does not lead to the gateway's 8080")

# Every PodDisruptionBudget selects exactly one Deployment's pods.
deps_labels = {n: d["spec"]["template"]["metadata"]["labels"] for (k, n), (_, d) in objs.items() if k == "Deployment"}
pdbs = [n for (k, n) in objs if k == "PodDisruptionBudget"]
if "importer-worker" not in pdbs:
    bad("deploy/k8s", "no PodDisruptionBudget for the workers")
for n in pdbs:
    sel = objs[("PodDisruptionBudget", n)][1]["spec"]["selector"]["matchLabels"]
    hits = [dn for dn, lab in deps_labels.items() if all(lab.get(k) == v for k, v in sel.items())]
    if len(hits) != 1:
        bad(f"PodDisruptionBudget {n}", f"selects {hits}, expected exactly one Deployment")

keda_queries = []
if so is not None:
    tgt = so["spec"]["scaleTargetRef"]
    if tgt.get("kind", "Deployment") != "Deployment" or tgt.get("name") != "importer-worker":
        bad("ScaledObject", f"scaleTargetRef {tgt} is not the worker Deployment")
    if so["apiVersion"] != "keda.sh/v1alpha1":
        bad("ScaledObject", f"apiVersion {so['apiVersion']}")
    if "KEDA" not in open(os.path.join(K8S, objs[("ScaledObject", "importer-worker")][0])).read().split("apiVersion")[0]:
        bad("ScaledObject", "the file must say that KEDA has to be installed")
    for t in so["spec"].get("triggers", []):
        md = t.get("metadata", {})
        if t.get("type") != "postgresql":
            bad("ScaledObject", f"trigger type {t.get('type')}")
            continue
        if md.get("connectionFromEnv") not in wenv:
            bad("ScaledObject", f"connectionFromEnv {md.get('connectionFromEnv')} is not an env of the worker")
        if "importer.import_jobs" not in md.get("query", ""):
            bad("ScaledObject", "query does not read importer.import_jobs")
        try:
            float(md.get("targetQueryValue"))
        except (TypeError, ValueError):
            bad("ScaledObject", f"targetQueryValue {md.get('targetQueryValue')!r} is not a number string")
        keda_queries.append(md.get("query", ""))
    if so["spec"].get("maxReplicaCount", 100) > 50:
        bad("ScaledObject", "maxReplicaCount beyond a sane connection budget")

# ==== deploy/systemd ===========================================================
SD = os.path.join(ROOT, "deploy/systemd")


def unit(fn):
    sections, cur = {}, None
    for line in read(f"deploy/systemd/{fn}").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            cur = sections.setdefault(line.strip("[]"), {})
            continue
        k, _, v = line.partition("=")
        cur.setdefault(k, []).append(v)
    return sections


def seconds(v):
    m = re.fullmatch(r"(\d+)(s|min)?", v)
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1) if m else -1


for fn, binary in (("importer-gateway.service", "importer-gateway"), ("importer-worker@.service", "importer-worker")):
    if not os.path.exists(os.path.join(SD, fn)):
        bad("deploy/systemd", f"missing {fn}")
        continue
    s = unit(fn).get("Service", {})
    where = f"deploy/systemd/{fn}"
    for k, v in (("Restart", "on-failure"), ("KillSignal", "SIGTERM"), ("NoNewPrivileges", "yes"),
                 ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes")):
        if s.get(k, [None])[-1] != v:
            bad(where, f"{k} must be {v}")
    if not any(e.lstrip("-") == "/etc/importer/importer.env" for e in s.get("EnvironmentFile", [])):
        bad(where, "EnvironmentFile=/etc/importer/importer.env missing")
    if s.get("User", ["root"])[-1] in ("root", "0"):
        bad(where, "runs as root")
    if seconds(s.get("TimeoutStopSec", ["0"])[-1]) < 30:
        bad(where, "TimeoutStopSec must be >= 30s (a batch must finish)")
    ex = shlex.split(s.get("ExecStart", [""])[-1])
    if not ex or ex[0] != f"/usr/local/bin/{binary}":
        bad(where, f"ExecStart {ex} is not /usr/local/bin/{binary}")
    if any(k.startswith("Environment") and k != "EnvironmentFile" for k in s):
        for e in s.get("Environment", []):
            for name in re.findall(r"([A-Z_]+)=", e):
                if name not in config_vars:
                    bad(where, f"Environment= {name} is not a configuration variable")

# systemd-analyze verify, with ExecStart pointing at the built binaries
# (verify insists that the command exists); any diagnostic is a failure.
if BUILD:
    with tempfile.TemporaryDirectory() as tmp:
        names = []
        for fn in sorted(os.listdir(SD)):
            text = read(f"deploy/systemd/{fn}")
            text = text.replace("/usr/local/bin/importer-gateway", os.path.join(BUILD, "api/importer-gateway"))
            text = text.replace("/usr/local/bin/importer-worker", os.path.join(BUILD, "worker/importer-worker"))
            out = fn.replace("@.service", "@1.service")
            with open(os.path.join(tmp, out), "w") as f:
                f.write(text)
            if out != fn or "@" not in fn:
                names.append(os.path.join(tmp, out))
            if out != fn:  # the template itself, for PartOf= and instance syntax
                with open(os.path.join(tmp, fn), "w") as f:
                    f.write(text)
        r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + names, capture_output=True, text=True,
                           env=dict(os.environ, SYSTEMD_LOG_LEVEL="info"))
        diag = (r.stdout + r.stderr).strip()
        if r.returncode != 0 or diag:
            bad("deploy/systemd", f"systemd-analyze verify: rc={r.returncode}\n{diag}")

# ==== output ===================================================================
# The KEDA queries go to the shell script, which runs them against a real database.
with open(os.environ.get("KEDA_QUERIES_OUT", os.devnull), "w") as f:
    for q in keda_queries:
        f.write(" ".join(q.split()) + "\n")
hc = [a for s in stages[-1:] for _, w, a in s["ins"] if w == "HEALTHCHECK"]
with open(os.environ.get("HEALTHCHECK_OUT", os.devnull), "w") as f:
    if hc:
        f.write(re.sub(r"^.*?\bCMD\s+", "", hc[0]))

for p in problems:
    print("deploy_static:", p)
print(f"deploy_static: {len(problems)} problem(s); checked {len(stages)} Dockerfile stages, "
      f"{len(docs)} Kubernetes documents, {len(os.listdir(SD))} systemd units")
sys.exit(1 if problems else 0)
