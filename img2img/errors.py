"""User-facing errors: the CLI prints them as one line, without a traceback."""


class Img2ImgError(Exception):
    """A problem with the user's input (data, checkpoint, arguments) rather than a bug."""


class ImageReadError(Img2ImgError):
    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
