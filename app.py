"""The web app from a clone: `python app.py [flags]` is `img2img app [flags]` (see
img2img/app/main.py, or `python app.py --help`)."""
import sys

from img2img.app.main import main

if __name__ == "__main__":
    sys.exit(main(prog="app.py"))
