"""Hostile snippets: each tries one way out of the local sandbox and prints what it got.

Every attempt prints ``NOTHING <attempt>: <why>`` when it was stopped and ``GOT <attempt>: ...``
when it succeeded; the tests require the NOTHING line of every attempt (so each attempt really
ran) and no GOT line. Targets arrive through allow-listed variables (``HOSTILE_*``), set by the
test to real things on the host: the embedded Redis socket, a .env with a secret, the farm's data
dir, a TCP port the test listens on, a host path to write.
"""

from farm.snippets import Snippet, parse_snippet

PRELUDE = '''
import os, socket, subprocess, sys


def report(attempt, got, detail):
    print(("GOT " if got else "NOTHING ") + attempt + ": " + str(detail)[:160], flush=True)


def sh(*argv):
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=20)
        return done.returncode, (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
    except OSError as exc:
        return -1, [type(exc).__name__]
'''

FORGE = PRELUDE + '''
path = os.environ["HOSTILE_SOCKET"]
try:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    s.connect(path)
    s.sendall(b"*5\\r\\n$4\\r\\nXADD\\r\\n$" + str(len(os.environ["HOSTILE_STREAM"])).encode() + b"\\r\\n"
              + os.environ["HOSTILE_STREAM"].encode() + b"\\r\\n$1\\r\\n*\\r\\n$1\\r\\nf\\r\\n$1\\r\\nv\\r\\n")
    report("forge-unix-socket", True, s.recv(100))
except OSError as exc:
    report("forge-unix-socket", False, type(exc).__name__)
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect("\\0farm-hostile-" + os.environ["HOSTILE_PORT"])
    report("forge-abstract-socket", True, "connected")
except OSError as exc:
    report("forge-abstract-socket", False, type(exc).__name__)
'''

ESCAPE = PRELUDE + '''
code, said = sh("mount", "-o", "remount,rw,bind", "/")
report("remount-root-rw", code == 0, said)
code, said = sh("umount", "-l", "/tmp")
report("umount-tmp", code == 0, said)
code, said = sh("unshare", "-Urm", "sh", "-c", "mount -o remount,rw /usr && touch /usr/hostile-escape")
report("userns-remount-usr", code == 0, said)
for target in ("/etc/shadow", "/root/.bash_history"):
    try:
        with open(target) as fh:
            report("read-" + target, True, fh.read(20))
    except OSError as exc:
        report("read-" + target, False, type(exc).__name__)
for target in (os.environ["HOSTILE_OUTSIDE"], "/usr/hostile-write", "/etc/hostile-write"):
    try:
        with open(target, "w") as fh:
            fh.write("escaped")
        report("write-" + target, True, "written")
    except OSError as exc:
        report("write-" + target, False, type(exc).__name__)
try:
    os.setuid(0)
    report("setuid-0", True, os.getuid())
except OSError as exc:
    report("setuid-0", False, type(exc).__name__)
report("uid-is-root", os.getuid() == 0 or os.geteuid() == 0, os.getuid())
'''

EXFILTRATE = PRELUDE + '''
secret = "FARM_HOSTILE_SECRET"  # the name of a host variable that is not allow-listed
for target in (os.environ["HOSTILE_ENV_FILE"], os.path.join(os.environ["HOSTILE_DATA"], "redis", "redis.log"),
               "/proc/1/environ"):
    try:
        with open(target, "rb") as fh:
            data = fh.read()
        report("read-" + target, secret.encode() in data or target != "/proc/1/environ", len(data))
    except OSError as exc:
        report("read-" + target, False, type(exc).__name__)
try:
    report("list-data-dir", True, os.listdir(os.environ["HOSTILE_DATA"]))
except OSError as exc:
    report("list-data-dir", False, type(exc).__name__)
report("host-env-var", secret in os.environ, sorted(k for k in os.environ if k.startswith("FARM_")))
leaked = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if secret.encode() in fh.read():
                    leaked.append(pid)
        except OSError:
            pass
report("proc-environ-scan", bool(leaked), leaked or "no process shows the secret")
'''

FORK_BOMB = PRELUDE + '''
import time
limit = int(os.environ["HOSTILE_PIDS"])
children = []
try:
    for _ in range(1500):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    stopped = None
except OSError as exc:
    stopped = type(exc).__name__
for pid in children:
    os.kill(pid, 9)
report("fork-1500", stopped is None or len(children) >= limit, f"{len(children)} forks, then {stopped}")
'''

MEMORY_BOMB = PRELUDE + '''
code = "b = bytearray(1536 * 1024 * 1024)\\nfor i in range(0, len(b), 4096): b[i] = 1\\nprint('held')"
procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
         for _ in range(3)]
held = sum(b"held" in p.communicate(timeout=120)[0] for p in procs)
report("memory-3x1.5GB", held > 0, f"{held} of 3 processes got 1.5 GB")
'''

