"""The report as a reader gets it: LaTeX tables that fit a page's text width (measured from the generated
source with Computer Modern's own metrics, no TeX needed), an HTML page without horizontal overflow at 1280 px
(measured in headless Chromium), and figures whose text is neither clipped nor overlapping (measured with
matplotlib's renderer)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.report.data import paper

#: Every model of Tables 1-9, with scores, so that every row has measured and difference lines.
SCORES = {"fid": 12.3456, "clip_score": 0.31234, "precision": 0.5512, "recall": 0.4987, "hps/anime": 27.61,
          "hps/photo": 27.72, "hps/concept-art": 26.93, "hps/paintings": 27.01}


def write_run(folder: Path, method: str, method_args: dict, suite: str = "coco30k", weights: str = "random",
              metrics: dict | None = None) -> Path:
    """A finished run as results.json holds it (random weights: every cell carries a not-comparable note)."""
    from bench.results import Results

    results = Results.from_dict({
        "method": method, "suite": suite, "num_samples": 30000, "weights": weights, "comparable": False,
        "not_comparable_because": [f"generator weights are {weights}"], "metrics": dict(metrics or SCORES),
        "config": {"method_args": method_args, "created_at": "2026-01-01T00:00:00",
                   "hardware": {"platform": "Linux-6.1-x86_64-with-glibc2.36", "gpu": "none"},
                   "packages": {"torch": "2.2.2", "diffusers": "0.29.2"}}})
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results.to_dict()))
    return folder


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """A report in which every table has measurements, under long run paths, plus runs that match no row."""
    from bench.cli import main

    root = tmp_path_factory.mktemp("layout")
    runs = root / ("a-rather-long-folder-name-of-runs-" * 3).rstrip("-")
    maps = []
    for model_id in paper().model_ids():
        model = paper().models.get(model_id)
        if model is None or model.method is None:
            continue
        folder = write_run(runs / f"coco30k-{model_id}-with-a-long-descriptive-run-name", model.method,
                           dict(model.method_args))
        maps += ["--map", f"{model_id}={folder}"]
        latency = runs / "latency" / f"latency-{model_id}.json"
        latency.parent.mkdir(parents=True, exist_ok=True)
        latency.write_text(json.dumps({"kind": "latency", "method": model.method, "method_args": model.method_args,
                                       "device_name": "NVIDIA H100 80GB HBM3", "dtype": "fp16", "weights": "random",
                                       "latency_ms": 123.456, "peak_memory_mib": 9123.0,
                                       "protocol": {"batch_size": 1}}))
    for i in range(3):
        write_run(runs / f"other-run-{i}-that-matches-no-row-of-the-paper-{'x' * 40}", "tiny", {"weights_seed": i},
                  suite="smoke", metrics={**SCORES, "density": 1.01, "coverage": 0.5, "kid": 0.0012})
    out = root / "report"
    assert main(["report", "--runs", str(runs), "--out", str(out), *maps]) == 0
    return out


# -- LaTeX: widths from the source, with Computer Modern metrics ----------------------------------------------
TEXT_WIDTH = 345.0  # article class, 10 pt: \textwidth on A4 and on letter paper
SIZES = {"scriptsize": 7.0, "footnotesize": 8.0}
TABCOLSEP = 3.0
EM = {"dagger": 0.444, "ddagger": 0.444, "Delta": 0.833, "quad": 1.0}  # cmsy10 / cmr10 widths in em


#: \textbf is cmbx10, which matplotlib does not ship: its widths are cmr10's times 1.15 (digits 5.75 pt against
#: 5.0 pt at 10 pt; letters 1.10 to 1.15), the larger ratio is taken.
BOLD = 1.15


def _font():
    import matplotlib
    from matplotlib.ft2font import FT2Font

    return FT2Font(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "cmr10.ttf"))


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Points that ``text`` (plain characters) takes in Computer Modern at ``size`` pt."""
    if not text:
        return 0.0
    font = _font()
    font.set_size(size, 72)  # 72 dpi: one pixel is one point
    width = sum(font.load_char(ord(ch)).linearHoriAdvance / 65536.0 for ch in text)  # advance widths
    return width * (BOLD if bold else 1.0)


