"""Typed configuration: what `config.toml` may say, with every field documented."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from yarl import URL

from awm_tui.config.errors import ConfigError

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
OPENAI_BASE_URL = "https://api.openai.com/v1"

# litellm-style "provider/model" prefixes and the base URL each implies.
PROVIDER_BASE_URLS = {
    "openrouter": OPENROUTER_BASE_URL,
    "openai": OPENAI_BASE_URL,
}


def profile_name(name: str) -> str:
    """The full name of the profile a run names: `NAME` and `llm.NAME` are one; `llm` is the defaults."""
    name = name.strip()
    return name if name == "llm" or name.startswith("llm.") else f"llm.{name}"


def parse_usd(text: str) -> float:
    """Dollars as a user types them (`5`, `0.50`, `$1.50`): the CLI's `--budget` and the pane's
    budget field. ValueError (one line: what it takes) for anything not above 0 or not finite."""
    try:
        number = float(text.strip().removeprefix("$"))
    except ValueError:
        raise ValueError(f"expected dollars such as 5 or 0.50, got {text!r}") from None
    if not number > 0 or number == float("inf"):
        raise ValueError(f"must be more than 0 dollars, got {text!r}")
    return number


def profile_for(profiles: Mapping[str, LLMProfile], name: str, *, source: str, where: str) -> LLMProfile:
    """The profile `name` (either spelling) names; ConfigError naming `where` and the choices otherwise."""
    full = profile_name(name)
    if full not in profiles:
        choices = ", ".join(sorted(profiles)) or "none defined"
        raise ConfigError(source, where, f"no profile [{full}]", f"define [{full}] or use one of: {choices}")
    return profiles[full]


def check_url(value: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    try:
        url = URL(value)
    except (ValueError, TypeError):
        url = None
    if url is None or url.scheme not in schemes or not url.host:
        raise ValueError(f"not a valid URL ({'/'.join(schemes)}://host[:port]/…): {value!r}")
    return value


class LLMProfile(BaseModel):
    """One `[llm]` or `[llm.NAME]` table, field-compatible with OpenHands' config.toml."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = "openrouter/moonshotai/kimi-k2"
    """Model name; a litellm-style `openrouter/…` prefix implies the OpenRouter URL."""
    api_key: SecretStr | None = None
    """Literal key, `env:VAR` or `file:path`, resolved when the config is loaded."""
    base_url: str | None = None
    """OpenAI-compatible endpoint; derived from the model's provider prefix when unset."""
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    """Sampling temperature."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    max_output_tokens: int | None = Field(None, ge=0)
    """Cap on tokens per reply; the provider's default when unset (0 = unset, as in OpenHands)."""
    max_input_tokens: int | None = Field(None, ge=0)
    """The model's context window for prompts, in tokens (0 = unset, as in OpenHands). When
    set, the oldest command outputs are elided before a prompt would exceed it."""
    system_prompt_mode: Literal["system", "user"] = "system"
    """`user` sends the system text at the top of the first user message, for servers
    whose chat template drops system messages (llama.cpp's gemma format does)."""
    stream: bool = False
    """Ask for the reply streamed (server-sent events). A call abandoned at its timeout (or
    cancelled) then stops servers that notice a closed connection only between chunks, as
    llama.cpp's does; without it they generate on to max_tokens for nobody."""
    timeout: float = Field(600.0, gt=0)
    """Seconds one chat call may take before it is abandoned and retried."""
    num_retries: int = Field(5, ge=0)
    """Retries after the first attempt for 5xx, timeouts and dropped connections (a 429 waits without spending one)."""
    retry_min_wait: float = Field(4.0, ge=0)
    """Shortest backoff between retries, seconds."""
    retry_max_wait: float = Field(60.0, ge=0)
    """Longest backoff between retries, seconds (a longer Retry-After is honoured)."""
    retry_multiplier: float = Field(2.0, gt=0)
    """Exponential backoff base multiplier."""
    input_cost_per_token: float = Field(0.0, ge=0)
    """USD per prompt token, for cost accounting when the provider reports none."""
    output_cost_per_token: float = Field(0.0, ge=0)
    """USD per completion token."""
    cache_read_input_token_cost: float | None = Field(None, ge=0)
    """USD per prompt token read from the provider's prompt cache (litellm's name; OpenHands
    has none); cached tokens are priced as input tokens when unset."""
    cache_creation_input_token_cost: float | None = Field(None, ge=0)
    """USD per prompt token written to the prompt cache (litellm's name); input price when unset."""
    caching_prompt: bool = True
    """OpenHands' field: mark cache breakpoints (`cache_control`) on the system message and the
    latest user messages, for providers that take them (Anthropic models via OpenRouter)."""
    key_budget: float | None = Field(None, gt=0)
    """USD each API key used with this profile may spend in this process, across every run on
    that key; the call that could cross it is not made. The smallest wins when profiles share a key."""
    requests_per_minute: float | None = Field(None, gt=0)
    """Calls started per minute on each API key used with this profile (the provider's rate
    limit: 20 for OpenRouter's free models, say). Calls on the key, of every run and worker,
    are spaced to keep under it instead of meeting 429s. The smallest wins when profiles share a key."""
    label: str | None = None
    """Shown next to the profile name in the UI (e.g. "simulated model")."""
    key_endpoint: bool | None = None
    """Whether the endpoint answers OpenRouter's `GET {base_url}/key` (credits left): unset asks
    only OpenRouter's own URL; true asks any base URL (a 404 then means "not offered")."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @field_validator("max_output_tokens", "max_input_tokens")
    @classmethod
    def _zero_is_unset(cls, value: int | None) -> int | None:
        return value or None

    @property
    def provider(self) -> str | None:
        head, sep, _ = self.model.partition("/")
        return head if sep and head in PROVIDER_BASE_URLS else None

    @property
    def effective_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        return PROVIDER_BASE_URLS.get(self.provider or "", OPENAI_BASE_URL)

    @property
    def chat_url(self) -> str:
        """Where this profile's chat completions are POSTed."""
        return f"{self.effective_base_url}/chat/completions"

    @property
    def api_model(self) -> str:
        """The model name sent to the endpoint (provider prefix stripped when implied)."""
        return self.model.split("/", 1)[1] if self.provider else self.model


