"""``bench report`` and ``bench reproduce``: the paper as data, matching, tables, plots, grids and the HTML page."""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench import hookimpl
from bench.merge_sweep_record import SweepPoint, SweepRecord
from bench.metrics.base import FeatureSpec, Metric, MetricContext, MetricResult
from bench.report.data import paper
from bench.report.match import plan_matches
from bench.report.tables import decimals, fmt
from bench.results import load
from bench.testing import torch_threads


class PaperToy(Metric):
    """The paper's keys (fid, clip_score, precision, recall) from the toy extractor: fast, random weights."""

    name = "paper_toy"
    keys = ("fid", "clip_score", "precision", "recall")
    higher_is_better = {"fid": False, "clip_score": True, "precision": True, "recall": True}

    def spec(self) -> FeatureSpec:
        return FeatureSpec("toy", {"weights": "random", "seed": 0})

    def feature_specs(self) -> list[FeatureSpec]:
        return [self.spec()]

    def compute(self, ctx: MetricContext) -> MetricResult:
        gen = ctx.image_features(self.spec(), "generated")
        ref = ctx.image_features(self.spec(), "reference")
        fid = float(np.sum((gen.mean(0) - ref.mean(0)) ** 2))
        return MetricResult({"fid": fid, "clip_score": float(gen.mean()), "precision": float(gen.std()) / 10,
                             "recall": float(np.abs(ref).mean()) / 10}, {"weights": "random", "comparable": False})


class PaperToyPlugin:
    @hookimpl
    def register_metrics(self, register):
        register("paper_toy", PaperToy, description="test metric with the paper's keys")


