"""TLS for Docker hosts, and the URL a host is shown by. Light on purpose: the batch
preflight uses it before the event loop starts (no aiodocker, no aiohttp)."""

from __future__ import annotations

import socket
import ssl

from yarl import URL

from awm_tui.config.models import DockerConfig, DockerHostConfig


def one_line(exc: object) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def display_url(url: str) -> str:
    """The URL without user or password: what events, logs and the evaluation body show."""
    url = f"unix://{url}" if url.startswith("/") else url
    if url.startswith("unix://"):
        return url
    parsed = URL(url)
    return str(parsed.with_user(None)) if parsed.user or parsed.password else url


def tls_context(config: DockerHostConfig) -> ssl.SSLContext | None:
    """The client's TLS context for a tcp:// host with TLS material (reads files: blocking)."""
    if not config.tls:
        return None
    if config.tls_verify:
        context = ssl.create_default_context(cafile=str(config.ca))
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert is not None and config.key is not None:
        context.load_cert_chain(str(config.cert), str(config.key))
    return context


def tls_preflight(config: DockerConfig, timeout: float = 5.0) -> tuple[str, str] | None:
    """(field, problem) for the first TLS host whose files cannot be read or whose certificate
    does not verify, else None. Blocking (a TLS handshake per TLS host): for preflight,
    before the event loop starts. A host that does not answer is not a problem here: the
    pool starts it down and brings it up when it answers."""
    for i, entry in enumerate(config.hosts):
        if not entry.tls:
            continue
        where = f"docker.hosts[{i}]"
        try:
            context = tls_context(entry)
        except (OSError, ssl.SSLError) as exc:
            return where, (f"{display_url(entry.url)}: cannot read its TLS files ({one_line(exc)}); "
                           "fix ca, cert and key")
        assert context is not None
        parsed = URL(entry.url)
        try:
            with socket.create_connection((parsed.host or "", parsed.port or 2376), timeout=timeout) as raw:
                with context.wrap_socket(raw, server_hostname=parsed.host):
                    pass
        except ssl.SSLCertVerificationError as exc:
            return f"{where}.ca", (f"{display_url(entry.url)}: the daemon's TLS certificate does not verify "
                                   f"against {entry.ca} ({exc.verify_message}); use the CA that signed it")
        except (OSError, ssl.SSLError):
            continue
    return None
