"""All-in-one inference: conditioning once per image, --task, --explain, and every README degradation
name restored end to end through the command line on a tiny detector model."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sirestore.checkpoint import save_weights
from sirestore.cli import main
from sirestore.degrade import REGISTRY, parse_spec
from sirestore.degrade.inpaint import telea_fill
from sirestore.model import FlowModel
from sirestore.nn.unet import UNetConfig
from sirestore.restore import Restorer
from sirestore.tasks import TASKS

from .conftest import randomize, tiny_config

ROOT = Path(__file__).resolve().parents[1]


def _detecting() -> FlowModel:
    cfg = tiny_config(detector=2)  # the version shipped
    cfg = dataclasses.replace(cfg, net=UNetConfig(**{**cfg.net.to_dict(), "task_dim": len(TASKS) + 1}))
    return randomize(FlowModel(cfg))


@pytest.fixture
def detector_weights(tmp_path):
    path = tmp_path / "aio.safetensors"
    save_weights(_detecting(), path)
    return path


def test_condition_is_detected_once_and_forced_by_task():
    model = _detecting()
    y = torch.rand(1, 3, 24, 40)
    auto = Restorer(model=model, precision="fp32")
    vec = auto.condition(y)
    assert vec.shape == (1, len(TASKS) + 1)
    with torch.no_grad():
        direct = model(y, torch.zeros(1), y, task=vec)
    assert torch.allclose(auto.restore_tensor(y), direct, atol=1e-6)
    jpeg = Restorer(model=model, task="jpeg").condition(y)
    assert jpeg[0, TASKS.index("jpeg")] == 1 and jpeg[0, : len(TASKS)].sum() == 1
    assert torch.allclose(jpeg[0, -1], vec[0, -1])  # the detected noise level is kept
    assert not torch.allclose(Restorer(model=model, task="jpeg").restore_tensor(y), direct)


def test_tiles_share_the_whole_image_condition():
    model = _detecting()
    y = torch.rand(1, 3, 48, 80)
    whole = Restorer(model=model).condition(y)
    seen = []
    tiled = Restorer(model=model, tile=32, overlap=8)
    original = tiled._run

    def spy(t, dc, noise=None, task=None):
        seen.append(task)
        return original(t, dc, noise, task=task)

    tiled._run = spy
    tiled.restore_tensor(y)
    assert len(seen) > 1 and all(torch.equal(v, whole) for v in seen)


def test_explain_reports_every_task_and_a_noise_level():
    found = Restorer(model=_detecting()).explain(torch.rand(1, 1, 20, 20))
    assert set(found) == {*TASKS, "sigma"} and all(0 <= found[t] <= 1 for t in TASKS) and found["sigma"] >= 0


def test_task_and_explain_need_a_detector(tiny_model):
    with pytest.raises(ValueError, match="all-in-one"):
        Restorer(model=tiny_model, task="noise")
    with pytest.raises(ValueError, match="all-in-one"):
        Restorer(model=tiny_model).explain(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown task"):
        Restorer(model=_detecting(), task="magic")


def test_cli_explain_and_task(tmp_path, detector_weights, tiny_weights, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(src)
    w = ["--weights", str(detector_weights)]
    assert main(["restore", str(src), "-o", str(tmp_path / "a.png"), "--explain", *w]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{src}: ") and re.search(r"noise level \d+\.\d/255$", line)
    assert main(["restore", str(src), "-o", str(tmp_path / "b.png"), "--task", "rain", *w]) == 0
    assert (tmp_path / "b.png").is_file()
    assert main(["restore", str(src), "-o", str(tmp_path / "c.png"), "--explain", "--weights", str(tiny_weights)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --explain needs an all-in-one model") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.png").exists()
    with pytest.raises(SystemExit):
        main(["restore", str(src), "-o", str(tmp_path / "d.png"), "--task", "magic", *w])


def _readme_names() -> list[str]:
    table = (ROOT / "README.md").read_text().split("### Degradations", 1)[1].split("## How it works", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M)


def test_readme_lists_every_degradation():
    assert sorted(_readme_names()) == sorted(set(REGISTRY) - {"compose"})


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - {"compose"}))
def test_every_readme_degradation_restores_end_to_end(tmp_path, detector_weights, name):
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(1))
    spec = {"motion_blur": "motion_blur:size=9", "sr": "sr:scale=2"}.get(name, name)
    data = tmp_path / "set"
    data.mkdir()
    Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(data / "clean.png")
    out = tmp_path / "r.json"
    argv = ["eval", "--data", str(data), "--degradation", spec, "--weights", str(detector_weights), "--no-perceptual"]
    assert main([*argv, "--json", str(out)]) == 0  # degraded by the spec, restored, scored
    assert json.loads(out.read_text())["images"] == 1


@pytest.mark.parametrize("name", ["allinone", "allinone_mask"])
def test_shipped_allinone_weights(name):
    """`--weights allinone` (and `allinone_mask`) names a shipped all-in-one model: at most 1.0M parameters, with a
    detector, and on a noisy crop of the example photo it reads noise and restores it (behaviour, not a quality
    figure)."""
    from sirestore.checkpoint import load_weights
    from sirestore.metrics import psnr
    from sirestore.nn.unet import count_parameters
    from sirestore.restore import resolve_weights

    path = resolve_weights(name)
    assert path.parent.name == "weights" and path.is_file()
    model = load_weights(path)
    assert model.detector is not None and count_parameters(model) <= 1_000_000
    photo = np.asarray(Image.open(ROOT / "examples/coffee_noisy.png").convert("RGB"))[:96, :128]
    clean = Restorer(weights="default").restore_tensor(torch.from_numpy(photo.copy()).permute(2, 0, 1)[None] / 255)
    noisy = clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(0)) * 25 / 255
    restorer = Restorer(weights=name)
    found = restorer.explain(noisy)
    assert max(TASKS, key=found.get) == "noise" and 15 < found["sigma"] < 35
    assert psnr(restorer.restore_tensor(noisy).clamp(0, 1), clean) > psnr(noisy.clamp(0, 1), clean) + 3
    # undamaged photos (the crop, and flatter, darker versions of it) are left as they are: nothing is read in
    # them above an even chance and the output stays within 48 dB of the input (51-52 dB for the weights trained
    # with `clean` photos in the mixture, 45.6-47.8 dB for the earlier ones, which "dehazed" some clean photos)
    photos = [clean.clamp(0, 1), 0.15 + 0.6 * clean.clamp(0, 1), 0.3 + 0.5 * clean.clamp(0, 1), 0.6 * clean.clamp(0, 1)]
    if name == "allinone_mask":  # its known failure (README): the flat, low-contrast one, where the detector reads
        # haze at 0.28, it "dehazes" (19.8 dB against itself)
        photos.pop(2)
    for photo in photos:
        found = restorer.explain(photo)
        assert max(found[t] for t in TASKS) < 0.5, found
        assert psnr(restorer.restore_tensor(photo).clamp(0, 1), photo) > 48


def test_shipped_mask_model_fills_holes_it_is_given():
    """`--weights allinone_mask` is the shipped all-in-one network grown by a mask input, under the same (frozen)
    detector; given a mask in known mode it improves on the Telea fill it starts from, and its known pixels stay
    exact (behaviour, not a quality figure)."""
    from sirestore.checkpoint import load_weights
    from sirestore.known import Known, restore_known
    from sirestore.metrics import psnr
    from sirestore.model import split_state
    from sirestore.restore import resolve_weights

    plain, masked = load_weights(resolve_weights("allinone")), load_weights(resolve_weights("allinone_mask"))
    assert masked.cfg.net.mask_channels == 1 and plain.cfg.net.mask_channels == 0
    a, b = split_state(plain.state_dict())[1], split_state(masked.state_dict())[1]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    photo = np.asarray(Image.open(ROOT / "examples/coffee_noisy.png").convert("RGB"))[:128, :160]
    clean = Restorer(weights="default").restore_tensor(torch.from_numpy(photo.copy()).permute(2, 0, 1)[None] / 255)
    clean = clean.clamp(0, 1)
    y, params = parse_spec("inpaint:ratio=0.3")(clean, torch.Generator().manual_seed(0))
    mask = params[0]["mask"]
    out = restore_known(Restorer(model=masked), y, Known(mask=mask)).clamp(0, 1)
    assert torch.equal(out[mask.expand_as(out) > 0.5], y[mask.expand_as(y) > 0.5])
    assert psnr(out, clean) > psnr(telea_fill(y, mask), clean) + 0.1


@pytest.mark.parametrize("operator, task", [("mask", "inpaint"), ("kernel", "blur"), ("scale", "low_resolution")])
def test_a_given_operator_conditions_an_allinone_model_on_its_task(operator, task):
    """With `--mask`, `--kernel` or `--scale`, the operator says the degradation: an all-in-one model restores as
    with `--task inpaint / blur / low_resolution`, not on what its detector reads in the initial guess."""
    from sirestore.known import Known, restore_known

    model = _detecting()
    y = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(3))
    mask = (torch.rand(32, 48, generator=torch.Generator().manual_seed(4)) > 0.3).float()
    kernel = torch.ones(3, 5) / 15
    known = {"mask": Known(mask=mask), "kernel": Known(kernel=kernel, sigma=0.01), "scale": Known(scale=2)}[operator]
    auto = restore_known(Restorer(model=model), y, known)
    told = restore_known(Restorer(model=model, task=task), y, known)
    other = restore_known(Restorer(model=model, task="noise"), y, known)
    assert torch.equal(auto, told) and not torch.allclose(auto, other)