def tex_width(tex: str, size: float, bold: bool = False) -> float:
    """Width of one cell of the generated LaTeX: the macros the report writes, each by its metric."""
    nested = re.fullmatch(r"\\begin\{tabular\}\[b\]\{@\{\}c@\{\}\}(.*)\\end\{tabular\}", tex.strip())
    if nested:
        return max(tex_width(part, size, bold) for part in nested.group(1).split(r" \\ "))
    m = re.fullmatch(r"\\textbf\{(.*)\}", tex.strip())
    if m:
        return tex_width(m.group(1), size, True)
    width = 0.0
    for sup in re.findall(r"\$\^\{?\\(d?dagger)(\d*)\}?\$", tex):  # superscripts: script size (5 pt at 7 pt)
        width += EM[sup[0]] * size * 5 / 7 + text_width(sup[1], size * 5 / 7, bold)
    tex = re.sub(r"\$\^\{?\\d?dagger\d*\}?\$", "", tex)
    for macro in ("Delta", "quad"):
        width += tex.count("\\" + macro) * EM[macro] * size
        tex = tex.replace(f"$\\{macro}$", "").replace(f"\\{macro}", "")
    tex = tex.replace("\\raggedright", "").replace("\\allowbreak{}", "")
    tex = re.sub(r"\\([%&_#$])", r"\1", tex)
    assert "\\" not in tex, f"unmeasured macro in {tex!r}"
    return width + text_width(tex.strip(), size, bold)


def latex_overflow(source: str) -> tuple[float, list[str]]:
    """(the widest tabular's natural width in pt, words that cannot fit their column or the text width)."""
    size = SIZES[re.search(r"\\(scriptsize|footnotesize|small)\n", source).group(1)]
    widest, too_long = 0.0, []
    for block in source.split("\\begin{tabular}{")[1:]:
        spec, rest = block.split("}\n", 1)
        columns = re.findall(r"p\{([\d.]+)\\linewidth\}|([lrc])", spec + "}")
        fixed = [float(p) * TEXT_WIDTH if p else None for p, _ in columns]
        natural = [0.0] * len(columns)
        for line in rest.split("\\bottomrule")[0].splitlines():
            if not line.endswith(r" \\"):
                continue
            cells = line[: -3].split(" & ")
            assert len(cells) == len(columns), line
            for j, cell in enumerate(cells):
                if fixed[j] is None:
                    natural[j] = max(natural[j], tex_width(cell, size))
                    continue
                # a paragraph column: each word (a line may break at spaces and at \allowbreak) must fit
                for word in cell.replace("\\raggedright ", "").replace("\\allowbreak{}", " ").split():
                    if tex_width(word, size) > fixed[j]:
                        too_long.append(word)
        total = sum(f if f is not None else n for f, n in zip(fixed, natural, strict=True)) + 2 * TABCOLSEP * len(columns)
        widest = max(widest, total)
    notes = source.split("\\par\\footnotesize ", 1)[1].split("\n\\end{table}")[0] if "footnotesize " in source else ""
    for token in notes.replace("\\allowbreak{}", " ").split():
        if tex_width(token, SIZES["footnotesize"]) > TEXT_WIDTH:
            too_long.append(token)
    return widest, too_long