def use_paper_toy() -> None:
    """Register ``paper_toy`` (on the conftest's toy feature network)."""
    from conftest import use_toy

    from bench import plugins

    use_toy()
    if "paper_toy" not in plugins.current().metrics:
        plugins.register_plugin(PaperToyPlugin(), name="paper-toy")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three tiny runs (weights_seed 0 and 1; weights_seed 0 with noise seed 1) and a sweep over two of them."""
    from bench import plugins
    from bench.cli import main
    from bench.session import Session

    with torch_threads(1):
        plugins.reset()
        use_paper_toy()
        root = tmp_path_factory.mktemp("report-runs")
        session = Session(device="cpu")
        for name, weights_seed, seed in (("seed-0", 0, 0), ("seed-1", 1, 0), ("seed-0-noise-1", 0, 1)):
            session.evaluate("tiny", "smoke", method_args={"weights_seed": weights_seed}, limit=4, batch_size=2,
                             seed=seed, metrics=["paper_toy"], out=str(root), run_name=name)
        assert main(["latency", "--method", "sd-turbo", "--method-args", "size=tiny", "--device", "cpu", "--warmup",
                     "0", "--iters", "1", "--repeats", "1", "--out",
                     str(root / "latency" / "latency-sd-turbo.json")]) == 0
        sweep_dir = root / "sweep"
        sweep_dir.mkdir()
        points = [SweepPoint(lam, f"../{name}", load(root / name).metrics) for lam, name in ((0.0, "seed-1"),
                                                                                            (1.0, "seed-0"))]
        record = SweepRecord(a={"source": "tiny:weights_seed=0", "method": "tiny"},
                             b={"source": "tiny:weights_seed=1", "method": "tiny"}, suite="smoke", points=points,
                             directions={"fid": False})
        (sweep_dir / "sweep.json").write_text(json.dumps(record.to_dict()))
    plugins.reset()
    return root


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    from bench.cli import main

    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--runs", str(runs), "--out", str(out), "--map", f"sd21-cfg2={runs / 'seed-0'}",
                 "--map", f"sd-turbo={runs / 'seed-1'}"]) == 0
    return out


def _row(md: str, label: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(f"| {label} ") or line.startswith(f"| {label} ["))
    return [c.strip() for c in line.strip("|").split("|")]


def test_markdown_has_the_paper_verbatim_and_the_runs_measurements(runs, report):
    md = (report / "table1.md").read_text()
    table = paper().table("table1")
    for row in table.rows:
        cells = _row(md, row.label)
        for value in row.values.values():
            assert value in cells or f"**{value}**" in cells, (row.label, value)
    measured = {"SD 2.1 cfg 2": load(runs / "seed-0"), "SD Turbo": load(runs / "seed-1")}
    rows = list(csv.DictReader((report / "table1.csv").open()))
    for label, results in measured.items():
        cells = _row(md, label)
        for col in table.measured_columns():
            value = results.metrics[col.measure]
            places = decimals([r.values.get(col.key, "") for r in table.rows])
            assert any(c.startswith(fmt(value, places) + " †") for c in cells), (label, col.key, cells)
            line = next(r for r in rows if r["row"] == label and r["column"] == col.key)
            assert float(line["measured"]) == value and line["comparable"] == "False"
            assert line["run"] == str(results.run_dir)
    assert "generator weights are random" in md and "suite smoke (the paper's protocol: coco30k)" in md
    assert "**9.64**" in md  # the best paper FID of the column is bold, as in the paper
    tex = (report / "table1.tex").read_text()
    assert "\\toprule" in tex and "\\textbf{9.64}" in tex and "\\dagger" in tex


def test_known_problems_and_both_instaflow_values_are_printed(report):
    t3, t8, t4 = ((report / f"table{i}.md").read_text() for i in (3, 8, 4))
    assert "13.33" in _row(t3, "InstaFlow-0.9B") and "rerun" in _row(t3, "InstaFlow-0.9B")
    assert "13.10" in _row(t8, "InstaFlow-0.9B") and "0.12 (rerun)" in _row(t8, "InstaFlow-0.9B")
    assert "HPSv2 README's v2.0 values for Stable Diffusion v2.0" in t4 and "permuted" in t4
    assert "default in hpsv2 1.2.0 is v2.1" in t4
    data = paper()
    assert data.table("table3").rows[9].source == "rerun" and data.table("table8").rows[4].mark("fid") == "reported"
    assert data.table("table8").rows[4].mark("inference_s") == "rerun"
    assert "provenance not stated" in data.notice


def test_latency_record_fills_table8_by_its_file_name(runs, report):
    from bench.results import load_latency

    record = load_latency(runs / "latency" / "latency-sd-turbo.json")
    cells = _row((report / "table8.md").read_text(), "SD Turbo")
    assert any(c.startswith(fmt(record.mean_ms / 1000, 3) + " †") for c in cells), cells
    line = next(r for r in csv.DictReader((report / "table8.csv").open())
                if r["row"] == "SD Turbo" and r["column"] == "inference_s")
    assert float(line["measured"]) == record.mean_ms / 1000 and "(the paper: A100)" in line["not_comparable_because"]
    assert (report / "latency.png").is_file() and (report / "latency.pdf").is_file()


def test_other_runs_plots_grids_and_page(runs, report):
    own = (report / "own-runs.md").read_text()
    assert "seed-0-noise-1 (tiny on smoke)" in own and " paper" not in own.split("\n")[2]
    for stem in ("merge-curves", "fid-clip", "precision-recall"):
        assert (report / f"{stem}.png").stat().st_size > 1000 and (report / f"{stem}.pdf").is_file()
    from PIL import Image

    from bench.report.grids import HEADER_H, LABEL_W, THUMB

    with Image.open(report / "grid-prompts.png") as im:  # the two runs of noise seed 0, four samples each
        assert im.size == (LABEL_W + 4 * THUMB, HEADER_H + 2 * THUMB)
    with Image.open(report / "grid-seeds.png") as im:  # weights_seed 0 under noise seeds 0 and 1: one row of 2
        assert im.size == (LABEL_W + 2 * THUMB, HEADER_H + THUMB)
    from bench.report.build import _caveat_for_sweeps
    from bench.report.collect import collect

    assert _caveat_for_sweeps(collect([runs]))  # the merge-curve figure carries the random-weights footnote
    page = (report / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count("data:image/png;base64,") >= 5 and "Table 1" in page and "platform" in page


def _student(folder, recipe):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench_model.json").write_text(json.dumps({"base": "tiny", "recipe": recipe}))
    return str(folder)


def test_matching_rules(tmp_path):
    the_paper = paper()
    models = the_paper.models
    assert plan_matches(models["sd21-cfg4_5"], "sd21", {"guidance": 4.5, "steps": 25}, the_paper)
    assert not plan_matches(models["sd21-cfg4_5"], "sd21", {"guidance": 2.0}, the_paper)
    # a public model's row takes its own weights (or random ones of its architecture), never other weights
    assert plan_matches(models["sd-turbo"], "sd-turbo", {"size": "tiny"}, the_paper)
    assert plan_matches(models["sd-turbo"], "sd-turbo", {"weights": "stabilityai/sd-turbo"}, the_paper)
    assert not plan_matches(models["sd-turbo"], "sd-turbo", {"weights": "someone/finetune"}, the_paper)
    sd21 = {"guidance": 4.5, "steps": 25, "weights": "stabilityai/stable-diffusion-2-1-base"}
    assert plan_matches(models["sd21-cfg4_5"], "sd21", sd21, the_paper)  # its published id, named explicitly
    # a trained model is its recipe, not its folder name
    a = {"preset": "sbv2-a", "student_init": "sd-turbo", "clip_loss": False, "image_reg": False, "hps_loss": False}
    b = {**a, "preset": "sbv2-b", "student_mode": "lora", "clip_loss": True}
    named_a = _student(tmp_path / "model-a", a)
    assert plan_matches(models["model-a"], "sbv2", {"weights": named_a}, the_paper)
    assert not plan_matches(models["turbo-init-1_3m"], "sbv2", {"weights": named_a}, the_paper)
    b_named_a = _student(tmp_path / "x" / "model-a", b)  # named like model A, trained like model B
    assert not plan_matches(models["model-a"], "sbv2", {"weights": b_named_a}, the_paper)
    # model B and the CLIP ablation share a recipe (they differ in prompt files): the folder name decides
    assert not any(plan_matches(m, "sbv2", {"weights": b_named_a}, the_paper) for m in models.values())
    assert plan_matches(models["model-b"], "sbv2", {"weights": _student(tmp_path / "model-b", b)}, the_paper)
    toy = _student(tmp_path / "sbv2", {**a, "preset": "tiny"})  # the docs' toy student, named like the row
    assert not any(plan_matches(m, "sbv2", {"weights": toy}, the_paper) for m in models.values())
    merged = _student(tmp_path / "ours", {"merge": {"lambda": 0.5, "a": a, "b": b}})
    assert plan_matches(models["sbv2"], "sbv2", {"weights": merged}, the_paper)
    swapped = _student(tmp_path / "swapped", {"merge": {"lambda": 0.5, "a": b, "b": a}})
    assert not plan_matches(models["sbv2"], "sbv2", {"weights": swapped}, the_paper)
    assert not plan_matches(models["model-a"], "tiny", {}, the_paper)


@pytest.mark.parametrize("table", [t.id for t in paper().tables])
def test_dry_run_prints_commands_the_clis_parse(table, capsys):
    from bench.cli import build_parser, main
    from training.cli import build_parser as training_parser

    assert main(["reproduce", table, "--dry-run", "--limit", "10", "--device", "cpu"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line and not line.startswith("#")]
    assert lines and lines[-1].startswith("python -m bench report")
    for line in lines:
        argv = shlex.split(line)
        assert argv[:2] == ["python", "-m"], line
        parser = training_parser() if argv[2] == "training" else build_parser()
        args = parser.parse_args(argv[3:])
        assert args.command in ("run", "latency", "report", "distill", "merge")
    if table == "table1":
        assert sum("--method sd21" in line for line in lines) == 3 and any("--method swiftbrush" in x for x in lines)


def test_broken_run_is_a_warning_and_an_empty_folder_says_what_to_run(runs, tmp_path, capsys):
    from bench.cli import main

    folder = tmp_path / "runs"
    shutil.copytree(runs / "seed-0", folder / "good", ignore=shutil.ignore_patterns("features", "images"))
    (folder / "broken").mkdir()
    (folder / "broken" / "results.json").write_text("{not json")
    assert main(["report", "--runs", str(folder), "--out", str(tmp_path / "out"), "--tables", "table1"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(err) == 1 and "warning" in err[0] and str(folder / "broken" / "results.json") in err[0]
    (tmp_path / "empty").mkdir()
    assert main(["report", "--runs", str(tmp_path / "empty"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "python -m bench run" in err[0]


def test_reproduce_trained_table_without_models_is_one_line(tmp_path, capsys):
    from bench.cli import main

    assert main(["reproduce", "table5", "--models", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs models trained here" in err[0]


def test_reproduce_runs_in_order_skips_finished_runs_and_writes_the_table(tmp_path, monkeypatch, capsys, one_thread):
    """A stand-in paper whose table needs two tiny models on the smoke suite."""
    import tomllib

    from bench.cli import main
    from bench.report import build, data

    use_paper_toy()
    text = data.PAPER_FILE.read_text().split("[[tables]]")[0] + """
