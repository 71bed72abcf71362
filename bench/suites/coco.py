"""``coco30k``: the zero-shot MS-COCO 2014 benchmark (FID-30K, CLIP score, precision/recall, density/coverage).

Data: a COCO root folder given by ``--data-root`` (suite option ``data_root``), else ``$BENCH_COCO_ROOT``,
else ``<cache>/coco`` (where ``python -m bench data coco`` puts it). It holds

* ``annotations/captions_val2014.json`` or the official ``annotations_trainval2014.zip``, and
* ``val2014/`` (the 40,504 validation images) or the official ``val2014.zip``.

Protocol profile (option ``profile``, :mod:`bench.profiles`): ``sbv2-release`` by default; it picks the prompt
list, the crop rounding and the metrics' options, and decides what "comparable" means.

Prompts (option ``prompts``, default: the profile's list): the first ``num_prompts`` (30,000) of a named list
(``sbv2``, ``dmd2``: shipped with the package, :mod:`bench.suites.prompt_lists`), of the ``hash`` selection, or
a whole prompt file (``--prompts FILE``: the SBv2 release's JSON format, a JSON list of strings, or one caption
per line).

The ``hash`` selection (rule v1): captions are grouped by image; a caption's text is stripped and its runs of
white space collapsed to one space; empty captions are dropped. Images are ordered by the BLAKE2b-64 digest
of ``"<prompt_seed>:image:<image id>"`` and the first ``num_prompts`` (30,000) are kept, in that order, so any
``--limit N`` is the first N of the same list. For each kept image, its captions are sorted by annotation id
and the one at position ``digest("<prompt_seed>:caption:<image id>") mod count`` is used. The rule uses only
hashlib, so it gives the same list on every machine and library version.

Reference set: every ``*.jpg`` in val2014 (from the folder or the zip), sorted by name; its features are cached
in the cache directory, keyed by the names and sizes of the files. Generated and reference images go through
the same transform: centre crop (offset rounded as the profile says), Lanczos resize to 256 x 256.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.cache_dir import cache_dir
from bench.errors import BenchError
from bench.metrics.preprocess import preprocess_options
from bench.options import Option
from bench.suites.base import PromptItem, ReferenceSet, decode_image, files_fingerprint
from bench.suites.profile_suite import ProfiledSuite
from bench.suites.prompt_lists import HASH_LIST, LIST_NAMES, named_list, prompts_digest, read_prompt_file

COCO_ROOT_ENV = "BENCH_COCO_ROOT"
ANNOTATION_FILE = "annotations/captions_val2014.json"
ANNOTATION_ZIP = "annotations_trainval2014.zip"
IMAGES_DIR = "val2014"
IMAGES_ZIP = "val2014.zip"
PROTOCOL_PROMPTS = 30_000
PROTOCOL_REFERENCE_IMAGES = 40_504
SELECTION_RULE = "v1"
FETCH_HINT = "download it with `python -m bench data coco --root DIR`"
REFERENCE_HINT = ("replace it with the original from val2014.zip (`python -m bench data coco --root DIR` fetches it) "
                  "and run the command again")


def default_coco_root() -> Path:
    """``$BENCH_COCO_ROOT``, else ``<cache>/coco``."""
    env = os.environ.get(COCO_ROOT_ENV)
    return Path(env).expanduser() if env else cache_dir() / "coco"


def normalize_caption(text: Any) -> str:
    """Strip a caption and collapse its runs of white space."""
    return " ".join(str(text).split())


def _rank_key(seed: int, *parts: Any) -> bytes:
    return hashlib.blake2b(":".join([str(int(seed)), *map(str, parts)]).encode(), digest_size=8).digest()


def select_captions(annotation: Any, n: int, seed: int = 0, source: str = "the annotation file") -> list[tuple[int, str]]:
    """``n`` (image id, caption) pairs from a COCO captions annotation, one caption per image (rule v1)."""
    anns = annotation.get("annotations") if isinstance(annotation, dict) else None
    by_image: dict[int, list[tuple[int, str]]] = {}
    for k, ann in enumerate(anns if isinstance(anns, list) else []):
        if not isinstance(ann, dict) or "image_id" not in ann:
            continue
        text = normalize_caption(ann.get("caption") or "")
        if text:
            by_image.setdefault(int(ann["image_id"]), []).append((int(ann.get("id", k)), text))
    if not by_image:
        raise BenchError(f"{source} holds no captions (no 'annotations' entries with a 'caption'); it must be "
                         f"COCO's captions_val2014.json: {FETCH_HINT}")
    if n > len(by_image):
        raise BenchError(f"{source} has captions for {len(by_image)} images, fewer than num_prompts={n} (one caption "
                         f"per image); pass --suite-args num_prompts=N with N <= {len(by_image)} (--limit only "
                         "shortens the selected list), or use the full captions_val2014.json")
    order = sorted(by_image, key=lambda image_id: _rank_key(seed, "image", image_id))[:n]
    out = []
    for image_id in order:
        captions = sorted(by_image[image_id])
        pick = int.from_bytes(_rank_key(seed, "caption", image_id), "little") % len(captions)
        out.append((image_id, captions[pick][1]))
    return out


class CocoData:
    """A COCO 2014 root: the captions annotation and the val2014 images, extracted or as the official zips."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def _where(self) -> str:
        return (f"a COCO root must hold {ANNOTATION_FILE} (or {ANNOTATION_ZIP}) and {IMAGES_DIR}/ (or {IMAGES_ZIP}); "
                f"{FETCH_HINT}, or point --data-root / ${COCO_ROOT_ENV} at it")

    def check_root(self) -> None:
        if not self.root.exists():
            raise BenchError(f"COCO root {self.root} does not exist; {self._where()}")
        if not self.root.is_dir():
            raise BenchError(f"COCO root {self.root} is not a folder; {self._where()}")

    def annotation_source(self) -> str:
        self.check_root()
        if (self.root / ANNOTATION_FILE).is_file():
            return str(self.root / ANNOTATION_FILE)
        if (self.root / ANNOTATION_ZIP).is_file():
            return f"{self.root / ANNOTATION_ZIP}:{ANNOTATION_FILE}"
        raise BenchError(f"COCO root {self.root} has no {ANNOTATION_FILE} (nor {ANNOTATION_ZIP}); {self._where()}")

    def read_annotation(self) -> tuple[Any, str]:
        """The parsed captions annotation and a description of where it came from."""
        source = self.annotation_source()
        try:
            if (self.root / ANNOTATION_FILE).is_file():
                raw = (self.root / ANNOTATION_FILE).read_bytes()
            else:
                with zipfile.ZipFile(self.root / ANNOTATION_ZIP) as zf:
                    try:
                        raw = zf.read(ANNOTATION_FILE)
                    except KeyError:
                        raise BenchError(f"{self.root / ANNOTATION_ZIP} has no member {ANNOTATION_FILE}; "
                                         f"{FETCH_HINT}") from None
            return json.loads(raw), source
        except (OSError, zipfile.BadZipFile) as exc:
            raise BenchError(f"cannot read {source} ({exc}); {FETCH_HINT}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BenchError(f"{source} is not valid JSON ({exc}); the file is damaged: {FETCH_HINT}") from exc

    def images_source(self) -> Path:
        self.check_root()
        if (self.root / IMAGES_DIR).is_dir():
            return self.root / IMAGES_DIR
        if (self.root / IMAGES_ZIP).is_file():
            return self.root / IMAGES_ZIP
        raise BenchError(f"COCO root {self.root} has no {IMAGES_DIR}/ folder (nor {IMAGES_ZIP}) with the reference "
                         f"images; {self._where()}")

    def reference_set(self) -> ReferenceSet:
        """Every val2014 JPEG, sorted by name."""
        source = self.images_source()
        if source.is_dir():
            names = sorted(e.name for e in os.scandir(source)
                           if e.name.lower().endswith((".jpg", ".jpeg")) and e.is_file())
            folder = source
            fingerprint = files_fingerprint([folder / n for n in names], "reference image")

            def load(i: int) -> Any:
                return decode_image(folder / names[i], str(folder / names[i]), "reference image", REFERENCE_HINT)

        else:
            try:
                with zipfile.ZipFile(source) as zf:
                    infos = sorted((i for i in zf.infolist() if not i.is_dir()
                                    and i.filename.lower().endswith((".jpg", ".jpeg"))), key=lambda i: i.filename)
            except (OSError, zipfile.BadZipFile) as exc:
                raise BenchError(f"{source} is not a readable zip ({exc}); {FETCH_HINT}") from exc
            h = hashlib.sha256()
            for info in infos:  # the CRC-32 of each member says its content
                h.update(f"{Path(info.filename).name}:{info.file_size}:{info.CRC}\n".encode())
            fingerprint = h.hexdigest()[:16]
            names = [i.filename for i in infos]
            local = threading.local()

            def load(i: int) -> Any:
                label = f"{source}:{names[i]}"
                try:
                    zf = getattr(local, "zf", None)
                    if zf is None:
                        zf = local.zf = zipfile.ZipFile(source)
                    data = zf.read(names[i])
                except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
                    raise BenchError(f"reference image {label} is truncated or unreadable ({exc}); val2014.zip is "
                                     f"damaged: delete it and {FETCH_HINT}") from exc
                return decode_image(data, label, "reference image", f"val2014.zip is damaged: delete it and "
                                    f"{FETCH_HINT}")

        if not names:
            raise BenchError(f"{source} holds no .jpg images; {self._where()}")
        return ReferenceSet(names, load, fingerprint)


class Coco30kSuite(ProfiledSuite):
    """MS-COCO 2014 validation: 30,000 captions, reference = all 40,504 val2014 images."""

    name = "coco30k"
    options = {
        **ProfiledSuite.options,
        "data_root": Option(None, str, help=f"COCO root (default: ${COCO_ROOT_ENV}, else <cache>/coco)"),
        "prompts": Option(None, str, help=f"prompt list ({', '.join(LIST_NAMES)}; default: the profile's) or a "
                                          "file: the SBv2 release's dataset.json, a JSON list, or one per line"),
        "num_prompts": Option(PROTOCOL_PROMPTS, int, help="prompts taken from the start of the list", minimum=1),
        "prompt_seed": Option(0, int, help="seed of the hash selection", minimum=0),
        **preprocess_options(crop_rounding=None),
    }
    location_options = ("data_root", "prompts")
    default_metrics = ("fid", "clip_score", "precision_recall", "density_coverage")
    image_format = "png"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.args["num_prompts"] < 1:
            raise BenchError(f"suite coco30k: num_prompts must be at least 1, got {self.args['num_prompts']}")
        self.data = CocoData(self.args["data_root"] or default_coco_root())
        self._items: list[PromptItem] | None = None
        self._source = ""
        self._reference: ReferenceSet | None = None

    def prompt_list(self) -> str:
        """The named list in use, or "file"."""
        given = self.args["prompts"]
        if not given:
            return self.profile.prompts
        return given if given in LIST_NAMES else "file"

    def prompts(self) -> list[PromptItem]:
        if self._items is None:
            which, n = self.prompt_list(), self.args["num_prompts"]
            if which == "file":
                texts = read_prompt_file(self.args["prompts"])
                self._source = "file"
            elif which == HASH_LIST:
                annotation, where = self.data.read_annotation()
                pairs = select_captions(annotation, n, self.args["prompt_seed"], where)
                texts = [caption for _, caption in pairs]
                self._source = f"captions_val2014.json, selection rule {SELECTION_RULE}"
            else:
                full = named_list(which)
                if n > len(full):
                    raise BenchError(f"prompt list {which!r} has {len(full)} prompts, fewer than num_prompts={n}; "
                                     f"pass --suite-args num_prompts=N with N <= {len(full)}")
                texts = full[:n]
                self._source = f"named list {which!r}, first {n} in file order"
            self._items = [PromptItem(i, t) for i, t in enumerate(texts)]
        return self._items

    def location_args(self) -> dict[str, Any]:
        prompts = self.args["prompts"]
        if prompts and prompts not in LIST_NAMES:
            prompts = str(Path(prompts).expanduser())
        return {"data_root": str(self.data.root), "prompts": prompts}

    def check_data(self, needs_reference: bool) -> None:
        self.prompts()
        if needs_reference:
            self.reference_set()

    def reference_set(self) -> ReferenceSet:
        if self._reference is None:
            self._reference = self.data.reference_set()
        return self._reference

    def comparability_issues(self, metric_overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
        issues = self.profile_deviations(metric_overrides or {})
        texts = [it.prompt for it in self.prompts()]
        want = named_list(self.profile.prompts)[: self.profile.num_prompts]
        if texts != want[: len(texts)]:
            issues.append(f"prompts: {self._source} (sha256 {prompts_digest(texts)[:12]}) instead of the "
                          f"{self.profile.name} profile's list {self.profile.prompts!r} (sha256 "
                          f"{prompts_digest(want)[:12]})")
        if len(texts) != PROTOCOL_PROMPTS:
            issues.append(f"{len(texts)} prompts instead of the protocol's {PROTOCOL_PROMPTS}")
        try:
            refs = len(self.reference_set())
        except BenchError:
            refs = None
        if refs is not None and refs != PROTOCOL_REFERENCE_IMAGES:
            issues.append(f"{refs} reference images instead of all {PROTOCOL_REFERENCE_IMAGES} of val2014")
        return issues

    def protocol(self) -> dict[str, Any]:
        items = self.prompts()
        digest = prompts_digest([it.prompt for it in items])
        options = self.identity_args()
        which = self.prompt_list()
        if which == "file":
            options = {k: v for k, v in options.items() if k not in ("num_prompts", "prompt_seed")}
        elif which != HASH_LIST:
            options = {k: v for k, v in options.items() if k != "prompt_seed"}
        return {**super().protocol(), "options": options, "prompt_list": which, "prompt_source": self._source,
                "prompts_sha256": digest,
                "reference": f"all *.jpg of {IMAGES_DIR} (protocol: {PROTOCOL_REFERENCE_IMAGES})"}