def test_width_measure_is_computer_modern():
    # cmr10 at 10 pt: "0" is 5.0 pt, "M" 9.17 pt, "abc" 5.0 + 5.56 + 4.44 pt (the TFM's widths)
    assert text_width("0", 10) == pytest.approx(5.0, abs=0.05)
    assert text_width("M", 10) == pytest.approx(9.17, abs=0.05)
    assert text_width("abc", 10) == pytest.approx(15.0, abs=0.15)
    assert tex_width(r"\textbf{12.34}", 10) > tex_width("12.34", 10)
    # the measure catches a table that is too wide: the old layout, three columns per measured column
    wide = "\\scriptsize\n\\begin{tabular}{" + "l" * 20 + "}\n\\toprule\n" + " & ".join(["27.550 $^{\\dagger3}$"] * 20)
    assert latex_overflow(wide + " \\\\\n\\bottomrule\n")[0] > TEXT_WIDTH


def test_every_latex_table_fits_the_text_width(full_report):
    widths = {}
    for table in paper().tables:
        source = (full_report / f"{table.id}.tex").read_text()
        assert "measured" in source and "$\\Delta$" in source, table.id  # measurements are in the table
        total, too_long = latex_overflow(source)
        widths[table.id] = round(total)
        assert total <= TEXT_WIDTH, (table.id, total)
        assert not too_long, (table.id, too_long)
    own = full_report / "own-runs.tex"
    total, too_long = latex_overflow(own.read_text())
    assert total <= TEXT_WIDTH and not too_long, (total, too_long)
    assert max(widths.values()) > TEXT_WIDTH / 2  # the measure sees real tables, not empty ones


# -- HTML: no horizontal overflow at 1280 px ----------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = """<script>addEventListener('load', () => { const out = document.createElement('pre'); out.id = 'probe';
const wide = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right >
document.documentElement.clientWidth + 0.5).map(e => e.tagName + ':' + (e.textContent || '').slice(0, 60));
out.textContent = JSON.stringify({scroll: document.documentElement.scrollWidth, client:
document.documentElement.clientWidth, tables: document.querySelectorAll('table').length, wide: wide});
document.body.appendChild(out); });</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; CI installs it)")
def test_html_has_no_horizontal_overflow_at_1280_px(full_report, tmp_path):
    def measure(page: Path) -> dict:
        probe = tmp_path / f"probe-{page.parent.name}.html"
        probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
        dom = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                              "--hide-scrollbars", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'p'}",
                              "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                             capture_output=True, text=True, timeout=90)
        return json.loads(dom.stdout.split('<pre id="probe">')[1].split("</pre>")[0].replace("&amp;", "&"))

    got = measure(full_report / "index.html")
    assert got["client"] == 1280 and got["tables"] >= 12, got
    assert got["scroll"] <= got["client"] and not [w for w in got["wide"] if not w.startswith("PRE:")], got
    # the measure catches a page that overflows
    bad = tmp_path / "bad" / "index.html"
    bad.parent.mkdir()
    bad.write_text((full_report / "index.html").read_text().replace(
        "</body>", '<table><tr><td style="white-space:nowrap">' + "x" * 400 + "</td></tr></table></body>"))
    assert measure(bad)["scroll"] > 1280


# -- figures: every text inside the figure, none over another ------------------------------------------------
def text_problems(fig) -> tuple[list[str], list[tuple[str, str]]]:
    """(texts cut by the figure's edge, pairs of texts that overlap), from the extents the renderer draws."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = set()  # tick labels outside the view limits are not drawn
    for ax in fig.axes:
        for axis, limits in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = sorted(limits)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-12 * max(1.0, abs(hi)) <= tick.get_loc() <= hi + 1e-12 * max(1.0, abs(hi)):
                    hidden |= {id(tick.label1), id(tick.label2)}
    boxes = []
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip() or id(text) in hidden:
            continue
        boxes.append((text.get_text(), text.get_window_extent(renderer)))
    page = fig.bbox
    clipped = [t for t, b in boxes if b.x0 < page.x0 - 0.5 or b.y0 < page.y0 - 0.5 or b.x1 > page.x1 + 0.5
               or b.y1 > page.y1 + 0.5]
    overlaps = [(a, b) for i, (a, box_a) in enumerate(boxes) for b, box_b in boxes[i + 1:]
                if box_a.x0 < box_b.x1 and box_b.x0 < box_a.x1 and box_a.y0 < box_b.y1 and box_b.y0 < box_a.y1]
    return clipped, overlaps


@pytest.fixture
def kept_figures(monkeypatch):
    """The figures the plot functions close, kept open for reading back."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = []
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    for fig in kept:
        fig.clf()


