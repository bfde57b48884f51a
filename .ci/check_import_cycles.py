"""Fail on any import cycle among the modules of addicted_jobs (issue 16).

import-linter's contracts say which packages may import which, but none of them notices a cycle
between two modules that are allowed to import each other. This builds the same import graph
(grimp, import-linter's own library) and reports every strongly connected component of more
than one module, with one concrete cycle through it. Imports under `if TYPE_CHECKING:` are left
out: they never run, so they cannot fail at import time, and annotations may name each other.

    .venv/bin/python .ci/check_import_cycles.py    # exit 1 and the cycles, or exit 0 and "none"
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import grimp

PACKAGE = "addicted_jobs"


def components(nodes: Iterable[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative: no recursion
    limit on a deep graph), each sorted, the list sorted by its first module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(nodes):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(edges.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(edges.get(nxt, ()))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                members: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(sorted(members))
    return sorted(found)


def one_cycle(members: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component."""
    start, inside = members[0], set(members)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for nxt in sorted(edges.get(node, ()) & inside):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return members  # unreachable for a real component


def main() -> int:
    graph = grimp.build_graph(PACKAGE, exclude_type_checking_imports=True)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    cycles = components(graph.modules, edges)
    if not cycles:
        print(f"import cycles in {PACKAGE}: none ({len(graph.modules)} modules)")
        return 0
    print(f"import cycles in {PACKAGE}: {len(cycles)}", file=sys.stderr)
    for members in cycles:
        print(
            f"  {len(members)} modules: {' -> '.join(one_cycle(members, edges))}", file=sys.stderr
        )
        for member in members:
            print(f"    {member}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