MEMORY_AGGREGATE = PRELUDE + '''
# Each process stays under the per-process limit (RLIMIT_AS); together they are far above memory_mb.
mb = int(os.environ["HOSTILE_MEMORY_MB"]) * 4 // 10
code = ("import sys\\nb = bytearray(%d << 20)\\nfor i in range(0, len(b), 4096): b[i] = 1\\n"
        "print('ready', flush=True)\\nsys.stdin.read()" % mb)
procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) for _ in range(4)]
ready = sum(p.stdout.readline().startswith(b"ready") for p in procs)  # all hold their memory until stdin closes
for p in procs:
    p.stdin.close()
    p.wait()
report("memory-4x0.4-at-once", ready == 4, f"{ready} of 4 processes held {mb} MB at the same time")
'''

DISK_BOMB = PRELUDE + '''
def fill(path, limit_mb=1200):
    written = 0
    chunk = b"x" * (1 << 20)
    try:
        with open(path, "wb") as fh:
            for _ in range(limit_mb):
                fh.write(chunk)
                written += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return written, type(exc).__name__
    return written, None

cap = int(os.environ["HOSTILE_DISK_MB"]) * (1 << 20)
total = 0
for i, where in enumerate(("./bomb", os.path.expanduser("~/bomb"), "/dev/shm/bomb", "/tmp/bomb2")):
    written, stopped = fill(where)
    total += written
    report("disk-" + where, stopped is None, f"{written >> 20} MB then {stopped}")
report("disk-total", total > cap + (64 << 20), f"{total >> 20} MB in all")
'''

SOCKETS = PRELUDE + '''
for port in (6379, int(os.environ["HOSTILE_PORT"])):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        report(f"tcp-127.0.0.1:{port}", True, "connected")
    except OSError as exc:
        report(f"tcp-127.0.0.1:{port}", False, type(exc).__name__)
try:
    socket.getaddrinfo("example.org", 80)
    report("dns", True, "resolved")
except OSError as exc:
    report("dns", False, type(exc).__name__)
'''

ATTEMPTS = {  # snippet -> the attempts it must report NOTHING for
    "forge": ["forge-unix-socket", "forge-abstract-socket"],
    "escape": ["remount-root-rw", "umount-tmp", "userns-remount-usr", "read-/etc/shadow", "write-/usr/hostile-write",
               "write-/etc/hostile-write", "setuid-0", "uid-is-root"],
    "exfiltrate": ["read-/proc/1/environ", "list-data-dir", "host-env-var", "proc-environ-scan"],
    "fork_bomb": ["fork-1500"],
    "memory_bomb": ["memory-3x1.5GB"],
    "disk_bomb": ["disk-./bomb", "disk-/dev/shm/bomb", "disk-total"],
    "sockets": ["tcp-127.0.0.1:6379", "dns"],
}
# Aggregate limits need a cgroup per sample (a root farm on this host: providers/cgroups.py); a farm
# without one (non-root, no delegation) is bounded only by pids x memory_mb, as its facts say.
AGGREGATE_ATTEMPTS = {"memory_aggregate": ["memory-4x0.4-at-once"]}
SETUP_TRICKS = {  # snippet -> packages it declares (a manifest written by something other than the parser)
    "trick_options": ("--no-index", "{evilpkg}"),
    "trick_url": ("https://example.invalid/evil-1.0-py3-none-any.whl",),
    "trick_editable": ("-e", "."),
    "trick_direct_reference": ("evil @ file://{evilpkg}",),
}


def hostile_snippets(evilpkg: str) -> list[Snippet]:
    bodies = {"forge": FORGE, "escape": ESCAPE, "exfiltrate": EXFILTRATE, "fork_bomb": FORK_BOMB,
              "memory_bomb": MEMORY_BOMB, "disk_bomb": DISK_BOMB, "sockets": SOCKETS,
              "memory_aggregate": MEMORY_AGGREGATE}
    snippets = [parse_snippet(f'# /// farm\n# name = "{name}"\n# ///\n{body}', f"{name}.py")
                for name, body in bodies.items()]
    for name, packages in SETUP_TRICKS.items():
        snippets.append(Snippet(name=name, code="print('the setup phase let me through')",
                                packages=tuple(p.format(evilpkg=evilpkg) for p in packages)))
    return snippets


EVIL_SETUP = '''
from setuptools import setup
open({marker!r}, "w").write("setup.py of evilpkg ran")
setup(name="evil", version="1.0")
'''
