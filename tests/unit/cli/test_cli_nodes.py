"""`addicted-jobs nodes`: what an operator reads, clustering on and off."""

from __future__ import annotations

from addicted_jobs.cli.output import render_nodes


def _node(node_id: int, dead: bool, running: list[dict[str, object]], count: int) -> dict:  # type: ignore[type-arg]
    return {
        "id": node_id,
        "host": "db-host-1",
        "pid": 4242 + node_id,
        "version": "0.1.0",
        "started": "2026-11-30T06:00:00+00:00",
        "heartbeat_age_s": 1.5 if not dead else 900.0,
        "dead_at": "2026-11-30T06:10:00+00:00" if dead else None,
        "running": running,
        "running_count": count,
    }


def test_clustering_off_says_the_daemon_runs_alone() -> None:
    text = render_nodes({"enabled": False, "this_node": None, "nodes": []})
    assert "clustering is off" in text and "[cluster] enabled" in text


def test_nodes_are_listed_with_their_state_and_running_jobs() -> None:
    jobs = [{"id": 7, "name": "fetch_subtitles", "started_at": "2026-11-30T06:11:00+00:00"}]
    result = {
        "enabled": True,
        "this_node": 2,
        "nodes": [_node(2, False, jobs, 3), _node(1, True, [], 0)],
    }
    text = render_nodes(result)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["NODE", "STATE", "HOST"]
    assert lines[1].startswith("2 *") and " live " in lines[1]  # this node is marked
    assert lines[2].startswith("1 ") and " dead " in lines[2]
    assert "node 2 runs: #7 fetch_subtitles (+2 more)" in text
