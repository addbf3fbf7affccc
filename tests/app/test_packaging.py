"""The package ships the app: a wheel of the clone, installed into a fresh virtualenv, serves
`img2img app` from anywhere."""
import shutil
import site
import subprocess
import sys
import venv
import zipfile

import pytest
from helpers import ROOT


@pytest.mark.slow
def test_a_wheel_installed_in_a_fresh_virtualenv_runs_img2img_app_outside_the_clone(tmp_path):
    # Built from a copy of the tracked files, so that nothing is left in the clone (setuptools' build/).
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "runs", "datasets",
                                                                "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path / "wheels"), str(source)], check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "wheels").glob("img2img-*.whl")
    assert "img2img/app/page.py" in zipfile.ZipFile(wheel).namelist()
    venv.create(tmp_path / "venv", with_pip=False)
    target = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True)
    # Its dependencies (torch, gradio, ...) come from this environment, behind the wheel's own copy.
    (target / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    python = tmp_path / "venv" / "bin" / "python"
    where = subprocess.run([python, "-c", "import img2img; print(img2img.__file__)"], capture_output=True,
                           text=True, check=True, cwd=tmp_path).stdout
    assert where.startswith(str(target))
    console = subprocess.run([python, "-c", "import sys; from img2img.cli import main; sys.exit(main())",
                              "app", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert console.returncode == 0 and "--allow-training" in console.stdout and "img2img app" in console.stdout
