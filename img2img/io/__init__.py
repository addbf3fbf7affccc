"""File formats and pixels: reading (`readers`) and writing (`writers`) every supported format,
the pixel formats a model trains on (`pixel_format`), and Lab colour maths (`lab`). The floor
everything else stands on: it imports nothing of img2img but `errors` and `files`."""