[models.tiny-0]
method = "tiny"
method_args = { weights_seed = 0 }
[models.tiny-1]
method = "tiny"
method_args = { weights_seed = 1 }
[protocols.smoke]
suite = "smoke"
[[tables]]
id = "toy"
title = "Toy"
protocol = "smoke"
columns = [{ key = "fid", label = "FID", measure = "fid", higher = false }]
rows = [{ label = "A", model = "tiny-0", values = { fid = "1.5" } }, { label = "B", model = "tiny-1", values = {} }]
"""
    fake = data.parse_paper(tomllib.loads(text))
    monkeypatch.setattr(data, "paper", lambda: fake)
    monkeypatch.setattr(build, "paper", lambda: fake)
    argv = ["reproduce", "toy", "--out", str(tmp_path / "runs"), "--report", str(tmp_path / "rep"), "--device", "cpu",
            "--limit", "2", "--batch-size", "2", "--metrics", "paper_toy"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert first.index("weights_seed=0") < first.index("weights_seed=1") and "skipped" not in first
    md = (tmp_path / "rep" / "toy.md").read_text()
    fid = load(tmp_path / "runs" / "smoke-tiny-0").metrics["fid"]
    assert f"{fid:.2f} †" in md and "1.5" in md
    assert main(argv) == 0
    assert capsys.readouterr().out.count("done already, skipped") == 2


# -- the page in a real browser ----------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = """<script>addEventListener('load', () => { const out = document.createElement('pre'); out.id = 'probe';
out.textContent = JSON.stringify([...document.images].map(i => [i.complete, i.naturalWidth]));
document.body.appendChild(out); });</script>"""


def _browse(page: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    """Open ``page`` in headless Chromium with every host unresolvable and a proxy to nowhere."""
    return subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                           "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
                           "--disable-background-networking", f"--user-data-dir={tmp / 'profile'}",
                           "--virtual-time-budget=5000", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=60)


def page_requests(page: Path, tmp: Path) -> tuple[list, list[str]]:
    """([complete, naturalWidth] of every image after load, URLs other than file:/data: the page requested).
    Requests of the browser itself (updates, time) have no origin and are not the page's."""
    probe, netlog = tmp / "probe.html", tmp / "net.json"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = _browse(probe, tmp, f"--log-net-log={netlog}", "--dump-dom")
    images = json.loads(dom.stdout.split('<pre id="probe">')[1].split("</pre>")[0])
    log = json.loads(netlog.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    jobs = [e.get("params", {}) for e in log.get("events", []) if e["type"] == start]
    urls = [p["url"] for p in jobs if "url" in p and p.get("initiator") != "not an origin"
            and not p["url"].startswith(("file:", "data:"))]
    return images, urls


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; CI installs it)")
def test_html_renders_offline_in_a_headless_browser(report, tmp_path):
    from PIL import Image

    page = (report / "index.html").read_text()
    assert "http://" not in page and "https://" not in page
    images, urls = page_requests(report / "index.html", tmp_path)
    assert len(images) >= 5 and all(ok and width > 0 for ok, width in images), images
    assert urls == []
    # the same check catches a page that fetches something (and an image that does not load)
    bad = tmp_path / "bad" / "index.html"
    bad.parent.mkdir()
    bad.write_text(page.replace("</body>", '<img src="http://example.com/x.png"></body>'))
    images, urls = page_requests(bad, bad.parent)
    assert urls == ["http://example.com/x.png"] and images[-1][1] == 0
    shot = tmp_path / "shot.png"
    _browse(report / "index.html", tmp_path, f"--screenshot={shot}", "--window-size=1280,2000")
    with Image.open(shot) as im:
        rgb = np.asarray(im.convert("RGB"))
    assert (rgb < 250).any(axis=2).mean() > 0.02 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50


def test_a_damaged_image_leaves_a_blank_grid_cell_and_the_report_goes_on(runs, tmp_path):
    import shutil

    from bench.cli import main

    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    damaged = sorted((copy / "seed-0" / "images").glob("*.png"))[0]
    damaged.write_bytes(b"not a png")
    out = tmp_path / "report"
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["report", "--runs", str(copy), "--out", str(out)]) == 0
    assert str(damaged) in err.getvalue() and "cannot be read" in err.getvalue()
    assert (out / "grid-prompts.png").is_file() and (out / "index.html").is_file()
