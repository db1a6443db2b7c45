"""Real SWE-bench rows and the offline image they run in (built by scripts/swebench-image).

The rows are two real marshmallow fixes released after 3.19.0, in SWE-bench's
classic schema (`classic.jsonl`) and in the current swebench package's schema
(`harness.jsonl`: the same plus image, eval_script, log_parser, eval_type),
and a wrong patch for each (`wrong_patches.json`).
Their images are missing until set-up has run: a skip, a failure when CI is set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiodocker
import pytest

from awm_tui.engine.sandbox.docker import image_exists
from tests.plugins.docker import _unavailable

SWEBENCH_DATA = Path(__file__).resolve().parents[1] / "data" / "swebench"
CLASSIC_ROWS = SWEBENCH_DATA / "classic.jsonl"
HARNESS_ROWS = SWEBENCH_DATA / "harness.jsonl"
# Per instance, a patch that applies at base_commit but does not resolve it (and why).
WRONG_PATCHES = SWEBENCH_DATA / "wrong_patches.json"
# scripts/swebench-image tags this name too; each row's own name is its `image`.
BASE_IMAGE = "awm-swebench/marshmallow:3.19.0"


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a .jsonl file (for parametrizing at collection time too)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class SwebenchImages:
    base: str
    by_instance: dict[str, str]  # instance_id -> swebench/sweb.eval.x86_64.<id>:latest


@pytest.fixture(scope="session")
def swebench_classic_path() -> Path:
    return CLASSIC_ROWS


@pytest.fixture(scope="session")
def swebench_harness_path() -> Path:
    return HARNESS_ROWS


@pytest.fixture
def swebench_classic_rows() -> list[dict[str, Any]]:
    """Fresh copies each test, so a test may edit a row (e.g. drop a field)."""
    return read_rows(CLASSIC_ROWS)


@pytest.fixture
def swebench_harness_rows() -> list[dict[str, Any]]:
    return read_rows(HARNESS_ROWS)


@pytest.fixture
def swebench_wrong_patches() -> dict[str, dict[str, str]]:
    """instance_id -> {"patch": ..., "why": ...}: graded "unresolved", never "error"."""
    return json.loads(WRONG_PATCHES.read_text())


@pytest.fixture
async def swebench_images(docker_client: aiodocker.Docker, docker_url: str) -> SwebenchImages:
    """The base image and every row's instance image, present on the daemon.

    An instance tag that a test removed (e.g. `keep_images = "none"`) is put
    back from the base image, so tests do not depend on their order.
    """
    images = SwebenchImages(
        base=BASE_IMAGE,
        by_instance={row["instance_id"]: row["image"] for row in read_rows(HARNESS_ROWS)},
    )
    if not await image_exists(docker_client, images.base):
        _unavailable(f"SWE-bench image {images.base} is missing at {docker_url} (run scripts/swebench-image)")
    for name in images.by_instance.values():
        if not await image_exists(docker_client, name):
            repo, tag = name.rsplit(":", 1)
            await docker_client.images.tag(images.base, repo, tag=tag)
    return images


@pytest.fixture(scope="session")
def swebench_harness() -> SimpleNamespace:
    """The swebench package's grading API (the `swebench` extra)."""
    try:
        from swebench import types
        from swebench.harness import constants, grading
        from swebench.harness.log_parsers import PARSER_REGISTRY
        from swebench.harness.utils import make_test_spec
    except ImportError:
        _unavailable("the swebench package is not installed (pip install -e '.[swebench]')")
    return SimpleNamespace(
        constants=constants,
        grading=grading,
        parsers=PARSER_REGISTRY,
        make_test_spec=make_test_spec,
        types=types,
    )
