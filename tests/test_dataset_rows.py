"""What a row can be and which rows a run takes: SWE-bench's schemas, files, selection flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from awm_tui.config.models import DockerConfig
from awm_tui.engine.outcomes import ErrorKind, InfraError
from awm_tui.engine.sandbox.factory import SandboxFactory
from awm_tui.engine.tasks import TaskError, load_dataset, swebench_image_name
from tests.test_batch import batch, batch_env

SAMPLE_IDS = [t.instance_id for t in load_dataset("sample").tasks]
CLASSIC = {  # the shape of one real SWE-bench Lite row, as the HF dataset exports it
    "instance_id": "psf__requests-2317", "repo": "psf/requests", "base_commit": "091991be0da19de9108dbe5e3752917fea3d7fdc",
    "patch": "diff --git a/requests/sessions.py b/requests/sessions.py\n", "test_patch": "", "problem_statement": "method = builtin_str(method) problem",
    "hints_text": "", "created_at": "2014-11-01T02:20:16Z", "version": 2.4,
    "FAIL_TO_PASS": "[\"test_requests.py::RequestsTestCase::test_HTTP_200_OK_GET_ALTERNATIVE\"]",
    "PASS_TO_PASS": "[]", "environment_setup_commit": "091991be0da19de9108dbe5e3752917fea3d7fdc",
}


def test_swebench_image_names_follow_its_rule() -> None:
    assert swebench_image_name("psf__requests-2317") == "swebench/sweb.eval.x86_64.psf_1776_requests-2317:latest"
    assert (swebench_image_name("Django__Django-11099", namespace="mirror.local/sb", arch="arm64", tag="v2")
            == "mirror.local/sb/sweb.eval.arm64.django_1776_django-11099:v2")


def test_row_kinds_and_their_images(tmp_path: Path) -> None:
    harness = {**CLASSIC, "instance_id": "psf__requests-1963", "image": "reg/img:1", "eval_script": "#!/bin/bash",
               "log_parser": "parse_log_requests", "eval_type": "pass_and_fail"}
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(CLASSIC) + "\n" + json.dumps(harness) + "\n")
    dataset = load_dataset(path)
    classic, row = dataset.tasks
    assert (classic.kind, row.kind, load_dataset("sample").tasks[0].kind) == ("classic", "harness", "extended")
    assert classic.version == "2.4" and classic.size is None
    factory = SandboxFactory("local", limits=DockerConfig(namespace="mirror"))
    with pytest.raises(InfraError, match='sandbox = "docker"') as raised:
        factory.image_for(classic)
    assert raised.value.kind is ErrorKind.SETUP
    assert factory.image_for(load_dataset("sample").tasks[0]) is None
    assert factory.env_for(classic) == factory.env_for(row) == "testbed"
    assert factory.env_for(load_dataset("sample").tasks[0]) is None


@pytest.mark.parametrize(("row", "field"), [
    ({"eval_script": "#!/bin/bash", "image": "x:1"}, "log_parser"),
    ({"eval_script": "#!/bin/bash", "log_parser": "parse_log_pytest"}, "image"),
])
def test_a_harness_row_missing_a_field_is_one_line(tmp_path: Path, row: dict, field: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({**CLASSIC, **row}) + "\n")
    with pytest.raises(TaskError, match=f"rows.jsonl:1: field {field}: ") as raised:
        load_dataset(path)
    assert "\n" not in str(raised.value)


def test_parquet_rows(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    path = tmp_path / "lite.parquet"
    pq.write_table(pa.Table.from_pylist([CLASSIC, {**CLASSIC, "instance_id": "psf__requests-863"}]), path)
    dataset = load_dataset(path)
    assert [t.instance_id for t in dataset.tasks] == ["psf__requests-2317", "psf__requests-863"]
    assert dataset.tasks[0].FAIL_TO_PASS == ("test_requests.py::RequestsTestCase::test_HTTP_200_OK_GET_ALTERNATIVE",)


def test_parquet_without_pyarrow_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "lite.parquet").write_bytes(b"PAR1")
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from awm_tui.engine.tasks import TaskError, load_dataset\n"
            "try:\n    load_dataset(sys.argv[1])\nexcept TaskError as exc:\n    print(exc)\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "lite.parquet")], capture_output=True, text=True)
    assert res.returncode == 0 and "needs pyarrow: pip install pyarrow" in res.stdout, res.stderr
    assert res.stdout.count("\n") == 1


def test_filter_slice_shuffle_as_mini_swe_agent_does() -> None:
    sample = load_dataset("sample")
    ids = lambda tasks: [t.instance_id for t in tasks]  # noqa: E731
    small = [i for i in SAMPLE_IDS if i != "minicsv__minicsv-15"]
    assert ids(sample.select(limit=None)) == small
    assert ids(sample.select(limit=None, filter=r"textkit")) == [i for i in small if i.startswith("textkit")]
    assert ids(sample.select(limit=None, filter="kit")) == []  # re.match: anchored at the start
    assert ids(sample.select(limit=None, slice="1:3")) == SAMPLE_IDS[1:3]
    assert ids(sample.select(limit=2, slice="-3:")) == SAMPLE_IDS[-3:-1]
    shuffled = ids(sample.select(limit=None, shuffle=7, include_medium=True))
    assert sorted(shuffled) == sorted(SAMPLE_IDS) and shuffled != SAMPLE_IDS
    assert shuffled == ids(sample.select(limit=None, shuffle=7, include_medium=True))  # the seed decides
    # shuffled first, then filtered, then sliced
    assert ids(sample.select(limit=None, shuffle=7, filter="mini", slice=":2", include_medium=True)) == \
        [i for i in shuffled if i.startswith("mini")][:2]


def test_sizes_table_sizes_rows_that_carry_none(tmp_path: Path) -> None:
    rows = [{**CLASSIC, "instance_id": f"psf__requests-{n}"} for n in (1, 2)]
    rows.append({**CLASSIC, "instance_id": "django__django-3", "repo": "django/django"})
    rows.append({**CLASSIC, "instance_id": "django__django-4", "repo": "django/django", "size": "small"})
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = load_dataset(path)
    sizes = {"django/django": "medium"}
    taken = lambda **kw: [t.instance_id for t in dataset.select(limit=None, sizes=sizes, **kw)]  # noqa: E731
    assert taken() == ["psf__requests-1", "psf__requests-2", "django__django-4"]  # a row's own size wins
    assert taken(include_medium=True) == [r["instance_id"] for r in rows]


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--filter", "te(xt", "not a regular expression"),
    ("--slice", "5", "expected START:STOP"),
    ("--stall-timeout", "0", "greater than 0"),
    ("--stall-timeout", "ten", "valid number"),
])
async def test_bad_selection_flags_are_one_line_exit_2(tmp_path: Path, flag: str, value: str, says: str) -> None:
    res = await batch("--llm-config", "llm", "--api-key", "sk-test-key-000000000000", "--output-dir", tmp_path / "o",
                      flag, value, cwd=tmp_path)
    assert res.code == 2, res.out + res.err
    (line,) = res.err.strip().splitlines()
    assert flag in line and says in line


async def test_dataset_flag_with_no_such_file_is_one_line(tmp_path: Path) -> None:
    res = await batch("--llm-config", "llm", "--api-key", "sk-test-key-000000000000", "--output-dir", tmp_path / "o",
                      "--dataset", "lite.jsonl", cwd=tmp_path)
    assert res.code == 2 and "Traceback" not in res.err
    assert "lite.jsonl" in res.out + res.err and "no such file" in res.out + res.err


def test_stall_timeout_flag_reaches_single_and_config_runs(tmp_path: Path) -> None:
    """`--stall-timeout` sets the watchdog of the single run the flags make, and of every
    [[runs]] entry (over its own `stall_timeout`), as --check shows."""
    config = tmp_path / "config.toml"
    config.write_text('[llm]\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\n\n'
                      '[[runs]]\nname = "a"\noutput_dir = "oa"\nstall_timeout = 90\n\n'
                      '[[runs]]\nname = "b"\noutput_dir = "ob"\n')

    def check(*args: str) -> list[str]:
        res = subprocess.run([sys.executable, "-m", "awm_tui", "--check", "--config", str(config), *args],
                             capture_output=True, text=True, cwd=tmp_path, env=batch_env())
        assert res.returncode == 0, res.stderr
        return [line.split(", stall ")[1].split(" s ")[0] for line in res.stdout.splitlines() if "  timeouts" in line]

    assert check() == ["90", "600"]
    assert check("--stall-timeout", "45") == ["45", "45"]
    assert check("--stall-timeout", "2.5", "--output-dir", str(tmp_path / "single")) == ["2.5"]
