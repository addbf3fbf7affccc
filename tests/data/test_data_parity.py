"""Our data pipelines give the canonical code's tensors exactly, aligned (A|B) and unaligned
(trainA, trainB), in every --preprocess mode both take, with and without flips, given the same
crop offsets, flips and B images (benchmarks/data_parity.py)."""
import pytest
from helpers import ROOT, load_benchmark, make_paired, make_unpaired

REFERENCE = ROOT.parent / "shared" / "reference"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (REFERENCE / "bench_reference.py").is_file(),
                                 reason=f"the reference code is not at {REFERENCE}")]
MODES = [("resize_and_crop", (40, 32)), ("crop", (48, 32)), ("scale_width", (32, 32)),
         ("scale_width_and_crop", (40, 32))]


@pytest.fixture(scope="module")
def data_parity():
    return load_benchmark("data_parity")


@pytest.mark.parametrize("mode,sizes", MODES)
def test_the_paired_pipeline_gives_the_reference_tensors(data_parity, tmp_path, mode, sizes):
    data = make_paired(tmp_path / "pairs", n_train=6, n_val=0, size=48)
    for flip in (False, True):
        result = data_parity.compare(data, mode, 6, flip, sizes)
        assert result["largest_levels"] == 0, result
    assert result["flipped"] > 0  # the flips were exercised


@pytest.mark.parametrize("mode,sizes", MODES)
def test_the_unpaired_pipeline_gives_the_reference_tensors(data_parity, tmp_path, mode, sizes):
    data = make_unpaired(tmp_path / "unpaired", n_a=4, n_b=6, size=48)
    for flip in (False, True):
        result = data_parity.compare_unaligned(data, mode, 6, flip, sizes)
        assert result["largest_levels"] == 0, result
    assert result["flipped"] > 0


def test_the_comparison_sees_a_crop_one_pixel_off(data_parity, tmp_path, monkeypatch):
    data = make_unpaired(tmp_path / "unpaired", n_a=4, n_b=6, size=48)
    base = __import__("data.base_dataset").base_dataset  # the reference's, as compare_unaligned loaded it
    data_parity.compare_unaligned(data, "crop", 1, False, (48, 32))
    get_transform = base.get_transform
    monkeypatch.setattr(base, "get_transform", lambda opt, params: get_transform(
        opt, {**params, "crop_pos": (params["crop_pos"][0] + 1, params["crop_pos"][1])}))
    assert data_parity.compare_unaligned(data, "crop", 6, False, (48, 32))["largest_levels"] > 1
