"""Network guards, so downloads fail in seconds when offline and never hang on a stalled link."""
import contextlib
import socket
from urllib.parse import urlparse

#: Longest wait for any single network read during a download (a stalled proxy fails after this).
STALL_SECONDS = 30.0


def online(url: str, timeout: float = 3.0) -> bool:
    """True when the URL's host accepts a TCP connection on its port within ``timeout`` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def stall_timeout(seconds: float = STALL_SECONDS):
    """Give every socket opened inside (urllib's, as medmnist and torchvision use it without a
    timeout) a limit on each connect and read, so a link that accepts and then stalls raises
    instead of hanging the notebook."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
