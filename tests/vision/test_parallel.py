"""Data-parallel stage-1 training (vision.parallel): the same step as one process, exact resumes, clear errors."""

import logging

import pytest
import torch
import torch.multiprocessing as mp

import vision
import vision.parallel as vp
from tests.vision.conftest import blocks_frames
from vision.train import _dead_workers_message, train_vision

FAST = dict(batch_size=8, log_every=2, progress=False, probe=False)


def _weights(path):
    return vision.load(path).state_dict()


def _max_diff(a, b):
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.fixture
def frames():
    return blocks_frames(64, 32)[0]


def test_resolve_workers(monkeypatch):
    monkeypatch.setattr(vp, "available_cores", lambda: 2)
    ae, factor_vae = vision.make("ae", image_size=32), vision.make("factor_vae", image_size=32)
    assert vp.resolve_workers("auto", "cpu", 64, ae) == 2
    assert vp.resolve_workers("auto", "cpu", 64, factor_vae) == 1  # batch-statistic loss: one process
    assert vp.resolve_workers("auto", "cpu", 16, ae) == 1  # 8 rows each would be under MIN_ROWS_PER_WORKER
    assert vp.resolve_workers("auto", "cuda", 64, ae) == 1
    monkeypatch.setattr(vp, "available_cores", lambda: 6)
    assert vp.resolve_workers("auto", "cpu", 64, ae) == 4  # the largest count <= 6 that divides 64
    assert vp.resolve_workers(2, "cpu", 64, ae) == 2
    assert vp.resolve_workers(2, "cpu", 64, factor_vae) == 1
    with pytest.raises(ValueError, match="workers=3 must divide batch_size=64"):
        vp.resolve_workers(3, "cpu", 64, ae)
    with pytest.raises(ValueError, match="on cuda use workers 1 or auto"):
        vp.resolve_workers(2, "cuda", 64, ae)
    for bad in (0, -1, True, "two", 1.5):
        with pytest.raises(ValueError, match="must be 'auto' or a positive integer"):
            vp.resolve_workers(bad, "cpu", 64, ae)


def test_only_per_sample_losses_are_data_parallel_safe():
    safe = {name for name in vision.list_models() if vision.model_class(name).data_parallel_safe}
    assert safe == {"ae", "dae", "vae", "beta_vae", "beta_vae_dae"}


@pytest.mark.parametrize("steps", [1, 2])
def test_two_workers_take_the_step_of_one_process(tmp_path, frames, steps):
    """AE has no noise: two ranks on half-batches with averaged gradients = one process on the whole batch."""
    one = train_vision("ae", frames, tmp_path / "one", steps=steps, seed=3, workers=1, **FAST)
    two = train_vision("ae", frames, tmp_path / "two", steps=steps, seed=3, workers=2, **FAST)
    start = vision.make("ae", image_size=32).state_dict()
    assert _max_diff(_weights(one), start) > 1e-4  # it trained
    assert _max_diff(_weights(one), _weights(two)) < 1e-6


def _hook_worker(rank, world, init_file, out):
    vp.init(rank, world, init_file)
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=1.0)
    vp.average_gradients_before_step([opt], world)
    p.grad = torch.full((3,), float(rank + 1))
    opt.step()
    out[rank] = p.detach()
    torch.distributed.barrier()  # as vision.train: no rank leaves the group while another still uses it
    torch.distributed.destroy_process_group()


def test_the_hook_averages_gradients_over_ranks(tmp_path):
    out = torch.zeros(2, 3).share_memory_()
    mp.spawn(_hook_worker, args=(2, str(tmp_path / "rendezvous"), out), nprocs=2)
    assert torch.equal(out, torch.full((2, 3), -1.5))  # SGD lr 1 on the mean gradient (1 + 2) / 2


def test_data_parallel_resume_equals_an_uninterrupted_run(tmp_path, frames):
    """β-VAE_DAE draws noise on every rank: the checkpoint keeps each rank's stream."""
    cfg = {"latents": 4, "dae_layer": 2, "dae_bottleneck": 8}
    kw = dict(seed=1, workers=2, dae_steps=2, checkpoint_every=2, config=cfg, **FAST)
    straight = train_vision("beta_vae_dae", frames, tmp_path / "a", steps=4, **kw)
    train_vision("beta_vae_dae", frames, tmp_path / "b", steps=2, **kw)
    resumed = train_vision("beta_vae_dae", frames, tmp_path / "b", steps=4, **kw)
    assert (tmp_path / "b" / "ckpt" / "step_0000002").is_dir()
    assert _max_diff(_weights(straight), _weights(resumed)) == 0.0
    one = train_vision("beta_vae_dae", frames, tmp_path / "c", steps=4, **{**kw, "workers": 1})
    assert _max_diff(_weights(straight), _weights(one)) > 0  # other noise streams: another run


def test_workers_are_part_of_the_run_signature(tmp_path, frames, caplog):
    train_vision("ae", frames, tmp_path, steps=2, workers=1, checkpoint_every=1, **FAST)
    with pytest.raises(ValueError, match="different run .*workers"):
        train_vision("ae", frames, tmp_path, steps=3, workers=2, checkpoint_every=1, **FAST)


def test_precision_auto_keeps_bf16_to_one_thread_per_process(tmp_path, frames, monkeypatch, caplog):
    import vision.train as vt

    monkeypatch.setattr(vt, "cpu_has_fast_bf16", lambda: True)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    with caplog.at_level(logging.INFO, logger="vision.train"):
        train_vision("ae", frames, tmp_path / "a", steps=1, workers=1, precision="auto", **FAST)
    assert "precision auto trains ae in fp32" in caplog.text
    torch.set_num_threads(threads)
    assert "precision" not in vision.checkpoint.read_meta(tmp_path / "a" / "model")["extra"]["train"]
    train_vision("ae", frames, tmp_path / "b", steps=1, workers=2, precision="auto", **FAST)
    assert vision.checkpoint.read_meta(tmp_path / "b" / "model")["extra"]["train"]["precision"] == "bf16"


def test_a_worker_that_dies_is_named():
    class Dead:
        name, exitcode = "darla-vision-rank1", 1

    message = _dead_workers_message([Dead()], "during training")
    assert "darla-vision-rank1 (exit code 1) stopped during training" in message
    assert "vision.workers: 1" in message
