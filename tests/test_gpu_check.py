"""benchmarks/gpu_check.py must not rot between GPU sessions: its dry run (tiny sizes, CPU) runs
every stage here."""
import pytest
from helpers import load_benchmark


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_stage_and_writes_one_table(tmp_path):
    gpu_check = load_benchmark("gpu_check")
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "gpu_check.md").read_text()
    for stage in ("tests", "ladder", "canonical", "profile", "real data", "cpu translate", "torchrun", "deterministic"):
        assert f"| {stage} |" in table, stage
    assert "FAILED" not in table and "past the deadline" not in table
    assert all(f"| ladder | {model} b1 default |" in table for model in ("pix2pix", "cyclegan", "cut", "unsb"))
    assert "| deterministic | --deterministic: two runs | 0 of " in table
    assert "| deterministic | --deterministic: straight vs resumed | 0 of " in table
    assert len(list(tmp_path.iterdir())) <= 8
