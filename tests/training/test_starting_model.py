"""Starting a run from a trained model (`--init-from`): its generator's weights and settings, the
rest fresh or loaded where it fits, refusals in one line, and a record of where the run began."""
import dataclasses

import pytest
import torch
from helpers import make_checkpoint, make_paired, make_unpaired

from img2img.cli import main
from img2img.errors import Img2ImgError
from img2img.persist.checkpoint import checkpoint_config, load_checkpoint
from img2img.training import Trainer, config_for_run
from img2img.training.starting_model import published_reverse

TINY = {"data": {"size": 32, "load_size": 36, "num_workers": 0}, "train": {"device": "cpu", "max_steps": 2}}


def start(source, data, out, **sections):
    overrides = {k: {**v} for k, v in TINY.items()}
    overrides["train"]["init_from"] = str(source)
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return config_for_run(overrides, data=str(data), out=str(out))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k].float()) for k in a)


def test_a_run_started_from_a_model_holds_its_generator_and_takes_its_settings(tmp_path):
    source = make_checkpoint("pix2pix", tmp_path / "trained.pt", seed=3)  # unet_32, ngf 8
    run = start(source, make_paired(tmp_path / "data"), tmp_path / "run")
    assert run.cfg.method == "pix2pix" and (run.cfg.model.netG, run.cfg.model.ngf) == ("unet_32", 8)
    trainer = Trainer.from_config(run.cfg, starting=run.starting)
    weights = load_checkpoint(source)["method"]["networks"]["G"]
    assert same(trainer.method.networks["G"].state_dict(), weights)
    fresh = Trainer.from_config(start(source, tmp_path / "data", tmp_path / "fresh").cfg, resuming=True)
    assert not same(fresh.method.networks["G"].state_dict(), weights)  # a resumed run loads its own instead


def test_the_run_records_the_model_it_started_from_and_resumes_without_it(tmp_path):
    source = make_checkpoint("pix2pix", tmp_path / "trained.pt")
    data = make_paired(tmp_path / "data")
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--init-from", str(source), "--size", "32",
            "--load-size", "36", "--num-workers", "0", "--device", "cpu", "--max-steps", "2", "--log-every", "1"]
    assert main(args) == 0
    latest = tmp_path / "run" / "checkpoints" / "latest.pt"
    assert checkpoint_config(load_checkpoint(latest)).train.init_from == str(source)
    source.unlink()  # a resumed run continues from its own checkpoint, not the model it began from
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "auto", "--max-steps", "3"]) == 0
    with pytest.raises(Img2ImgError, match="--init-from cannot change when resuming: the run started from "):
        config_for_run({"train": {"init_from": "other.pt"}}, out=str(tmp_path / "run"), resume="auto")


def test_a_flag_that_contradicts_the_model_is_refused_in_one_line(tmp_path):
    source = make_checkpoint("pix2pix", tmp_path / "trained.pt")
    with pytest.raises(Img2ImgError, match=r"^--ngf 16 contradicts the model the run starts from \(.*trained.pt: ngf "
                                           r"8\); leave --ngf out$"):
        start(source, make_paired(tmp_path / "data"), tmp_path / "run", model={"ngf": 16})
    run = start(source, tmp_path / "data", tmp_path / "run", model={"ndf": 16})  # the discriminator is the run's
    assert run.cfg.model.ndf == 16


def test_data_of_other_channels_than_the_models_is_refused_in_one_line(tmp_path):
    source = make_checkpoint("pix2pix", tmp_path / "grey.pt", model=dict(netG="unet_32", ngf=8, in_channels=1))
    run = start(source, make_paired(tmp_path / "data"), tmp_path / "run")
    with pytest.raises(Img2ImgError, match=r"grey.pt: its generator's input has 1 channel, and this data's 3"):
        Trainer.from_config(run.cfg, starting=run.starting)


def test_a_cyclegan_from_a_one_way_model_starts_its_other_direction_fresh(tmp_path):
    both = make_checkpoint("cyclegan", tmp_path / "both.pt")
    state = load_checkpoint(both)
    del state["method"]["networks"]["G_B"]
    torch.save(state, tmp_path / "one_way.pt")
    run = start(tmp_path / "one_way.pt", make_unpaired(tmp_path / "data"), tmp_path / "run")
    trainer = Trainer.from_config(run.cfg, starting=run.starting)
    assert same(trainer.method.networks["G_A"].state_dict(), state["method"]["networks"]["G_A"])
    both_weights = load_checkpoint(both)["method"]["networks"]["G_B"]
    assert not same(trainer.method.networks["G_B"].state_dict(), both_weights)
    trainer = Trainer.from_config(start(both, tmp_path / "data", tmp_path / "run2").cfg)
    assert same(trainer.method.networks["G_B"].state_dict(), both_weights)


def test_a_full_checkpoint_brings_its_discriminator_where_it_fits(tmp_path):
    data = make_paired(tmp_path / "data")
    tiny = ["--netG", "unet_32", "--ngf", "8", "--ndf", "8", "--size", "32", "--load-size", "36", "--num-workers", "0",
            "--device", "cpu", "--max-steps", "2", "--log-every", "1"]
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "first"), *tiny]) == 0
    first = load_checkpoint(tmp_path / "first" / "checkpoints" / "latest.pt")["method"]["networks"]
    run = start(tmp_path / "first", data, tmp_path / "second", model={"ndf": 8})  # a run folder names its checkpoint
    assert same(Trainer.from_config(run.cfg).method.networks["D"].state_dict(), first["D"])
    other = start(tmp_path / "first", data, tmp_path / "third", model={"ndf": 16})  # another D: it starts fresh
    assert Trainer.from_config(other.cfg).method.networks["D"].state_dict().keys() == first["D"].keys()


def test_published_cyclegan_generators_bring_their_reverse():
    assert published_reverse("horse2zebra") == "zebra2horse"
    assert published_reverse("summer2winter_yosemite") == "winter2summer_yosemite"
    assert published_reverse("facades_photo2label") == "facades_label2photo"
    assert published_reverse("style_monet") is None and published_reverse("iphone2dslr_flower") is None
    assert published_reverse("edges2shoes") is None  # pix2pix: one direction


def test_an_unknown_model_is_refused_in_one_line(tmp_path):
    with pytest.raises(Img2ImgError, match=r"^--init-from nowhere.pt: no such file or run folder, and not "):
        start("nowhere.pt", make_paired(tmp_path / "data"), tmp_path / "run")


def test_a_method_other_than_the_models_may_start_from_its_generator(tmp_path):
    source = make_checkpoint("cyclegan", tmp_path / "cyc.pt")
    run = config_for_run({**{k: {**v} for k, v in TINY.items()}, "train": {**TINY["train"], "init_from": str(source)}},
                         method="cut", data=str(make_unpaired(tmp_path / "data")), out=str(tmp_path / "run"))
    assert run.cfg.method == "cut" and run.cfg.model.netG == "resnet_6blocks"
    trainer = Trainer.from_config(dataclasses.replace(run.cfg), starting=run.starting)
    assert same(trainer.method.networks["G"].state_dict(), load_checkpoint(source)["method"]["networks"]["G_A"])
