"""Loopback port helpers: pick a free port, check one, wait for one to accept connections."""

import socket
import time

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True if we could bind host:port now (so a child process we start can)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Poll until host:port accepts a connection; TimeoutError naming the address after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not port_accepts(host, port, timeout=min(0.5, max(timeout, 0.01))):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepted connections on {host}:{port} within {timeout:g}s")
        time.sleep(0.05)  # poll interval inside the deadline


def can_listen_on(port: int) -> bool:
    """True if a server could listen on 127.0.0.1:port now, as the JVM does (with SO_REUSEADDR)."""
    # Without SO_REUSEADDR (ports.port_is_free), the TIME_WAIT connections a stopped broker leaves behind make
    # its own port look taken for a minute, though the JVM can bind it again at once.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True
