"""Our paired data pipeline gives the canonical code's tensors exactly, in every --preprocess mode
both take, with and without flips, given the same crop offsets and flips
(benchmarks/data_parity.py)."""
import pytest
from helpers import ROOT, load_benchmark, make_paired

REFERENCE = ROOT.parent / "shared" / "reference"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (REFERENCE / "bench_reference.py").is_file(),
                                 reason=f"the reference code is not at {REFERENCE}")]


@pytest.fixture(scope="module")
def data_parity():
    return load_benchmark("data_parity")


@pytest.mark.parametrize("mode,sizes", [("resize_and_crop", (40, 32)), ("crop", (48, 32)), ("scale_width", (32, 32)),
                                        ("scale_width_and_crop", (40, 32))])
def test_the_paired_pipeline_gives_the_reference_tensors(data_parity, tmp_path, mode, sizes):
    data = make_paired(tmp_path / "pairs", n_train=6, n_val=0, size=48)
    for flip in (False, True):
        result = data_parity.compare(data, mode, 6, flip, sizes)
        assert result["largest_levels"] == 0, result
    assert result["flipped"] > 0  # the flips were exercised
