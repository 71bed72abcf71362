"""``bench data``: fetch the data a suite needs (COCO 2014, the HPSv2 prompts)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.base import function_command

DATASETS = ("coco", "hpsv2")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", choices=DATASETS, help="coco: MS-COCO 2014 captions and val2014 images (6.9 GB); "
                                                     "hpsv2: the HPSv2 benchmark prompt files")
    p.add_argument("--root", default=None, metavar="DIR",
                   help="destination folder (coco default: $BENCH_COCO_ROOT, else <cache>/coco; hpsv2 default: "
                        "the Hugging Face cache)")
    p.add_argument("--base-url", default=None, metavar="URL",
                   help="coco: fetch the zips from this mirror (URL/<zip name>) instead of images.cocodataset.org")
    p.add_argument("--annotations-only", action="store_true", help="coco: only the captions (enough to generate)")
    p.add_argument("--no-unpack", dest="unpack", action="store_false",
                   help="coco: keep the zips packed (the coco30k suite reads them directly)")
    p.add_argument("--keep-zips", action="store_true", help="coco: keep the zips after unpacking")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    if args.dataset == "coco":
        return _coco(args)
    return _hpsv2(args)


def _coco(args: argparse.Namespace) -> int:
    from bench.download import COCO_2014_FILES, fetch_all
    from bench.suites.coco import default_coco_root

    root = Path(args.root).expanduser() if args.root else default_coco_root()
    files = COCO_2014_FILES[:1] if args.annotations_only else COCO_2014_FILES
    command = f"python -m bench data coco --root {root}"
    done = fetch_all(files, root, base_url=args.base_url, unpack_archives=args.unpack, keep_archives=args.keep_zips,
                     progress=args.progress, command=command)
    print(f"COCO 2014 ready in {root}: " + ", ".join(str(p.relative_to(root)) for p in done))
    print(f"use it with: python -m bench run --suite coco30k --data-root {root} ... (or export BENCH_COCO_ROOT={root})")
    return 0


def _hpsv2(args: argparse.Namespace) -> int:
    import shutil

    from bench.suites.hpsv2 import STYLES, download_prompt_files

    folder = download_prompt_files()
    if args.root:
        dest = Path(args.root).expanduser()
        dest.mkdir(parents=True, exist_ok=True)
        for style in STYLES:
            shutil.copyfile(folder / f"{style}.json", dest / f"{style}.json")
        folder = dest
    print(f"HPSv2 prompts ready in {folder}; use them with: python -m bench run --suite hpsv2 --prompts {folder} ...")
    return 0


DataCommand = function_command(
    "download the data of a suite (coco, hpsv2)",
    add_arguments, run,
    description=("Download, verify and unpack a suite's data. Interrupted downloads resume when the "
                 "command is run again; files fetched by hand into the folder are verified and "
                 "unpacked."),
)
