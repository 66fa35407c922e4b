"""How much memory a new allocation may take: the machine's free memory, capped by the
limits of the process's control groups (a container, a SLURM job)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["available_ram", "cgroup_room"]

_CGROUP = Path("/sys/fs/cgroup")
_PROC_CGROUP = Path("/proc/self/cgroup")


def available_ram() -> int:
    """Bytes available to new allocations: psutil's figure, capped by cgroup limits.

    A container or a cluster job (SLURM) may allow less than the machine has free:
    the tightest limit of the process's cgroup and of the groups above it counts
    (:func:`cgroup_room`).
    """
    import psutil

    free = int(psutil.virtual_memory().available)
    room = cgroup_room()
    return free if room is None else min(free, room)


#: The files of a cgroup's memory limit and use, and the entry of ``memory.stat`` that
#: counts the page cache the kernel reclaims first: cgroup v2, then v1.
_CGROUP_FILES = {
    "v2": ("memory.max", "memory.current", "inactive_file"),
    "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
}


def cgroup_room() -> int | None:
    """Bytes the process's cgroups still allow: the least, over its group and the groups
    above it, of limit less use; None where no limit is set or none can be read.

    The groups are those ``/proc/self/cgroup`` names: the unified hierarchy (v2,
    ``0::/path``) under ``/sys/fs/cgroup``, and the ``memory`` controller of v1 under
    ``/sys/fs/cgroup/memory``. Inside a container the group's path may be ``/``: the
    container's own limits are then at the mount's root.
    """
    rooms = []
    for version, root, group in _memory_groups():
        folder = root / group
        while folder == root or root in folder.parents:
            room = _group_room(folder, *_CGROUP_FILES[version])
            if room is not None:
                rooms.append(room)
            if folder == root:
                break
            folder = folder.parent
    return max(0, min(rooms)) if rooms else None


def _group_room(folder: Path, limit_name: str, used_name: str, cache_name: str) -> int | None:
    """Limit less use of one group (None: no limit, or unreadable). The use counts the
    page cache, which the kernel gives back before it refuses memory, so its inactive
    part (``memory.stat``) counts as room, as psutil counts it as available."""
    try:
        text = (folder / limit_name).read_text().strip()
        limit = None if text == "max" else int(text)
        used = int((folder / used_name).read_text())
    except (OSError, ValueError):
        return None
    if limit is None or limit >= 2**60:  # v1 says "none" with about 2**63
        return None
    return limit - used + _stat_entry(folder / "memory.stat", cache_name)


def _stat_entry(path: Path, name: str) -> int:
    """An entry of a ``memory.stat`` file (0 when absent or unreadable)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        key, _, value = line.partition(" ")
        if key == name and value.strip().isdigit():
            return int(value)
    return 0


def _memory_groups() -> list[tuple[str, Path, str]]:
    """(version, mount, the group's path below it) of the process's memory cgroups."""
    try:
        lines = _PROC_CGROUP.read_text().splitlines()
    except OSError:
        return [("v2", _CGROUP, "")]
    groups = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            groups.append(("v2", _CGROUP, path.lstrip("/")))
        elif "memory" in controllers.split(","):
            groups.append(("v1", _CGROUP / "memory", path.lstrip("/")))
    return groups