NAME_MAX = 64
TWIN_SUFFIX = "-nomem"
"""A no-memory twin's name and output directory are its run's with this appended (`config.twins`)."""
TWIN_NAME_MAX = NAME_MAX - len(TWIN_SUFFIX)


class RunConfig(BaseModel):
    """One `[[runs]]` entry: one AWM loop, one pane."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = Field(min_length=1, max_length=NAME_MAX, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Unique run name; letters, digits, `_`, `-`, `.`."""
    llm: str = "llm"
    """LLM profile: `llm.NAME`, `NAME`, or `llm` for the defaults (held as the full name)."""
    api_key: SecretStr | None = None
    """Overrides the profile's key for this run only (literal, `env:VAR`, `file:path`)."""
    output_dir: Path
    """Where memory.json, buffer.json, checkpoint.json and the rest are written."""
    limit: int = Field(5, gt=0)
    """Number of task instances to take from the dataset."""
    dataset: str = "sample"
    """`sample` (bundled) or a path to a SWE-bench `.json`/`.jsonl`/`.parquet` file."""
    filter: str | None = None
    """Regular expression an instance_id must match (`re.match`), as mini-swe-agent's `--filter`."""
    slice: str | None = None
    """`START:STOP` of the (shuffled, filtered) rows, Python slice semantics, e.g. `0:50`."""
    shuffle: int | None = None
    """Seed: shuffle the rows (sorted by instance_id first) before filtering and slicing."""
    split: str = "test"
    """Dataset split name, passed to the evaluation server."""
    skip_eval: bool = False
    """Do not evaluate patches (no rewards, so no induction)."""
    include_medium: bool = False
    """Also take medium-sized tasks, not only small ones."""
    sandbox: Literal["auto", "docker", "local"] = "auto"
    """Where commands run: Docker, a local temp copy (not isolated), or auto."""
    max_steps: int = Field(30, gt=0)
    """Agent steps per task before it ends with StepLimit."""
    max_cost: float = Field(3.0, gt=0)
    """USD per task: a model call that could cross it is not made; the task ends with CostLimit."""
    budget: float | None = Field(None, gt=0)
    """USD for the whole run, checkpointed tasks of earlier sessions included: the call that could
    cross it is not made and the run stops with "budget reached" (resume with a higher budget)."""
    task_timeout: float = Field(1800.0, gt=0)
    """Wall-clock seconds per task before it ends with TimeLimit."""
    command_timeout: float = Field(120.0, gt=0)
    """Seconds one shell command may run (enforced inside the sandbox)."""
    stall_timeout: float = Field(600.0, gt=0)
    """Seconds a task may go without a model reply or command output before the watchdog
    cancels it as an error (`stalled`: not checkpointed, so a rerun retries it)."""
    max_format_errors: int = Field(3, gt=0)
    """Malformed replies in a row before a task ends with FormatError."""
    induce_every: int = Field(2, gt=0)
    """Induce workflows after every N new successful tasks."""
    induction: Literal["llm", "rule"] = "llm"
    """`llm` asks the model to induce workflows; `rule` derives them offline."""
    memory_budget_chars: int = Field(4000, gt=0)
    """Most characters of workflows injected into one prompt."""
    memory: bool = True
    """Workflows in prompts and induction; `false` runs the same loop without memory (a twin's)."""
    twin: bool = False
    """Also start a no-memory twin: `NAME-nomem` in `<output_dir>-nomem`, same tasks, memory off."""
    twin_api_key: SecretStr | None = None
    """The twin's own key (literal, `env:VAR`, `file:path`); without it the twin takes the run's."""
    workers: int = Field(1, ge=1)
    """Tasks of this run in flight at once, started in dataset order (1: one after another).
    Each task sees the memory version current when it starts; inductions run one at a time."""

    @field_validator("llm")
    @classmethod
    def _full_profile_name(cls, value: str) -> str:
        return profile_name(value)

    @field_validator("filter")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression ({exc})") from None
        return value

    @field_validator("slice")
    @classmethod
    def _slice(cls, value: str | None) -> str | None:
        if value is not None:
            parse_slice(value)
        return value

    @field_validator("twin")
    @classmethod
    def _twin(cls, value: bool, info: ValidationInfo) -> bool:
        name, memory = info.data.get("name", ""), info.data.get("memory", True)
        if value and not memory:
            raise ValueError("a twin compares a run with memory to one without: drop memory = false here")
        if value and len(name) > TWIN_NAME_MAX:
            raise ValueError(f"the run's name is too long to have a twin (at most {TWIN_NAME_MAX} "
                             f"characters, for NAME{TWIN_SUFFIX})")
        return value


