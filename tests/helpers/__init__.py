"""What the tests share, by concern: `data` (tiny generated files and checkpoints), `training`
(tiny methods, run flags, resume checks), `servers` (HTTP, Hub and app servers on 127.0.0.1),
`browser` (Chromium), `reference` (the canonical code's stand-ins, benchmark scripts) and `slurm`
(a real one-node Slurm, imported as helpers.slurm). Test files import from here and never from
each other."""
from .browser import chromium_path, open_browser, open_train_tab, screenshot_dir  # noqa: F401
from .data import (  # noqa: F401
    BUNDLED,
    CHECKPOINT_FIXTURES,
    ROOT,
    SHARED,
    SMALL_MODELS,
    TINY_CYC,
    TINY_FORMATS,
    TINY_P2P,
    make_checkpoint,
    make_format_pairs,
    make_format_unpaired,
    make_paired,
    make_unpaired,
    make_video,
    nifti_header_only,
    nifti_pairs,
    npy_header_only,
    png_header_only,
    random_image,
    set_rotation,
    smooth,
    tiff_planes_header,
)
from .reference import CanonicalResnetBlock, canonical_resnet, load_benchmark, randomise  # noqa: F401
from .servers import HubServer, Server, cancel_when_busy, cpu_rate, free_port, launch, wait_for  # noqa: F401
from .training import (  # noqa: F401
    TINY_CUT,
    TINY_CYCLEGAN,
    TINY_PIX2PIX,
    TINY_UNSB,
    assert_resume_is_bitwise,
    compare_states,
    tiny_method,
)
