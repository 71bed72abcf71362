"""Write the whole report: every paper table (Markdown, LaTeX, CSV), the other runs, figures, image grids,
interpolation grids and ``index.html``, from the run directories, sweeps, latency records and ``bench
interpolate`` folders found under the given paths."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.report.collect import FIRST, Found, Interpolation, collect
from bench.report.data import paper
from bench.report.match import match
from bench.report.tables import build_view, own_view, write_view


@dataclass
class Written:
    out: Path
    files: list[Path] = field(default_factory=list)
    matched: dict[str, list[str]] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        rows = sum(len(v) for v in self.matched.values())
        return (f"report: {len(self.files)} files in {self.out} (open {self.out / 'index.html'}); "
                f"{rows} run(s) matched paper rows, {len(self.unmatched)} other run(s)"
                + (f"; {len(self.warnings)} skipped (see the warnings above)" if self.warnings else ""))


def _caveat_for_sweeps(found: Found) -> bool:
    """Whether any sweep point's run has weights other than ``pretrained`` (or cannot be told)."""
    weights = {str(Path(r.run_dir).resolve()): r.weights for r in found.runs}
    return any(weights.get(str(rec.run_path(p).resolve()), "unknown") != "pretrained"
               for rec in found.sweeps for p in rec.points)


def interpolation_text(item: Interpolation) -> str:
    """One paragraph that says what an interpolation grid shows (the grid itself is labelled too)."""
    r = item.record
    ends = (f"noise of samples 0 and 1 of each seed, prompt {r.get('prompt')!r}" if r.get("mode") == "noise" else
            f"A = {r.get('prompt')!r}, B = {r.get('prompt_b')!r}, noise of sample 0 of each seed")
    warning = "" if r.get("weights") == "pretrained" else f" Weights: {r.get('weights')}: not the published model."
    return (f"{item.folder}: {r.get('method')} {r.get('method_args') or ''}, {r.get('interp')} of the "
            f"{'input noise' if r.get('mode') == 'noise' else 'prompt embedding'} ({ends}); rows: seeds "
            f"{', '.join(str(s) for s in r.get('seeds', []))}; columns: t = "
            f"{', '.join(f'{t:.2f}' for t in r.get('t', []))}.{warning}")


def write_report(paths: Sequence[str | Path], out: str | Path, mapping: Mapping[str, list[Path]] | None = None,
                 tables: Sequence[str] | None = None, grid_samples: int = 4) -> Written:
    """Read everything under ``paths`` and write the report into ``out``; :class:`Written` says what it wrote."""
    from bench.report import grids, plots
    from bench.report.html import Figure, Page, write_html

    found = collect(paths)
    if found.empty():
        where = ", ".join(str(p) for p in paths)
        raise BenchError(f"no run, sweep or latency record found in {where}; run one first: {FIRST}")
    the_paper = paper()
    matches = match(the_paper, found, mapping)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = Written(out, warnings=list(found.warnings), unmatched=[r.run_dir for r in matches.unmatched],
                      matched={m: [r.run_dir for r in rs] for m, rs in matches.runs.items()})
    views = [build_view(the_paper, the_paper.table(t), matches) for t in (tables or [t.id for t in the_paper.tables])]
    for view in views:
        written.files += write_view(view, out, view.table.id)
    own = own_view(matches.unmatched) if matches.unmatched else None
    if own is not None:
        written.files += write_view(own, out, "own-runs")

    figures: list[Figure] = []
    if found.sweeps:
        from bench.plots.merge_curves import ends, plot_merge_curves, sweep_label

        drawn = plot_merge_curves(found.sweeps, out / "merge-curves", caveat=_caveat_for_sweeps(found))
        written.files += [Path(f) for f in drawn["files"]]
        figures.append(Figure("Merge curves (Figs. 3 and 7)", out / "merge-curves.png",
                              f"{len(found.sweeps)} sweep(s), lambda = 1 is A, 0 is B: "
                              + "; ".join(f"{sweep_label(s)} ({s.path}): {ends(s)}" for s in found.sweeps)))
    else:
        figures.append(Figure("Merge curves (Figs. 3 and 7)", None, "No sweep found (python -m bench sweep-merge)."))
    for name, title, fn, keys in (("fid-clip", "FID against CLIP score", plots.plot_fid_clip, ("fid", "clip_score")),
                                  ("precision-recall", "Precision against recall", plots.plot_precision_recall,
                                   ("precision", "recall"))):
        runs = [r for r in found.runs if all(k in r.metrics for k in keys)]
        if runs:
            written.files += fn(runs, out / name)
            figures.append(Figure(title, out / f"{name}.png", f"{len(runs)} run(s)"))
        else:
            figures.append(Figure(title, None, f"No run has {' and '.join(keys)}."))
    if found.latency:
        written.files += plots.plot_latency(found.latency, out / "latency")
        figures.append(Figure("Latency and throughput (Table 8)", out / "latency.png",
                              f"{len(found.latency)} `bench latency` record(s)"))
    else:
        figures.append(Figure("Latency and throughput (Table 8)", None,
                              "No `bench latency` record found (python -m bench latency --method ...)."))

    grid_figs = []
    for name, title, fn in (("grid-prompts", "Same prompts and noise across methods (Figs. 5 and 16)",
                             grids.prompt_grid),
                            ("grid-seeds", "One prompt across seeds (Figs. 6 and 17)", grids.seed_grid)):
        path, text = fn(found.runs, out / f"{name}.png", grid_samples)
        if path is not None:
            written.files.append(path)
        grid_figs.append(Figure(title, path, text))

    interp_figs = []
    for k, item in enumerate(found.interpolations, 1):
        target = out / f"interpolation-{k}.png"
        shutil.copyfile(item.grid, target)
        written.files.append(target)
        mode = "noise" if item.record.get("mode") == "noise" else "prompt"
        interp_figs.append(Figure(f"Interpolation {k}: {item.record.get('method')}, {mode} "
                                  f"({'Fig. 13' if mode == 'noise' else 'Fig. 14'})", target, interpolation_text(item)))
    page = Page(notice=the_paper.notice, tables=views, own=own, figures=figures, grids=grid_figs, runs=found.runs,
                latency=found.latency, warnings=found.warnings, interpolations=interp_figs)
    written.files.append(write_html(page, out))
    return written
