# /// farm
# name = "system_info"
# description = "CPU count, memory, disk, OS and Python of the sandbox, recorded as environment facts"
# packages = []
# repeatable = false
# ///
# Facts are printed as `FARM_FACT <key> <value>` lines, last, so they survive output truncation; a
# fact that cannot be read is left out, never printed as zero.
import os
import platform
import shutil


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def field(text, name, sep=":"):
    for line in (text or "").splitlines():
        key, found, value = line.partition(sep)
        if found and key.strip() == name:
            return value.strip().strip('"')
    return None


facts = {
    "os": platform.system(),
    "os_release": platform.release(),
    "machine": platform.machine(),
    "python": platform.python_version(),
    "python_implementation": platform.python_implementation(),
}
if os.cpu_count():
    facts["cpu_count"] = os.cpu_count()
if hasattr(os, "sched_getaffinity"):
    facts["cpu_usable"] = len(os.sched_getaffinity(0))  # what a container may actually schedule on
model = field(read("/proc/cpuinfo"), "model name")
if model:
    facts["cpu_model"] = model
mem_kib = field(read("/proc/meminfo"), "MemTotal")
if mem_kib and mem_kib.split()[0].isdigit():
    facts["memory_total_bytes"] = int(mem_kib.split()[0]) * 1024
elif hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
    facts["memory_total_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
limit = (read("/sys/fs/cgroup/memory.max") or read("/sys/fs/cgroup/memory/memory.limit_in_bytes") or "").strip()
if limit.isdigit() and int(limit) < 1 << 60:  # "max" or a huge number means no cgroup limit
    facts["memory_limit_bytes"] = int(limit)
distro = field(read("/etc/os-release"), "PRETTY_NAME", "=")
if distro:
    facts["distro"] = distro
disk = shutil.disk_usage(".")
facts["disk_total_bytes"] = disk.total
facts["disk_free_bytes"] = disk.free

gib = 1024 ** 3
print(f"OS: {facts['os']} {facts['os_release']} ({facts.get('distro', 'distribution unknown')}), {facts['machine']}")
print(f"Python: {facts['python']} ({facts['python_implementation']})")
print(f"CPU: {facts.get('cpu_count', 'unknown')} logical, {facts.get('cpu_usable', 'unknown')} usable, "
      f"{facts.get('cpu_model', 'model unknown')}")
memory = facts.get("memory_total_bytes")
print(f"Memory: {memory / gib:.2f} GiB total" if isinstance(memory, int) else "Memory: unknown")
print(f"Disk: {disk.total / gib:.2f} GiB total, {disk.free / gib:.2f} GiB free")
for key, value in facts.items():
    print(f"FARM_FACT {key} {' '.join(str(value).split())}")
