"""The Debian font packages are listed once, beside the faces (distill/fonts.py FACES); the install
script and the training image ask for them instead of spelling them again."""

import re
import subprocess
import sys

from distill.fonts import FACES, debian_packages
from tests.conftest import ROOT

READERS = (ROOT / "scripts" / "system-deps.sh", ROOT / "docker" / "Dockerfile.training")


def test_the_command_prints_every_faces_debian_package_once():
    out = subprocess.run(
        [sys.executable, "-m", "distill", "font-packages"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == debian_packages() == sorted(set(out))
    assert set(out) == {package for package, *_ in FACES} - {"npm"}
    assert "fonts-noto-cjk" in out and all(re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", p) for p in out)


def test_the_install_script_and_the_training_image_read_the_list_instead_of_repeating_it():
    for path in READERS:
        text = path.read_text()
        assert "distill font-packages" in text, path
        assert not re.search(r"\bfonts-[a-z0-9]", text), f"{path} names a font package itself"
