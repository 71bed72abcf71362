"""``bench latency`` and bench.timing: the protocol record, per-stage statistics and where results go."""

from __future__ import annotations

import json
import time

from bench.cli import main
from bench.generator import Generator


class SleepyGenerator(Generator):
    """A pure-Python generator whose stages take known times (milliseconds)."""

    name = "sleepy"

    def __init__(self) -> None:
        super().__init__()
        self.device = "cpu"
        self.calls = 0

    def load(self, device, dtype):  # pragma: no cover - not used
        pass

    @property
    def noise_shape(self):
        return (1,)

    def encode_prompts(self, prompts):
        time.sleep(0.001)
        return prompts

    def denoise(self, noise, conditioning):
        self.calls += 1
        time.sleep(0.003)
        return noise

    def decode(self, latents):
        time.sleep(0.002)
        return latents


def test_measure_latency_counts_and_statistics():
    from bench.timing import measure_latency

    gen = SleepyGenerator()
    record = measure_latency(gen, [0.0], ["p"], warmup=2, iters=4, repeats=3)
    assert gen.calls == 2 + 4 * 3
    assert record["total_ms"]["n"] == 12 and len(record["repeat_means_ms"]) == 3
    assert set(record["stages_ms"]) == {"text_encoder", "denoiser", "decoder"}
    assert record["stages_ms"]["denoiser"]["min"] >= 2.5
    assert record["total_ms"]["mean"] >= sum(s["min"] for s in record["stages_ms"].values())
    assert record["timer"].startswith("host clock")
    assert record["peak_memory_mib"] > 0


def test_latency_command_json_record(tmp_path, capsys, one_thread):
    out = tmp_path / "lat.json"
    argv = ["latency", "--method", "tiny", "--device", "cpu", "--warmup", "1", "--iters", "2", "--repeats", "2",
            "--batch-size", "2", "--json", "--out", str(out)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    record = json.loads(out.read_text())
    assert printed == record
    assert record["method"] == "tiny" and record["weights"] == "random" and record["dtype"] == "fp32"
    assert record["protocol"]["batch_size"] == 2 and record["protocol"]["repeats"] == 2
    assert record["protocol"]["height"] == 64 and record["protocol"]["iters"] == 2
    assert record["total_ms"]["n"] == 4 and len(record["repeat_means_ms"]) == 2
    for key in ("device_name", "torch", "diffusers", "hardware", "generator", "peak_memory_mib", "stages_ms"):
        assert key in record, key


def test_latency_command_default_path_and_size(tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.chdir(tmp_path)
    argv = ["latency", "--method", "sd-turbo", "--method-args", "size=tiny,vae=tiny", "--device", "cpu",
            "--warmup", "0", "--iters", "1", "--repeats", "1", "--height", "96", "--width", "128"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "total" in text and "written to" in text
    files = list((tmp_path / "results" / "perf").glob("latency-sd-turbo-*.json"))
    assert len(files) == 1
    record = json.loads(files[0].read_text())
    assert (record["protocol"]["height"], record["protocol"]["width"]) == (96, 128)
    assert record["generator"]["vae"] == "tiny"