def _close_runs(tmp_path: Path, n: int):
    """``n`` runs with nearly equal scores and long names: labels at the points would collide."""
    from bench.results import load

    runs = []
    for i in range(n):
        metrics = {**SCORES, "fid": 12.0 + 0.001 * i, "clip_score": 0.3123 + 0.00001 * i}
        folder = write_run(tmp_path / f"run-{i}-with-a-long-name-{'y' * (10 * (i % 3))}", "tiny",
                           {"weights_seed": i}, suite="smoke", metrics=metrics)
        run = load(folder)
        run.run_dir = str(folder)  # as `bench report` reads it
        runs.append(run)
    return runs


def test_figures_are_not_clipped_and_no_text_overlaps(tmp_path, kept_figures):
    from bench.merge_sweep_record import SweepPoint, SweepRecord
    from bench.plots.merge_curves import plot_merge_curves
    from bench.report import plots
    from bench.report.collect import Latency
    from bench.results import LatencyRecord

    runs = _close_runs(tmp_path, 9)
    plots.plot_fid_clip(runs, tmp_path / "fid-clip")
    plots.plot_precision_recall(runs, tmp_path / "pr")
    records = [Latency(f"l{i}", LatencyRecord(method="sd21", device="NVIDIA H100 80GB HBM3 (device 0)", mean_ms=100.0 + i,
                                              stages_ms={}, peak_memory_mib=None,
                                              data={"method_args": {"guidance": 4.5, "steps": 25 + i}, "dtype": "fp16",
                                                    "weights": "random"})) for i in range(8)]
    plots.plot_latency(records, tmp_path / "latency")
    sweeps = []
    for name in ("fig7a-without-regularisation", "fig7b-with-regularisation"):
        points = [SweepPoint(lam, f"p{lam}", {"fid": 10 + lam, "clip_score": 0.3, "precision": 0.5, "recall": 0.5,
                                              "latency_ms": 100.0}) for lam in (0.0, 0.25, 0.5, 0.75, 1.0)]
        sweeps.append(SweepRecord(a={"source": f"sbv2:weights=models/{name}/model-a-full-finetune"},
                                  b={"source": f"sbv2:weights=models/{name}/model-b-lora"}, suite="coco30k",
                                  points=points, directions={"fid": False}, path=f"sweeps/{name}/sweep.json"))
    drawn = plot_merge_curves(sweeps, tmp_path / "merge", caveat=True)
    assert "latency_ms" not in drawn["panels"] and set(drawn["panels"]) == {"fid", "clip_score", "precision", "recall"}
    assert drawn["ends"]["fig7a-without-regularisation"].startswith("A = sbv2:weights=models/fig7a")
    assert len(kept_figures) == 4
    texts = []
    for fig in kept_figures:
        clipped, overlaps = text_problems(fig)
        assert not clipped and not overlaps, (clipped, overlaps)
        texts.append(" ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))))
    assert all("not comparable to the paper" in " ".join(t.split()) for t in texts)  # the footnote, whole
    assert "A = sbv2:weights=models/fig7b-with-regularisation/model-a-full-finetune" in texts[3].replace("\n", "")


def test_the_text_check_sees_clipping_and_overlap(kept_figures):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_xticks([0, 0.01], ["a long tick label", "another long one"])
    fig.text(0.5, 0.0, "x" * 200, ha="center")
    clipped, overlaps = text_problems(fig)
    assert "x" * 200 in clipped and ("a long tick label", "another long one") in overlaps
    plt.close(fig)
