"""Starting a run from the page from a trained model: only the models the server offers (its own
and the user's runs), by key, never a server path; the fine-tune preset sized for the model."""
import json
import shutil

import pytest
from helpers import make_checkpoint, make_paired

from img2img.errors import Img2ImgError
from img2img.methods import new_run_config
from img2img.service.training import (
    BENCH_SECONDS_PER_STEP_256,
    BUNDLED_SECONDS_PER_STEP_256,
    FINE_TUNE_SECONDS,
    TrainingService,
)

TINY = {"model.ndf": "8", "data.num_workers": "0", "train.device": "cpu"}


@pytest.fixture
def service(tmp_path):
    make_paired(tmp_path / "data" / "pairs", n_train=6, n_val=2)
    (tmp_path / "models").mkdir()
    make_checkpoint("pix2pix", tmp_path / "models" / "edges.pt", model=dict(netG="unet_32", ngf=8), size=64)
    make_checkpoint("cyclegan", tmp_path / "models" / "horses.pt")
    return TrainingService(tmp_path / "data", tmp_path / "runs", max_runs=0, models_dir=tmp_path / "models")


def test_a_run_from_the_page_starts_from_an_offered_model_of_its_kind(service, tmp_path):
    assert [key for _, key in service.starting.offered("pix2pix")] == ["model:edges.pt"]
    assert [key for _, key in service.starting.offered("cut")] == ["model:horses.pt"]
    plan = service.plan("pairs", "pix2pix", "custom", 32, 10, "steps", TINY, start_from="model:edges.pt")
    assert plan.cfg.train.init_from == str(tmp_path / "models" / "edges.pt")
    assert (plan.cfg.model.netG, plan.cfg.model.ngf) == ("unet_32", 8)
    assert f"--init-from {tmp_path / 'models' / 'edges.pt'}" in plan.command(service.runs)


@pytest.mark.parametrize("key", ["model:../models/edges.pt", "model:horses.pt", "run:nobody", str(__file__)])
def test_a_model_the_server_does_not_offer_is_refused_however_it_is_named(service, key):
    with pytest.raises(Img2ImgError, match="not one of the trained models this server offers for pix2pix"):
        service.plan("pairs", "pix2pix", "custom", 32, 10, "steps", TINY, start_from=key)
    with pytest.raises(Img2ImgError, match="not one of the trained models this server offers for pix2pix"):
        service.plan("pairs", "pix2pix", "custom", 32, 10, "steps", {**TINY, "train.init_from": key})


def test_the_fine_tune_preset_trains_at_the_models_size_for_about_five_minutes(service):
    plan = service.plan("pairs", "pix2pix", "finetune", settings=TINY, start_from="model:edges.pt")
    # A narrow model at 64 px: the floor of a real step, scaled to its size.
    seconds_per_step = max(BENCH_SECONDS_PER_STEP_256["pix2pix"] * (8 / 64) ** 2,
                           BUNDLED_SECONDS_PER_STEP_256) * (64 / 256) ** 2
    steps = plan.cfg.train.max_steps
    assert plan.cfg.data.size == 64 and abs(steps * seconds_per_step - FINE_TUNE_SECONDS) <= 10 * seconds_per_step
    t = plan.cfg.train
    assert t.sample_every == t.save_every == t.val_every == steps // 6  # what is shown is what is served
    with pytest.raises(Img2ImgError, match="the fine-tune preset needs a trained model to start from"):
        service.plan("pairs", "pix2pix", "finetune", settings=TINY)


def test_a_users_runs_are_offered_to_that_user_alone(service, tmp_path):
    cfg = new_run_config("pix2pix")
    name = service.runs.submit(cfg, "anns", "ann")
    folder = tmp_path / "runs" / name
    (folder / "checkpoints").mkdir()
    shutil.copy(tmp_path / "models" / "edges.pt", folder / "checkpoints" / "latest.pt")
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    assert f"run:{name}" in [key for _, key in service.starting.offered("pix2pix", "ann")]
    assert f"run:{name}" not in [key for _, key in service.starting.offered("pix2pix", "bob")]
    with pytest.raises(Img2ImgError, match="not one of the trained models"):
        service.plan("pairs", "pix2pix", "custom", 32, 10, "steps", TINY, start_from=f"run:{name}", user="bob")
