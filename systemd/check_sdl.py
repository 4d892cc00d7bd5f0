"""Does this Python's pygame have SDL's KMSDRM video driver?  (systemd/install.sh runs it.)

The pad draws on tty1 through KMSDRM (systemd/README.md).  pygame's wheels on PyPI bring an SDL
built without it (``SDL_VIDEODRIVER=kmsdrm`` then fails with "kmsdrm not available" on any Pi),
so install.sh uses Debian's pygame (python3-pygame), built against Debian's SDL2, which has it.
This prints the pygame it imported (version, folder), the SDL library that pygame loaded and the
video drivers compiled into it, and exits 1 when KMSDRM is not among them.

    python systemd/check_sdl.py          # the drivers; exit 0 with KMSDRM, 1 without
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def loaded_sdl() -> Path:
    """The SDL2 shared library this process has mapped (pygame's own copy or the system's)."""
    import pygame  # noqa: F401  (loads SDL2)

    maps = Path("/proc/self/maps").read_text().split()
    found = sorted({m for m in maps if "/libSDL2-2" in m and ".so" in m})
    if not found:
        raise SystemExit("check_sdl: pygame is loaded but no libSDL2 is mapped")
    return Path(found[0])


def video_drivers(library: Path) -> list[str]:
    """The video drivers compiled into ``library`` (SDL_GetVideoDriver), in SDL's order."""
    sdl = ctypes.CDLL(str(library))
    sdl.SDL_GetNumVideoDrivers.restype = ctypes.c_int
    sdl.SDL_GetVideoDriver.restype = ctypes.c_char_p
    sdl.SDL_GetVideoDriver.argtypes = [ctypes.c_int]
    return [sdl.SDL_GetVideoDriver(i).decode() for i in range(sdl.SDL_GetNumVideoDrivers())]


def main() -> int:
    library = loaded_sdl()
    drivers = video_drivers(library)
    import pygame

    print(f"pygame {pygame.version.ver} from {Path(pygame.__file__).parent}")
    print(f"SDL {library}: video drivers {' '.join(drivers)}")
    if "KMSDRM" not in {d.upper() for d in drivers}:
        print(
            "check_sdl: this pygame's SDL has no KMSDRM driver: the pad cannot draw on a Pi "
            "without a desktop. Use Debian's pygame (apt-get install python3-pygame, in a venv "
            "made with --system-site-packages and no pygame of its own: systemd/install.sh "
            "does)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
