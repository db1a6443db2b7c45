"""Bad inputs through the real CLI: exit 2 and one line naming the input and the fix.

Issue 12 items 4 and 5: each of these used to end in "internal error: …" (exit 1),
or was silently accepted.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from awm_tui.config.models import AppConfig, EvalConfig, LLMProfile, RunConfig
from awm_tui.config.plan import resolve_run
from awm_tui.engine.fleet import Fleet, RunRefused
from tests.test_batch import batch_env

pytestmark = pytest.mark.timeout(120)

KEY = "sk-test-0123456789abcdef0123"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(path: Path, *, extra: str = "", runs: str = "") -> Path:
    # base_url: nothing listens there; every case must stop before a model is asked.
    path.write_text(f'[llm]\nmodel = "awm-sim"\nbase_url = "http://127.0.0.1:{_free_port()}/v1"\n'
                    f'api_key = "{KEY}"\n{extra}\n{runs}')
    path.chmod(0o600)
    return path


def _run_table(tmp: Path, dataset: Path) -> str:
    return f'[[runs]]\nname = "r"\noutput_dir = "{tmp / "out"}"\ndataset = "{dataset}"\nsandbox = "local"\n'


def _case(name: str, tmp: Path) -> tuple[list[str], str]:
    """(arguments after --batch/--check, what the one line must name)."""
    keys = tmp / "keys.txt"
    keys.write_text(f"{KEY}\n")
    a_file = tmp / "a-file"
    a_file.write_text("not a directory\n")
    base = ["--config", str(_config(tmp / "base.toml"))]
    if name == "keys file not UTF-8":
        keys.write_bytes(b"sk-test-\xff\xfe0123456789\n")
        return base + ["--parallel", "1", "--keys-file", str(keys), "--output-root", str(tmp / "o")], "--keys-file"
    if name == "dataset not UTF-8":
        data = tmp / "bad.jsonl"
        data.write_bytes(b"\xff\xfe{}\n")
        return ["--config", str(_config(tmp / "c.toml", runs=_run_table(tmp, data)))], "not UTF-8"
    if name == "dataset with no tasks":
        data = tmp / "empty.jsonl"
        data.write_text("\n")
        return ["--config", str(_config(tmp / "c.toml", runs=_run_table(tmp, data)))], "no tasks"
    if name == "--output-dir is a file":
        return base + ["--output-dir", str(a_file)], "--output-dir"
    if name == "--output-root is a file":
        return base + ["--parallel", "1", "--keys-file", str(keys), "--output-root", str(a_file)], "--output-root"
    if name == "output dir that cannot exist":
        return base + ["--output-dir", "/proc/x/out"], "/proc"
    if name == "trajectories is a file":
        (tmp / "out").mkdir()
        (tmp / "out" / "trajectories").write_text("mine\n")
        return base + ["--output-dir", str(tmp / "out")], "trajectories"
    if name == "docker memory does not parse":
        return ["--config", str(_config(tmp / "c.toml", extra='[docker]\nmemory = "2 gigs"\n')),
                "--output-dir", str(tmp / "out")], "docker.memory"
    if name == "one key twice for --parallel 2":
        keys.write_text(f"{KEY}\n{KEY}\n")
        return base + ["--parallel", "2", "--keys-file", str(keys), "--output-root", str(tmp / "o")], "distinct"
    raise AssertionError(name)


CASES = ["keys file not UTF-8", "dataset not UTF-8", "dataset with no tasks", "--output-dir is a file",
         "--output-root is a file", "output dir that cannot exist", "trajectories is a file",
         "docker memory does not parse", "one key twice for --parallel 2"]


def awm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "awm_tui", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=90, env=batch_env())


def assert_one_line(proc: subprocess.CompletedProcess[str], names: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "internal error" not in lines[0] and "Traceback" not in proc.stderr
    assert names in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("mode", ["--batch", "--check"])
@pytest.mark.parametrize("name", CASES)
def test_a_bad_input_is_one_line_and_exit_2(name: str, mode: str, tmp_path: Path) -> None:
    args, names = _case(name, tmp_path)
    proc = awm(mode, *args, cwd=tmp_path)
    assert_one_line(proc, names)
    assert "Unclosed" not in proc.stderr + proc.stdout
    if "file" in name:  # the user's file in the way is left as it was
        assert not (tmp_path / "a-file").is_dir()


def test_check_refuses_an_unknown_theme(tmp_path: Path) -> None:
    config = _config(tmp_path / "c.toml", extra='[ui]\ntheme = "no-such-theme"\n')
    line = assert_one_line(awm("--check", "--config", str(config), cwd=tmp_path), "ui.theme")
    assert "awm-dark" in line  # the fix lists the themes there are


def test_sim_llm_refuses_a_port_out_of_range(tmp_path: Path) -> None:
    proc = awm("sim-llm", "--port", "99999", cwd=tmp_path)
    assert proc.returncode == 2 and "0-65535" in proc.stderr and "Traceback" not in proc.stderr


def test_eval_server_fails_at_start_when_its_docker_url_answers_nothing(tmp_path: Path) -> None:
    proc = awm("eval-server", "--port", "0", "--docker-url", f"unix://{tmp_path}/no-daemon.sock", cwd=tmp_path)
    assert_one_line(proc, "no-daemon.sock")
    assert "listening" not in proc.stdout


def test_a_preds_json_that_is_not_predictions_is_refused_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mine = '{"notes": "the user\'s own file"}\n'
    (out / "preds.json").write_text(mine)
    config = _config(tmp_path / "c.toml", runs=_run_table(tmp_path, Path("sample")).replace(
        'dataset = "sample"', 'dataset = "sample"\nskip_eval = true'))
    line = assert_one_line(awm("--batch", "--config", str(config), cwd=tmp_path), "preds.json")
    assert "move it aside" in line
    assert (out / "preds.json").read_text() == mine


def test_a_server_evaluation_mode_with_the_server_down_stops_before_the_first_task(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{_free_port()}"
    config = _config(tmp_path / "c.toml", extra=f'[eval]\nmode = "server"\nserver_url = "{down}"\n',
                     runs=_run_table(tmp_path, Path("sample")))
    proc = awm("--batch", "--json", "--config", str(config), cwd=tmp_path)
    assert_one_line(proc, down)
    kinds = [json.loads(line)["kind"] for line in proc.stdout.splitlines() if line.startswith("{")]
    assert "task_started" not in kinds


async def test_the_tui_gets_a_refused_run_when_the_evaluation_server_is_down(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{_free_port()}"
    run = RunConfig(name="r", output_dir=tmp_path / "out", sandbox="local", limit=1)
    config = AppConfig(llm={"llm": LLMProfile(model="awm-sim", base_url=down + "/v1")}, runs=[run],
                       eval=EvalConfig(mode="server", server_url=down))
    async with Fleet(config, lambda event: None) as fleet:
        with pytest.raises(RunRefused, match="does not answer"):
            await fleet.start(resolve_run(config, run, api_key=SecretStr(KEY)))
        assert fleet.active == []


async def test_the_tui_gets_a_refused_run_for_an_output_dir_it_cannot_make(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "trajectories").write_text("the user's file\n")
    run = RunConfig(name="r", output_dir=tmp_path / "out", sandbox="local", limit=1, skip_eval=True)
    config = AppConfig(llm={"llm": LLMProfile(model="awm-sim", base_url=f"http://127.0.0.1:{_free_port()}/v1")},
                       runs=[run])
    async with Fleet(config, lambda event: None) as fleet:
        with pytest.raises(RunRefused, match="trajectories is a file"):
            await fleet.start(resolve_run(config, run, api_key=SecretStr(KEY)))
    assert (tmp_path / "out" / "trajectories").read_text() == "the user's file\n"
