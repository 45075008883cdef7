"""A quick reachability probe, so downloads fail in seconds when offline instead of hanging."""
import socket
from urllib.parse import urlparse


def online(url: str, timeout: float = 3.0) -> bool:
    """True when the URL's host accepts a TCP connection on its port within ``timeout`` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False
