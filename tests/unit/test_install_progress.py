"""`tgtrunk asterisk install`: debootstrap's hundreds of lines become one progress line (phase, count of total)."""

from __future__ import annotations

import io

from app.pbx.install import follow_debootstrap

REQUIRED = [f"req{n}" for n in range(50)]
BASE = [f"base{n}" for n in range(70)]
# debootstrap's own output, in its order (package names made up; libc-bin is configured twice, as it is)
OUTPUT = [
    "I: Target architecture can be executed\n", "I: Retrieving InRelease \n", "I: Checking Release signature\n",
    "I: Retrieving Packages \n", "I: Validating Packages \n", "I: Resolving dependencies of required packages...\n",
    *[line for p in REQUIRED + BASE for line in (f"I: Retrieving {p} 1.0-1\n", f"I: Validating {p} 1.0-1\n")],
    "I: Chosen extractor for .deb packages: dpkg-deb\n", *[f"I: Extracting {p}...\n" for p in REQUIRED],
    "I: Installing core packages...\n", "I: Unpacking required packages...\n",
    *[f"I: Unpacking {p}...\n" for p in REQUIRED], "I: Configuring required packages...\n",
    *[f"I: Configuring {p}...\n" for p in REQUIRED], "I: Configuring libc-bin...\n",
    "I: Unpacking the base system...\n", *[f"I: Unpacking {p}...\n" for p in BASE],
    "I: Configuring the base system...\n", *[f"I: Configuring {p}...\n" for p in BASE],
    "I: Base system installed successfully.\n",
]


def test_one_line_per_phase_with_the_count_of_the_total():
    out = io.StringIO()
    tail = follow_debootstrap(OUTPUT, out, clock=lambda: 0.0)
    assert out.getvalue().splitlines() == [
        "  [   0s] 1/3 downloading packages: 120",
        "  [   0s] 2/3 extracting the essential packages: 50 (of 120)",
        "  [   0s] 3/3 installing packages: 120/120 (unpacked 120)",
    ]
    assert tail[-1] == "I: Base system installed successfully."


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_it_is_one_line_rewritten_in_place():
    out = Terminal()
    follow_debootstrap(OUTPUT, out, clock=lambda: 0.0)
    assert out.getvalue().count("\n") == 1 and out.getvalue().count("\r") > 300
    assert out.getvalue().rstrip().endswith("3/3 installing packages: 120/120 (unpacked 120)")
