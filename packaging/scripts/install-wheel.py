#!/usr/bin/python3
"""Install a wheel into a package build root with an explicit scheme.

`python3 -m installer --prefix /usr` follows the build host's default
sysconfig scheme (on Debian: /usr/local/lib/python3.X/dist-packages), which
is wrong for an RPM. Usage: install-wheel.py WHEEL DESTDIR SITELIB
"""

import sys

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile


def main() -> None:
    wheel, destdir, sitelib = sys.argv[1:4]
    scheme = {
        "purelib": sitelib,
        "platlib": sitelib,
        "scripts": "/usr/bin",
        "data": "/usr",
        "headers": "/usr/include",
    }
    destination = SchemeDictionaryDestination(
        {key: destdir + path for key, path in scheme.items()},
        interpreter="/usr/bin/python3",
        script_kind="posix",
    )
    with WheelFile.open(wheel) as source:
        install(source, destination, {"INSTALLER": b"rpm"})


if __name__ == "__main__":
    main()
