"""Fixtures for the integration tests: origins `a` and `b`, and edges started from a config.

Edges are real `originguard serve` subprocesses; each one is stopped with SIGTERM at the end
of its test and must exit 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.edge import Edge
from support.origin import Origin

StartEdge = Callable[..., Edge]


@pytest.fixture
def origin_a() -> Iterator[Origin]:
    origin = Origin("a").start()
    yield origin
    origin.stop()


@pytest.fixture
def origin_b() -> Iterator[Origin]:
    origin = Origin("b").start()
    yield origin
    origin.stop()


class EdgeLauncher:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.edges: list[Edge] = []

    def __call__(self, config: dict[str, Any] | str, **kwargs: Any) -> Edge:
        workdir = self.root / f"edge{len(self.edges)}"
        workdir.mkdir(parents=True)
        edge = Edge(config, workdir, **kwargs)
        self.edges.append(edge)
        return edge.start()

    def stop_all(self) -> list[str]:
        """Stop every edge still running; the problems found (a non-zero exit, a traceback)."""
        problems = []
        for edge in self.edges:
            if edge.process is None:
                continue
            if edge.returncode is None:
                try:
                    code = edge.stop()
                except Exception as error:  # a hung edge is killed and reported
                    edge.kill()
                    problems.append(f"edge did not stop on SIGTERM: {error}")
                    continue
                if code != 0:
                    problems.append(f"edge exited {code}:\n{edge.stderr()}")
            if "Traceback" in edge.stderr():
                problems.append(f"edge logged a traceback:\n{edge.stderr()}")
        return problems


@pytest.fixture
def start_edge(tmp_path: Path) -> Iterator[StartEdge]:
    """start_edge(config) -> a running Edge; stopped (and checked) after the test."""
    launcher = EdgeLauncher(tmp_path)
    yield launcher
    problems = launcher.stop_all()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def module_edges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartEdge]:
    """Like start_edge, for an edge shared by the tests of one module."""
    launcher = EdgeLauncher(tmp_path_factory.mktemp("edges"))
    yield launcher
    problems = launcher.stop_all()
    assert not problems, "\n".join(problems)