def parse_slice(spec: str) -> slice:
    """`START:STOP` (either may be empty, negatives allowed) -> slice; ValueError otherwise."""
    start, sep, stop = spec.partition(":")
    try:
        if not sep or ":" in stop:
            raise ValueError
        return slice(int(start) if start.strip() else None, int(stop) if stop.strip() else None)
    except ValueError:
        raise ValueError(f"expected START:STOP such as 0:50 or :10, got {spec!r}") from None


class EvalConfig(BaseModel):
    """`[eval]`: where patches are evaluated."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["server", "local"] = "local"
    """`server` POSTs to `server_url`; `local` runs the same evaluation in-process."""
    server_url: str = "http://127.0.0.1:9528"
    """Evaluation server (`awm-tui eval-server`)."""
    timeout: float = Field(900.0, gt=0)
    """Seconds one evaluation may take."""

    @field_validator("server_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*$", re.IGNORECASE)


def parse_memory(value: str | int | None) -> int | None:
    """'2g' / '512m' / bytes -> bytes (Docker's HostConfig.Memory)."""
    if value is None or isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"memory limit {value!r} is not like '2g' or '512m'")
    number, unit = match.groups()
    return int(float(number) * 1024 ** "bkmgt".index(unit.lower() or "b"))


DOCKER_SCHEMES = ("unix://", "tcp://", "http://", "https://")


def check_docker_url(value: str) -> str:
    if not value.startswith(DOCKER_SCHEMES):
        raise ValueError(f"expected unix:///path or tcp://host:port, got {value!r}")
    return value


