"""Memory figures of process trees, read from /proc (Linux), for the soak and the benchmarks."""

from __future__ import annotations

from pathlib import Path


def process_tree(root: int) -> list[int]:
    """root and its descendants, from /proc/*/stat (the parent is the field after the state)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def memory_kib(pids: list[int]) -> dict[str, int]:
    """Summed Rss, Pss and RssAnon (kB) of these processes; one that exited meanwhile counts nothing.
    RssAnon leaves out shared memory (PostgreSQL's shared buffers, which fill up to their size and
    stop), so it is where a process's own leak would show."""
    total = {"rss": 0, "pss": 0, "anon": 0}
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total["rss"] += _kib(rollup, "Rss")
        total["pss"] += _kib(rollup, "Pss")
        total["anon"] += _kib(status, "RssAnon")
    return total


def _kib(text: str, name: str) -> int:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
