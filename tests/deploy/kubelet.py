"""A kubelet, as far as mlkit's predictor pods need one, for machines with neither Docker nor a cluster.

It runs one pod of a rendered Deployment the way the real one would, from what render wrote and
nothing else: the image is the API's build context (its Dockerfile's ENV, USER, WORKDIR, ENTRYPOINT
and CMD, `COPY app/ /app/`, and a venv made by the context's own build/install.sh, the script the
Dockerfile RUNs); the container's command, args, env and workingDir as rendered; ConfigMap and
Secret keys as files at their mountPaths; emptyDir volumes; init containers by the semantics of
their command (`aws s3 sync`, `gcloud storage rsync` from the emulated bucket); a bucket prefix
mounted by a CSI bucket driver (a PVC bound to a Mountpoint PV, or an inline Cloud Storage FUSE
volume) as the files of that prefix, owned as the mount options say and readable by the pod's user
only where they let it (FUSE without allow-other admits only the user that mounted); the process as the
pod's runAsUser over root-owned files, so that only the mounted volumes are writable. Then the
probes at the manifest's paths and ports, a request to the Service's targetPort, preStop, SIGTERM,
and the exit within terminationGracePeriodSeconds.

Absolute paths of the pod (mountPaths, image folders) live under a temporary root; every path in
the env, the command and workingDir is rewritten into it by one function, and every declared
containerPort is mapped to a free local port by one table (env values equal to a declared port
follow), so a mismatch stays a mismatch. Whatever does not fit the contract raises ContractError
with a message that names the manifest field.

Not modelled: init containers run by the semantics of their command with the client libraries, not
the CLI in its image (tests/deploy/test_model_fetch.py runs the rendered command with the CLI);
`readOnlyRootFilesystem`, resource limits and capabilities are not enforced; SIGTERM arrives with no
request in flight (tests/runtime/test_load.py drains under load).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.kube_expand import expand

# The manifests allow minutes for a big model; the harness waits at most this: the sentiment models load
# in a second, the llm example (torch, transformers, 98 MB of weights) in 10 to 40 s on a busy 2-core machine.
STARTUP_CAP_S = 90.0


class ContractError(AssertionError):
    """What render writes and what the runtime reads disagree."""


@dataclass
class Image:
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = "/"
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    copies: dict[str, str] = field(default_factory=dict)  # image path -> context path


def parse_dockerfile(text: str) -> Image:
    """The parts of a Dockerfile that decide how its container starts (the RUN steps are install.sh)."""
    image = Image()
    logical = re.sub(r"\\\n", " ", text)
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                image.env[key] = value
        elif op == "USER":
            image.user = rest
        elif op == "WORKDIR":
            image.workdir = rest
        elif op in ("ENTRYPOINT", "CMD"):
            argv = json.loads(rest)
            if op == "ENTRYPOINT":
                image.entrypoint = argv
            else:
                image.cmd = argv
        elif op == "COPY":
            *sources, dest = shlex.split(rest)
            if not dest.startswith("/tmp/"):  # build inputs, removed by the RUN that uses them
                for source in sources:
                    image.copies[dest.rstrip("/") or "/"] = source.rstrip("/")
    return image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runtime_env_names(venv: Path) -> set[str]:
    """The MLKIT_* variables the runtime installed in venv reads, asked of the runtime itself."""
    code = "from dataclasses import fields; from mlkit_runtime.settings import Settings; print(' '.join(Settings.env_name(f.name) for f in fields(Settings)))"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@dataclass
class Pod:
    """One replica of `deployment`, run from `context` (a written build context) with `venv`."""

    deployment: dict
    configmaps: dict[str, dict]
    secrets: dict[str, dict]
    context: Path
    venv: Path
    root: Path  # the pod's filesystem: world-readable, root-owned
    logs: Path  # where the container's output goes (outside root)
    fetch: Callable[[str, Path, dict], None]  # fetch(uri, dest, env): what an init container's sync does
    claims: dict[str, dict] = field(default_factory=dict)  # PersistentVolumeClaims by name
    persistent_volumes: dict[str, dict] = field(default_factory=dict)  # PersistentVolumes by name
    ports: dict[int, int] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    # Env the control plane adds to the container, not the manifest: an Indexed Job's JOB_COMPLETION_INDEX, the
    # credentials the cloud's identity webhook injects for the ServiceAccount (here the emulated bucket's).
    injected: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.name = self.deployment["metadata"]["name"]
        self.spec = self.deployment["spec"]["template"]["spec"]
        containers = self.spec["containers"]
        if len(containers) != 1:
            raise ContractError(f"Deployment {self.name}: {len(containers)} containers; the contract is one predictor container")
        self.container = containers[0]
        self.image = parse_dockerfile((self.context / "Dockerfile").read_text())
        self.volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        self.ports = {p["containerPort"]: free_port() for p in self.container.get("ports", [])}

    # --- paths -----------------------------------------------------------------------------------
    def _volume_dir(self, name: str) -> Path:
        return self.root / "volumes" / name

    def _table(self, container: dict) -> dict[str, Path]:
        table = {dest: self.root / "image" / dest.lstrip("/") for dest in self.image.copies}
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in self.volumes:
                raise ContractError(f"Deployment {self.name}: container {container['name']} mounts volume {mount['name']!r}, "
                                    "which spec.template.spec.volumes does not declare")
            table[mount["mountPath"].rstrip("/")] = self._volume_dir(mount["name"]) / mount.get("subPath", "")
        return table

    def host(self, path: str, container: dict) -> str:
        """Where an absolute path of the container lies on this machine; unchanged when no mount or image folder holds it."""
        table = self._table(container)
        for prefix in sorted(table, key=len, reverse=True):
            if path == prefix or path.startswith(prefix + "/"):
                return str(table[prefix]) + path[len(prefix):]
        return path

    def _rewrite(self, value: str, container: dict) -> str:
        value = re.sub(r"(?<![\w/.])/[\w./-]*", lambda m: self.host(m.group(0), container), value)
        return str(self.ports.get(int(value), value)) if value.isdigit() else value

    # --- the pod's filesystem --------------------------------------------------------------------
    def ids(self) -> tuple[int, int, int]:
        pod_sc = self.spec.get("securityContext", {})
        sc = pod_sc | self.container.get("securityContext", {})
        image_uid, _, image_gid = self.image.user.partition(":")
        uid = int(sc.get("runAsUser", image_uid or 0))
        gid = int(sc.get("runAsGroup", image_gid or uid))
        if sc.get("runAsNonRoot") and uid == 0:
            raise ContractError(f"Deployment {self.name}: runAsNonRoot is set but the container would run as root")
        return uid, gid, int(pod_sc.get("fsGroup", gid))

    def _lay_out(self) -> None:
        uid, _, fs_group = self.ids()
        for dest, source in self.image.copies.items():
            shutil.copytree(self.context / source, self.root / "image" / dest.lstrip("/"))
        for name, volume in self.volumes.items():
            target = self._volume_dir(name)
            target.mkdir(parents=True)
            if "emptyDir" in volume:
                os.chown(target, 0, fs_group)  # as the kubelet does for fsGroup: group-owned, group-writable, setgid
                target.chmod(0o2775)
            elif "configMap" in volume:
                self._files(target, volume["configMap"]["name"], self.configmaps, "ConfigMap", decode=False)
            elif "secret" in volume:
                self._files(target, volume["secret"]["secretName"], self.secrets, "Secret", decode=True)
            elif "persistentVolumeClaim" in volume or "csi" in volume:
                self._mount_bucket(name, volume, target)
            else:
                raise ContractError(
                    f"Deployment {self.name}: volume {name} is {sorted(volume)}; the contract covers emptyDir, configMap, secret "
                    "and bucket mounts (persistentVolumeClaim, csi)"
                )
        for init in self.spec.get("initContainers", []):
            self._init(init)
        for name, volume in self.volumes.items():  # what an init container wrote belongs to the pod's user
            if "emptyDir" in volume:
                for path in self._volume_dir(name).rglob("*"):
                    os.lchown(path, uid, fs_group)
        for name in self.volumes:  # a readOnly mount: nobody in the container writes there, owner or not
            if name not in self.writable_volumes():
                for path in [self._volume_dir(name), *self._volume_dir(name).rglob("*")]:
                    path.chmod(path.stat().st_mode & ~0o222)

    def _mount_bucket(self, name: str, volume: dict, target: Path) -> None:
        """What the bucket driver shows: the prefix's files, owned and readable as its mount options say."""
        where = f"Deployment {self.name}: volume {name}"
        if "persistentVolumeClaim" in volume:
            claim_name = volume["persistentVolumeClaim"]["claimName"]
            claim = self.claims.get(claim_name)
            if claim is None:
                raise ContractError(f"{where} claims PVC {claim_name}, which is not among the rendered objects ({sorted(self.claims)})")
            pv = self.persistent_volumes.get(claim["spec"].get("volumeName", ""))
            if pv is None or pv["spec"].get("claimRef", {}).get("name") != claim_name:
                raise ContractError(f"{where}: PVC {claim_name} is bound to no rendered PV whose claimRef names it back")
            csi, options = pv["spec"]["csi"], pv["spec"].get("mountOptions", [])
            if csi["driver"] != "s3.csi.aws.com":
                raise ContractError(f"{where}: PV driver {csi['driver']}; the contract knows s3.csi.aws.com")
            scheme, flags = "s3", dict(o.replace("=", " ", 1).partition(" ")[::2] for o in options)
            prefix, others_may_read = flags.get("prefix", ""), "allow-other" in flags
        else:
            csi = volume["csi"]
            if csi["driver"] != "gcsfuse.csi.storage.gke.io":
                raise ContractError(f"{where}: CSI driver {csi['driver']}; the contract knows gcsfuse.csi.storage.gke.io")
            flags = dict(o.partition("=")[::2] for o in csi["volumeAttributes"].get("mountOptions", "").split(","))
            scheme, prefix, others_may_read = "gs", flags.get("only-dir", ""), True  # GKE's sidecar mounts with allow_other
        prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.fetch(f"{scheme}://{csi['volumeAttributes']['bucketName']}/{prefix}", target, {})
        # Without allow-other FUSE admits only the user that mounted (root, in the driver), whatever uid says.
        uid, gid = (int(flags.get("uid") or 0), int(flags.get("gid") or 0)) if others_may_read else (0, 0)
        for path in [target, *target.rglob("*")]:
            os.lchown(path, uid, gid)
            if not others_may_read:
                path.chmod(0o700 if path.is_dir() else 0o600)

    def _become_user(self) -> None:
        """preexec_fn: the kubelet's runAsUser, runAsGroup and fsGroup (when this test runs as root)."""
        uid, gid, fs_group = self.ids()
        if os.geteuid() == 0:
            os.setgroups([fs_group])
            os.setgid(gid)
            os.setuid(uid)

    def writable_volumes(self) -> set[str]:
        """Volumes the predictor mounts read-write, as the manifest says."""
        return {m["name"] for m in self.container.get("volumeMounts", []) if not m.get("readOnly") and "emptyDir" in self.volumes.get(m["name"], {})}

    def writable_paths(self) -> list[str]:
        """Folders of the pod (its filesystem and its Python) that the pod's user can write, asked as that user."""
        folders = [str(p) for p in [self.root, *self.root.rglob("*"), self.venv, *self.venv.glob("*"), *self.venv.glob("lib/*/site-packages")] if p.is_dir()]
        code = "import os, sys; print('\\n'.join(p for p in sys.argv[1:] if os.access(p, os.W_OK)))"

        python = str(self.venv / "bin" / "python")
        out = subprocess.run([python, "-c", code, *folders], capture_output=True, text=True, preexec_fn=self._become_user, check=True)
        return out.stdout.split()

    def _files(self, target: Path, name: str, objects: dict[str, dict], kind: str, decode: bool) -> None:
        if name not in objects:
            raise ContractError(f"Deployment {self.name}: mounts {kind} {name}, which is not among the rendered objects ({sorted(objects)})")
        obj = objects[name]
        data = {k: base64.b64decode(v) for k, v in obj.get("data", {}).items()} if decode else {k: v.encode() for k, v in obj.get("data", {}).items()}
        data |= {k: v.encode() for k, v in obj.get("stringData", {}).items()}
        for key, body in data.items():
            (target / key).write_bytes(body)
            (target / key).chmod(0o644)

    def _init(self, init: dict) -> None:
        env: dict[str, str] = {}
        for e in init.get("env", []):  # each value may refer to the ones before it, as Kubernetes expands them
            env[e["name"]] = expand(e.get("value", ""), env)
        argv = [expand(a, env) for a in init.get("command", []) + init.get("args", [])]
        positional = [a for a in argv if not a.startswith("--")]
        if positional[:3] in (["aws", "s3", "sync"], ["gcloud", "storage", "rsync"]) and len(positional) == 5:
            source, dest = positional[3], positional[4]
            target = Path(self.host(dest, init))
            if not str(target).startswith(str(self.root)):
                raise ContractError(f"Deployment {self.name}: init container {init['name']} syncs into {dest}, which none of its volumeMounts holds")
            self.fetch(source, target, env)
            return
        raise ContractError(f"Deployment {self.name}: init container {init['name']} runs {argv}; the contract knows `aws s3 sync` and `gcloud storage rsync`")

    # --- the container ---------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(self.image.env) | {"PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"}
        declared: dict[str, str] = {}  # the kubelet expands $(VAR) from the container's own earlier variables, not the image's
        for item in self.container.get("env", []):
            if "value" not in item:
                raise ContractError(f"Deployment {self.name}: env {item['name']} has no plain value ({sorted(item)}); the contract covers values")
            env[item["name"]] = declared[item["name"]] = expand(item["value"], declared)
        env = {k: self._rewrite(v, self.container) if k != "PATH" else v for k, v in env.items()}
        env |= self.injected
        env["TMPDIR"] = self.host("/tmp", self.container)  # the container's /tmp is the mounted tmp volume
        return env

    def check_env_names(self) -> None:
        known = runtime_env_names(self.venv)
        for item in self.container.get("env", []):
            if item["name"].startswith("MLKIT_") and item["name"] not in known:
                raise ContractError(f"Deployment {self.name}: env {item['name']} is not a setting the runtime reads (it reads {', '.join(sorted(known))})")

    def start(self) -> None:
        self.check_env_names()
        self._lay_out()
        env = self.env()
        command = self.container.get("command") or self.image.entrypoint
        args = self.container.get("args") if "args" in self.container else ([] if self.container.get("command") else self.image.cmd)
        argv = [self._rewrite(a, self.container) for a in [*command, *args]]
        exe = shutil.which(argv[0], path=env["PATH"])
        if exe is None:
            raise ContractError(f"Deployment {self.name}: command {argv[0]!r} is not in the image")
        workdir = self.host(self.container.get("workingDir") or self.image.workdir, self.container)
        self.log = open(self.logs, "w")
        self.proc = subprocess.Popen([exe, *argv[1:]], cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=self._become_user)

    def output(self) -> str:
        self.log.flush()
        return self.logs.read_text()[-3000:]

    def _port(self, port, where: str) -> int:
        declared = {p.get("name"): p["containerPort"] for p in self.container.get("ports", [])}
        number = declared.get(port) if isinstance(port, str) else port
        if number is None:
            raise ContractError(f"Deployment {self.name}: {where} names port {port!r}, which the container does not declare ({declared})")
        if number not in self.ports:
            raise ContractError(f"Deployment {self.name}: {where} uses port {number}, which the container does not declare ({declared})")
        return self.ports[number]

    def probe(self, kind: str) -> tuple[int, str]:
        spec = self.container.get(kind)
        if not spec or "httpGet" not in spec:
            raise ContractError(f"Deployment {self.name}: no httpGet {kind}")
        get = spec["httpGet"]
        port = self._port(get["port"], kind)
        url = f"http://127.0.0.1:{port}{get.get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=spec.get("timeoutSeconds", 1)) as response:
                return response.status, url
        except urllib.error.HTTPError as exc:
            return exc.code, url
        except OSError:
            return 0, url

    def wait_started(self) -> float:
        started = time.monotonic()
        spec = self.container.get("startupProbe", {})
        budget = min(spec.get("periodSeconds", 10) * spec.get("failureThreshold", 3), STARTUP_CAP_S)
        while time.monotonic() - started < budget:
            if self.proc.poll() is not None:
                raise ContractError(f"Deployment {self.name}: the container exited {self.proc.returncode} before its startupProbe passed:\n{self.output()}")
            status, url = self.probe("startupProbe")
            if 200 <= status < 400:
                return time.monotonic() - started
            self._check_listening()
            time.sleep(0.1)
        raise ContractError(
            f"Deployment {self.name}: startupProbe GET {url} (manifest port {self.container['startupProbe']['httpGet']['port']}) "
            f"never passed in {budget:g} s:\n{self.output()}"
        )

    def _check_listening(self) -> None:
        """Fail at once when the container listens, but not on a port it declares: probes and Services would never reach it."""
        import psutil

        try:
            process = psutil.Process(self.proc.pid)
            # psutil 6 renamed connections() to net_connections(); kserve's client pins psutil 5.9.
            connections = process.net_connections("inet") if hasattr(process, "net_connections") else process.connections("inet")
            listening = {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN}
        except psutil.Error:
            return
        if listening and not listening & set(self.ports.values()):
            declared = sorted(self.ports)
            local = sorted(p for p in listening if p not in self.ports.values())
            raise ContractError(
                f"Deployment {self.name}: the container listens on port {', '.join(map(str, local))}, "
                f"but declares containerPort {', '.join(map(str, declared))} (probes and the Service's targetPort go there)"
            )

    def check_probe(self, kind: str) -> None:
        status, url = self.probe(kind)
        if not 200 <= status < 400:
            raise ContractError(f"Deployment {self.name}: {kind} GET {url} ({self.container[kind]['httpGet']['path']}) answered {status or 'nothing'}")

    def request(self, service: dict, path: str, payload, headers: dict | None = None) -> tuple[int, bytes]:
        (svc_port,) = service["spec"]["ports"]
        port = self._port(svc_port.get("targetPort", svc_port["port"]), f"Service {service['metadata']['name']} targetPort")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json", **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError as exc:
            raise ContractError(
                f"Deployment {self.name}: Service {service['metadata']['name']} targetPort {svc_port.get('targetPort')} -> 127.0.0.1:{port}: {exc}"
            ) from None

    def pre_stop_seconds(self) -> float:
        hook = self.container.get("lifecycle", {}).get("preStop", {})
        if hook and "sleep" not in hook:
            raise ContractError(f"Deployment {self.name}: preStop is {sorted(hook)}; the contract covers sleep")
        return float(hook.get("sleep", {}).get("seconds", 0))

    def terminate(self) -> float:
        """SIGTERM after preStop (already waited by the caller), then the exit; seconds it took."""
        grace = self.spec.get("terminationGracePeriodSeconds", 30) - self.pre_stop_seconds()
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise ContractError(
                f"Deployment {self.name}: still running {grace:g} s after SIGTERM (terminationGracePeriodSeconds minus preStop); the kubelet kills it there"
            ) from None
        if code != 0:
            raise ContractError(f"Deployment {self.name}: exited {code} on SIGTERM, not 0:\n{self.output()}")
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