class DockerHostConfig(BaseModel):
    """One `[[docker.hosts]]` entry: a Docker daemon task containers may be placed on."""

    model_config = ConfigDict(extra="forbid")

    url: str
    """`unix:///path/docker.sock` or `tcp://host:port` (TLS with `tls_verify`)."""
    tls_verify: bool = False
    """Speak TLS and verify the daemon's certificate against `ca`."""
    ca: Path | None = None
    """CA certificate (PEM) that signed the daemon's certificate."""
    cert: Path | None = None
    """Client certificate (PEM) the daemon checks (`--tlsverify` daemons require one)."""
    key: Path | None = None
    """The client certificate's private key (PEM)."""
    max_containers: int | None = Field(None, gt=0)
    """The most task containers placed on this host at once; unlimited when unset."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Free-form tags shown with the host (e.g. region = "eu")."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_docker_url(value)

    @model_validator(mode="after")
    def _tls(self) -> DockerHostConfig:
        if self.tls_verify and self.ca is None:
            raise ValueError("tls_verify needs ca (the CA certificate that signed the daemon's)")
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together: give both or neither")
        if (self.tls_verify or self.cert is not None) and not self.url.startswith(("tcp://", "https://")):
            raise ValueError(f"TLS material is for tcp:// hosts, not {self.url!r}")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_verify or self.cert is not None


class DockerConfig(BaseModel):
    """`[docker]`: the daemon(s) and the containers they make."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    """`unix:///path/docker.sock` or `tcp://host:port`; $DOCKER_HOST or the default socket when unset."""
    image: str = "awm-sandbox:bookworm"
    """Image for tasks that do not name their own."""
    memory: str | None = "2g"
    """Memory limit per container (Docker syntax), or none."""
    cpus: float | None = Field(1.0, gt=0)
    """CPU limit per container, or none."""
    pids_limit: int = Field(512, gt=0)
    """Most processes per container."""
    network: str = "none"
    """Container network; `none` keeps agents off the network."""
    namespace: str = "swebench"
    """Registry namespace of SWE-bench instance images: `{namespace}/sweb.eval.{arch}.{id}:{tag}`."""
    arch: str = "x86_64"
    """Architecture part of SWE-bench image names (`arm64` for images built on ARM)."""
    tag: str = "latest"
    """Tag of SWE-bench instance images."""
    keep_images: Literal["all", "none"] = "all"
    """`none` removes a task's own image (SWE-bench rows) once the task is done: they are GBs each."""
    min_free_space: str = "10g"
    """Refuse to pull an image when the daemon's disk has less free space than this."""
    hosts: list[DockerHostConfig] = Field(default_factory=list)
    """`[[docker.hosts]]`: several daemons to spread containers over; `url` alone when empty."""
    health_interval: float = Field(2.0, gt=0)
    """Seconds between pings of each host (`/_ping`)."""
    health_timeout: float = Field(1.5, gt=0)
    """A ping unanswered this long fails; two failures in a row mark the host down."""

    @field_validator("min_free_space")
    @classmethod
    def _space(cls, value: str) -> str:
        try:
            parse_memory(value)
        except ValueError:
            raise ValueError(f"expected a size such as '10g' or '500m', got {value!r}") from None
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return value if value is None else check_docker_url(value)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        parse_memory(value)  # a limit that does not parse is refused with the config, not per task
        return value

    @property
    def memory_bytes(self) -> int | None:
        return parse_memory(self.memory)


Size = Literal["small", "medium", "large"]


class DatasetConfig(BaseModel):
    """`[dataset]`: how rows are read."""

    model_config = ConfigDict(extra="forbid")

    sizes: dict[str, Size] = Field(default_factory=dict)
    """Repo -> `small`/`medium`/`large` for rows without a `size` (default small); runs take
    small ones, medium too with `include_medium`."""


class HttpConfig(BaseModel):
    """`[http]`: connection pools, timeouts and retries of every HTTP client."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, gt=0)
    """Most open connections per client session (100 for 1–10 runs, 200 for 10–50, 500 beyond)."""
    limit_per_host: int = Field(50, gt=0)
    """Most open connections to one host."""
    total: float | None = Field(3600.0, gt=0)
    """Whole-request timeout, seconds (aiohttp's 300 s default would kill long calls)."""
    connect: float = Field(60.0, gt=0)
    """Timeout to get a connection, seconds."""
    sock_read: float = Field(300.0, gt=0)
    """Longest silence while reading a response, seconds."""
    retry_attempts: int = Field(3, gt=0)
    """Attempts for evaluation requests (connection errors, 5xx)."""
    retry_min_wait: float = Field(4.0, ge=0)
    """Shortest backoff between evaluation retries, seconds."""
    retry_max_wait: float = Field(60.0, ge=0)
    """Longest backoff between evaluation retries, seconds."""

    @model_validator(mode="after")
    def _per_host(self) -> "HttpConfig":
        if self.limit_per_host > self.limit:
            raise ValueError("limit_per_host must not exceed limit")
        return self


class UIConfig(BaseModel):
    """`[ui]`: how the control center looks."""

    model_config = ConfigDict(extra="forbid")

    theme: str = "awm-dark"
    """Theme name (awm-dark, awm-light, awm-ansi, or one of Textual's)."""
    log_lines: int = Field(2000, gt=0)
    """Lines of log kept per pane."""


class FleetConfig(BaseModel):
    """`[fleet]`: limits over every run of this process."""

    model_config = ConfigDict(extra="forbid")

    budget: float | None = Field(None, gt=0)
    """USD for all runs together (their checkpointed spend included); `--budget USD` sets it.
    The call that could cross it is not made and every run stops with "budget reached"."""


class AppConfig(BaseModel):
    """The whole resolved configuration."""

    model_config = ConfigDict(extra="forbid")

    llm: dict[str, LLMProfile] = Field(default_factory=dict)
    """Profiles by full name: `llm` (the defaults) and `llm.NAME`."""
    runs: list[RunConfig] = Field(default_factory=list)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    docker: DockerConfig = Field(default_factory=DockerConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    ui: UIConfig = Field(default_factory=UIConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    source: Path | None = None
    """The file this was loaded from, if any."""
