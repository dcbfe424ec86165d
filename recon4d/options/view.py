"""Options of `recon4d view`: where the viewer's web server listens and how much it sends."""

from __future__ import annotations

from dataclasses import dataclass

from recon4d.options.fields import option, require_at_least, require_port


@dataclass(frozen=True)
class ViewOptions:
    """Viewer: the web server's address and the point budget."""

    host: str = option("127.0.0.1", "address to listen on (0.0.0.0 = every network interface)")
    port: int = option(8080, "port to listen on (the next free one when taken; 0 = any free "
                       "port)")
    max_points: int = option(1_000_000, "at most this many points per cloud (the static cloud "
                             "and each frame's moving cloud), evenly spaced", metavar="N")

    def __post_init__(self) -> None:
        require_port(self)
        require_at_least(self, 1, "max_points")
