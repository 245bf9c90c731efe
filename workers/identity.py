"""Was the sandbox really new? The identity probe, and what it can recognise from inside.

Right after the timed readiness check (never inside it) the worker runs ``probe_code(token)`` in
the sandbox: stdlib Python that reads the sandbox's boot identity (``/proc/sys/kernel/random/boot_id``,
machine id, namespace ids, the start tick of its PID 1, hostname, uptime), a few signs of the
isolation technology, and checks for a farm marker file in its working directory (then home, then
/tmp), writing this sample's token there. ``parse`` reads the one ``FARM_IDENTITY {json}`` line back.

The verdict (workers/reuse.py) needs three things this module derives:

* ``fingerprint``: a hash of the boot identity (and the working folder, which tells apart sandboxes
  that share a kernel and get namespaces whose recycled ids repeat). Two samples with the same fingerprint saw the same
  kernel boot, the same namespaces and the same PID 1 — one sandbox, or clones of one memory
  snapshot (which is why a repeat alone is weighed against uptime and overlap, not taken as proof);
* ``isolation``: microvm / gvisor / container / process / unknown, with the evidence;
* ``shares_worker``: the sandbox runs on the worker's own kernel in the worker's own namespaces (a
  process sandbox, or a test fake that runs code as host subprocesses): its boot identity is the
  host's, the same for every sandbox, and so is no evidence of anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

PROBE_HEADER = "# farm-identity "  # first line of the probe; sim recognises it (and reads the token)
MARKER_NAME = ".farm-sandbox-marker"
LINE = "FARM_IDENTITY "
GVISOR_KERNEL = "#1 SMP Sun Jan 10 15:06:54 PST 2016"  # the fixed version string gVisor reports
CONTAINER_CGROUPS = ("docker", "kubepods", "containerd", "lxc", "libpod", "crio")
OVERLAY_ROOTS = ("overlay", "aufs", "fuse-overlayfs")

# Runs inside the sandbox: stdlib only, never raises, prints one line. TOKEN is substituted.
_PROBE = r'''
import json, os
def _read(path, limit=4096):
    try:
        with open(path) as fh:
            return fh.read(limit).strip()
    except Exception:
        return None
out = {"boot_id": _read("/proc/sys/kernel/random/boot_id"),
       "machine_id": _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")}
ns = {}
for name in ("pid", "mnt", "net", "uts", "ipc", "cgroup"):
    try:
        ns[name] = os.readlink("/proc/self/ns/" + name)
    except Exception:
        pass
out["ns"] = ns
stat = _read("/proc/1/stat") or ""
out["init_start"] = stat.rsplit(")", 1)[1].split()[19] if ")" in stat else None
out["init_comm"] = _read("/proc/1/comm")
try:
    out["cwd"] = os.getcwd()
except Exception:
    out["cwd"] = None
try:
    out["hostname"] = os.uname().nodename
except Exception:
    out["hostname"] = None
up = _read("/proc/uptime")
out["uptime_s"] = float(up.split()[0]) if up else None
out["kernel"] = (_read("/proc/version", 300) or "")[:300]
out["hypervisor_flag"] = " hypervisor" in (_read("/proc/cpuinfo", 65536) or "")
out["dmi"] = " ".join(x for x in (_read("/sys/class/dmi/id/sys_vendor"), _read("/sys/class/dmi/id/product_name")) if x)
out["sys_hypervisor"] = _read("/sys/hypervisor/type")
cmdline = _read("/proc/cmdline", 4096) or ""
out["virtio_mmio"] = "virtio_mmio" in cmdline
out["container_files"] = [p for p in ("/.dockerenv", "/run/.containerenv") if os.path.exists(p)]
cgroup = _read("/proc/1/cgroup", 4096) or ""
out["cgroup_hint"] = [w for w in ("docker", "kubepods", "containerd", "lxc", "libpod", "crio") if w in cgroup]
root = None
for line in (_read("/proc/self/mounts", 262144) or "").splitlines():
    parts = line.split()
    if len(parts) > 2 and parts[1] == "/":
        root = parts[2]
out["root_fs"] = root
out["marker"] = None
for folder in (os.getcwd(), os.path.expanduser("~"), "/tmp"):
    path = os.path.join(folder, MARKER_NAME)
    try:
        found = _read(path)
        with open(path, "w") as fh:
            fh.write(TOKEN)
        out["marker"] = {"found": found, "folder": folder}
        break
    except Exception:
        continue
print("FARM_IDENTITY " + json.dumps(out))
'''


def probe_code(token: str) -> str:
    """The probe for one sample; ``token`` is written as the marker (no quotes or newlines in it)."""
    clean = "".join(c for c in token if c.isalnum() or c in "-_.:|#")[:200]
    return (f"{PROBE_HEADER}{clean}\nTOKEN = {clean!r}\nMARKER_NAME = {MARKER_NAME!r}\n" + _PROBE)


def token_of(code: str) -> str | None:
    """The marker token a probe will write (for providers that answer the probe themselves)."""
    if not code.startswith(PROBE_HEADER):
        return None
    return code[len(PROBE_HEADER):].split("\n", 1)[0]


@dataclass
class Identity:
    """What the probe read inside one sandbox."""

    raw: dict[str, Any]
    fingerprint: str | None = None
    marker_found: str | None = None
    marker_written: bool = False
    uptime_s: float | None = None
    isolation: str = "unknown"
    evidence: list[str] = field(default_factory=list)
    shares_worker: bool = False

    def facts(self) -> dict[str, Any]:
        """What the sample keeps: short, no raw file contents."""
        return {"boot_id": self.raw.get("boot_id"), "fingerprint": self.fingerprint,
                "isolation": self.isolation, "marker": "found" if self.marker_found else
                "written" if self.marker_written else "unwritable"}


def parse(stdout: str, host: dict[str, Any]) -> Identity | None:
    """The probe's line from ``stdout``, classified against the worker's own ``host`` identity;
    None when there is no well-formed line."""
    for line in reversed((stdout or "").splitlines()):
        if line.startswith(LINE):
            try:
                raw = json.loads(line[len(LINE):])
            except ValueError:
                return None
            return _identity(raw, host) if isinstance(raw, dict) else None
    return None


def _identity(raw: dict[str, Any], host: dict[str, Any]) -> Identity:
    marker = raw.get("marker") if isinstance(raw.get("marker"), dict) else None
    ident = Identity(raw=raw, marker_found=(marker or {}).get("found") or None, marker_written=marker is not None)
    uptime = raw.get("uptime_s")
    ident.uptime_s = float(uptime) if isinstance(uptime, (int, float)) else None
    ns = raw.get("ns") if isinstance(raw.get("ns"), dict) else {}
    parts = [raw.get("boot_id"), raw.get("machine_id"), *(f"{k}={ns[k]}" for k in sorted(ns)),
             raw.get("init_start"), raw.get("hostname"), raw.get("cwd")]
    if raw.get("boot_id"):  # without a boot id there is nothing to call an identity
        ident.fingerprint = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]
    ident.isolation, ident.evidence, ident.shares_worker = classify(raw, host)
    return ident


def classify(raw: dict[str, Any], host: dict[str, Any]) -> tuple[str, list[str], bool]:
    """(isolation, evidence, shares the worker's kernel and namespaces) from what the probe read."""
    ns = raw.get("ns") if isinstance(raw.get("ns"), dict) else {}
    kernel = str(raw.get("kernel") or "")
    if GVISOR_KERNEL in kernel:
        return "gvisor", ["/proc/version is gVisor's fixed string"], False
    if raw.get("boot_id") and raw.get("boot_id") == host.get("boot_id"):
        if ns.get("pid") and ns.get("pid") == host.get("pid_ns"):
            return "process", ["the worker's kernel and pid namespace"], True
        return "container", ["the worker's kernel, its own pid namespace"], False
    evidence = [f"{f} exists" for f in raw.get("container_files") or []]
    evidence += [f"PID 1 cgroup names {w}" for w in raw.get("cgroup_hint") or []]
    if raw.get("root_fs") in OVERLAY_ROOTS:
        evidence.append(f"root filesystem is {raw['root_fs']}")
    if evidence:
        return "container", evidence, False
    if raw.get("virtio_mmio"):
        evidence.append("virtio-mmio devices on the kernel command line (Firecracker-style)")
    if raw.get("dmi"):
        evidence.append(f"DMI says {raw['dmi']}")
    if raw.get("sys_hypervisor"):
        evidence.append(f"/sys/hypervisor/type is {raw['sys_hypervisor']}")
    if raw.get("hypervisor_flag"):
        evidence.append("the CPU reports a hypervisor")
    if evidence:
        return "microvm", evidence, False
    return "unknown", [], False


_host: dict[str, Any] | None = None


def host_identity() -> dict[str, Any]:
    """The worker's own boot id and pid namespace (read once per process)."""
    global _host
    if _host is None:
        def read(path: str) -> str | None:
            try:
                with open(path) as fh:
                    return fh.read().strip()
            except OSError:
                return None
        try:
            pid_ns = os.readlink("/proc/self/ns/pid")
        except OSError:
            pid_ns = None
        _host = {"boot_id": read("/proc/sys/kernel/random/boot_id"), "pid_ns": pid_ns}
    return _host
