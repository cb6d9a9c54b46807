"""Pretrained encoder weights: where the file is on this machine, or how to get it.

`weights_source(encoder, weights)` turns what the user asked for into a `WeightsSource`, derived
from smp's registry (`smp.encoders.encoders[name]["pretrained_settings"]`) or timm's pretrained
configs (`tu-` encoders) - never from a table of ours. `find_local` looks for the file without any
network, in this order:

1. the user's file (`--encoder-weights PATH`);
2. the Hugging Face hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else the library default);
3. `$SEGKIT_WEIGHTS_DIR`;
4. the Kaggle input mount (`/kaggle/input`, or `$SEGKIT_KAGGLE_INPUT`).

In the folders of 3 and 4 (searched `_SEARCH_DEPTH` levels deep, skipping Cityscapes' image and
label trees) a file is accepted as, for smp-hub/resnet34.imagenet:
  - a copy of a hub cache: models--smp-hub--resnet34.imagenet/snapshots/<rev>/model.safetensors
  - a folder named after the repo: resnet34.imagenet/model.safetensors (what
    `hf download ... --local-dir resnet34.imagenet` writes); also under its Kaggle slug,
    resnet34-imagenet/, and as a Kaggle Model resnet34-imagenet/<framework>/<variation>/<version>/
  - a single file: resnet34.imagenet.safetensors

`fetch` adds the download (huggingface_hub's own, into its cache, with its progress bar).
Environment variables are read when called, not at import as `huggingface_hub.constants` does,
so a notebook cell (or a test) that sets them later is obeyed; the cache folder is then passed
to huggingface_hub explicitly, so both always look in the same place.
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import (
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub.file_download import repo_folder_name

from segkit.errors import ConfigError, SegkitError, did_you_mean
from segkit.kaggle_env import KAGGLE_INPUT_ENV, kaggle_input_root
from segkit.model_choice import is_pretrained
from segkit.models.zoo import check_encoder, smp_module, timm_module, timm_name

logger = logging.getLogger("segkit")

WEIGHTS_DIR_ENV = "SEGKIT_WEIGHTS_DIR"  # a folder the user put weights in (an attached dataset)
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")  # what a user's weights file may be
# Bounds on the folder search. The deepest expected layout is a Kaggle Model under the newer
# mount, /kaggle/input/models/<owner>/<model>/<framework>/<variation>/<version>/ (depth 6).
# Only directories are followed, never Cityscapes' leftImg8bit/ and gtFine/ trees.
_SEARCH_DEPTH = 6
_MAX_DIRS = 5000
_SKIP_DIRS = {"leftImg8bit", "gtFine"}


class WeightsUnavailable(SegkitError):
    """Pretrained weights are neither on this machine nor downloadable; the message says the fix."""


@dataclass(frozen=True)
class WeightsSource:
    """One pretrained weights file: a file on the Hugging Face hub, or a file of the user's."""

    encoder: str  # smp encoder name, as given: "resnet34", "mit_b0", "tu-convnext_tiny", ...; "" for a whole model
    variant: str  # smp's pretrained_settings key ("imagenet", "ssl"), timm's tag, "file", or "released"
    repo_id: str | None  # Hugging Face repo, e.g. "smp-hub/resnet34.imagenet"; None for a file
    revision: str | None  # the commit smp pins; None = the repo's main branch (timm)
    filename: str  # file inside the repo ("model.safetensors"), or the user file's name
    path: Path | None = None  # the user's file, when one was given
    companions: tuple[str, ...] = ()  # files that must sit beside `filename` (a released model's config.json)

    def describe(self) -> str:
        """One line for logs: "smp-hub/resnet34.imagenet (model.safetensors @ 7a57b34)"."""
        if self.path is not None:
            return str(self.path)
        return f"{self.repo_id} ({self.filename} @ {(self.revision or 'main')[:7]})"

    def what(self) -> str:
        """What was asked for, in words: "pretrained weights 'imagenet' for encoder 'resnet34'"."""
        if self.variant == "released":
            return f"the released model {self.repo_id!r}"
        return f"pretrained weights {self.variant!r} for encoder {self.encoder!r}"

    @property
    def files(self) -> tuple[str, ...]:
        """Every file this source needs, the weights first."""
        return (self.filename, *self.companions)

    def complete(self, path: Path) -> bool:
        """`path` is the weights file and every companion sits beside it."""
        return path.is_file() and all((path.parent / name).is_file() for name in self.companions)


def released_source(
    repo_id: str, companions: tuple[str, ...] = ("config.json",), revision: str | None = None
) -> WeightsSource:
    """A whole model on the hub saved by smp's `save_pretrained`: model.safetensors with its config.json
    (and whatever else must sit beside it, e.g. the preprocessing)."""
    return WeightsSource("", "released", repo_id, revision, "model.safetensors", companions=tuple(companions))


# --- what to fetch --------------------------------------------------------------------------


def weights_source(encoder: str, weights: str) -> WeightsSource:
    """Resolve the pretrained weights the user asked for.

    Args:
        encoder: smp encoder name ("resnet34", "efficientnet-b4", "tu-convnext_tiny", ...).
        weights: "imagenet" (for `tu-` encoders: the tag in the name, else timm's default tag),
            another variant smp lists for the encoder ("ssl", "advprop", ...), or a file path.

    Returns:
        Where the weights come from.

    Raises:
        ConfigError: Unknown encoder or variant, a missing file, an encoder without pretrained
            weights, or "none"/"" (random init is the caller's business, not a weights source).
    """
    weights = weights.strip()
    if not is_pretrained(weights):
        raise ConfigError(
            f"weights_source() got encoder_weights={weights!r}, which means random "
            "initialisation: there is no file to find. Fix: call it only for pretrained weights."
        )
    if weights.endswith(WEIGHT_SUFFIXES) or "/" in weights or os.sep in weights:
        check_encoder(encoder)
        return _file_source(encoder, Path(weights).expanduser())
    if timm_name(encoder) is not None:
        return _timm_source(encoder, weights)
    return _smp_source(encoder, weights)


def _file_source(encoder: str, path: Path) -> WeightsSource:
    """A weights file the user named; it must exist now."""
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.name.endswith(WEIGHT_SUFFIXES))
        raise ConfigError(
            f"--encoder-weights {path} is a folder; expected a weights file "
            f"({', '.join(WEIGHT_SUFFIXES)}). Fix: pass one of {inside or 'its files'}, "
            f"or set {WEIGHTS_DIR_ENV}={path} and pass a variant such as 'imagenet'."
        )
    if not path.is_file():
        raise ConfigError(
            f"weights file {path} does not exist. Fix: check the path (on Kaggle, attached "
            f"files are under {kaggle_input_root()}/), or pass a variant such as 'imagenet'."
        )
    if not path.name.endswith(WEIGHT_SUFFIXES):
        raise ConfigError(f"weights file {path} has an unknown type; expected one of {WEIGHT_SUFFIXES}.")
    return WeightsSource(encoder, "file", None, None, path.name, path.resolve())


def _smp_source(encoder: str, weights: str) -> WeightsSource:
    """A variant from smp's registry: smp-hub/<encoder>.<variant> at the commit smp pins."""
    check_encoder(encoder)
    variants = smp_module().encoders.encoders[encoder].get("pretrained_settings") or {}
    if not variants:
        raise ConfigError(
            f"encoder {encoder!r} has no pretrained weights in smp. "
            "Fix: --encoder-weights none, or pick an encoder with weights."
        )
    if weights not in variants:
        raise ConfigError(
            f"encoder {encoder!r} has no pretrained variant {weights!r}"
            f"{did_you_mean(weights, variants, n=3)}. Its variants: {sorted(variants)} "
            "(or a path to a weights file)."
        )
    settings = variants[weights]
    return WeightsSource(encoder, weights, settings["repo_id"], settings.get("revision"), "model.safetensors")


def _timm_source(encoder: str, weights: str) -> WeightsSource:
    """timm's pretrained config of a `tu-` encoder: its hf_hub_id (and file), at main."""
    check_encoder(encoder)
    model = timm_name(encoder)
    assert model is not None  # _timm_source is only called for tu- encoders
    arch = model.split(".")[0]
    tags = [name.split(".", 1)[1] for name in timm_module().list_pretrained(f"{arch}.*")]
    if not tags:
        raise ConfigError(
            f"timm has no pretrained weights for {arch!r}. Fix: --encoder-weights none, or one "
            f"of the pretrained models{did_you_mean(arch, timm_module().list_models(pretrained=True), n=3)}."
        )
    if weights != "imagenet":
        example = f"tu-{arch}.{weights if weights in tags else tags[0]}"
        raise ConfigError(
            f"got --encoder-weights {weights!r} for {encoder!r}: for 'tu-' encoders the "
            f"pretrained tag goes in the encoder name, with --encoder-weights imagenet, e.g. "
            f"{example}. Tags of {arch}: {tags}."
        )
    tag = model.split(".", 1)[1] if "." in model else None
    if tag is not None and tag not in tags:
        raise ConfigError(
            f"timm model {arch!r} has no pretrained tag {tag!r}{did_you_mean(tag, tags, n=3)}. Its tags: {tags}."
        )
    return _timm_hub_source(encoder, model)


def _timm_hub_source(encoder: str, model: str) -> WeightsSource:
    cfg = timm_module().models.get_pretrained_cfg(model)
    if not cfg.hf_hub_id:
        raise ConfigError(
            f"timm downloads {model} ({cfg.tag}) from {cfg.url or 'no known place'}, not from the "
            "Hugging Face hub, so segkit cannot find or fetch it. Fix: download that file and "
            "pass --encoder-weights PATH, or use an encoder whose weights are on the hub."
        )
    repo_id, _, revision = cfg.hf_hub_id.partition("@")  # timm writes a pinned commit as "@rev"
    # timm asks the hub for model.safetensors (the safe alternative of its pytorch_model.bin
    # default) unless the cfg names a file.
    filename = cfg.hf_hub_filename or "model.safetensors"
    return WeightsSource(encoder, cfg.tag, repo_id, revision or None, filename)


# --- where it is ----------------------------------------------------------------------------


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, from the environment as it is now (see the module docstring)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """True when Hugging Face offline mode is on (now, or when huggingface_hub was imported)."""
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(constants.HF_HUB_OFFLINE) or flag.strip().upper() in ("1", "ON", "YES", "TRUE")


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def _search_folders() -> list[tuple[str, Path | None]]:
    """The folders searched after the hub cache: (label, folder or None when not set)."""
    user_dir = os.environ.get(WEIGHTS_DIR_ENV)
    return [
        (f"${WEIGHTS_DIR_ENV}", Path(user_dir).expanduser() if user_dir else None),
        (f"Kaggle input (${KAGGLE_INPUT_ENV} overrides)", kaggle_input_root()),
    ]


def find_local(source: WeightsSource) -> Path | None:
    """Find the weights file on this machine; never touches the network.

    Args:
        source: From `weights_source`.

    Returns:
        The file, or None. Order: the user's file, the hub cache, `$SEGKIT_WEIGHTS_DIR`, the
        Kaggle input mount (layouts in the module docstring).
    """
    if source.path is not None:
        return source.path if source.path.is_file() else None
    found = _in_hub_cache(source)
    for _, folder in _search_folders():
        if found is None and folder is not None:
            found = _search_folder(folder, source)
    if found is not None:
        logger.info("weights: %s found at %s", source.describe(), found)
    return found


def _in_hub_cache(source: WeightsSource) -> Path | None:
    assert source.repo_id is not None  # only user files have no repo, and they returned early
    cache = hub_cache_dir()
    cached = try_to_load_from_cache(source.repo_id, source.filename, cache_dir=cache, revision=source.revision)
    if isinstance(cached, str) and source.complete(Path(cached)):  # not None, not the "absent" marker
        return Path(cached)
    return _in_hub_layout(cache, source)


def _in_hub_layout(folder: Path, source: WeightsSource) -> Path | None:
    """`folder/models--org--name/snapshots/<rev>/<file>`, the pinned revision preferred."""
    repo_dir = folder / repo_folder_name(repo_id=source.repo_id, repo_type="model")
    files = [p for p in sorted(repo_dir.glob(f"snapshots/*/{source.filename}")) if source.complete(p)]
    if not files:
        return None
    ref = repo_dir / "refs" / (source.revision or "main")
    pinned = ref.read_text().strip() if ref.is_file() else source.revision
    for path in files:
        if path.parent.name == pinned:
            return path
    logger.warning(
        "weights: %s is not at the pinned revision %s in %s; using the snapshot %s",
        source.filename,
        pinned,
        repo_dir,
        files[0].parent.name,
    )
    return files[0]


def _search_folder(root: Path, source: WeightsSource) -> Path | None:
    """Breadth-first search below `root` (bounded in depth and count); the shallowest match."""
    queue, visited = deque([(root, 0)]), 0
    while queue and visited < _MAX_DIRS:
        folder, depth = queue.popleft()
        visited += 1
        found = _match_in(folder, source)
        if found is not None:
            return found
        if depth < _SEARCH_DEPTH:
            queue.extend((folder / name, depth + 1) for name in _subdirs(folder))
    if queue:
        logger.warning("weights: search under %s stopped after %d folders", root, _MAX_DIRS)
    return None


def _match_in(folder: Path, source: WeightsSource) -> Path | None:
    """The weights file in one of the accepted layouts directly inside `folder`, or None."""
    name = source.repo_id.split("/")[-1]  # "resnet34.imagenet"
    candidates = [folder / name / source.filename]
    if not source.companions:  # a single file cannot carry companions
        candidates.append(folder / f"{name}{Path(source.filename).suffix}")
    # Kaggle turns an uploaded folder's name into a slug (resnet34-imagenet) and mounts a
    # Model's files at <model>/<framework>/<variation>/<version>/.
    named = [folder.name] + ([folder.parents[2].name] if len(folder.parents) > 2 else [])
    if _slug(name) in map(_slug, named):
        candidates.append(folder / source.filename)
    found = next((path for path in candidates if source.complete(path)), None)
    return found or _in_hub_layout(folder, source)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _subdirs(path: Path) -> list[str]:
    """Visible subfolders worth searching: not hidden, not a hub repo, not Cityscapes data."""
    try:
        with os.scandir(path) as entries:
            names = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    return sorted(n for n in names if n not in _SKIP_DIRS and not n.startswith("models--"))


# --- get it ---------------------------------------------------------------------------------


def fetch(source: WeightsSource) -> Path:
    """The weights file: found on this machine, else downloaded into the hub cache.

    huggingface_hub bounds each request (`HF_HUB_ETAG_TIMEOUT`, `HF_HUB_DOWNLOAD_TIMEOUT`, 10 s
    by default), but after a failed first request `hf_hub_download` retries with backoff for
    up to minutes. One metadata request first, which it does not retry, makes a machine
    without internet fail within one timeout; there is no retry of ours.

    Args:
        source: From `weights_source`.

    Returns:
        The local file.

    Raises:
        WeightsUnavailable: Not on this machine, and offline mode is on or the download failed.
    """
    found = find_local(source)
    if found is not None:
        return found
    if source.repo_id is None:
        raise WeightsUnavailable(f"weights file {source.path} does not exist any more.")
    if hub_offline():
        reason = "Hugging Face offline mode is on (HF_HUB_OFFLINE=1), so nothing is downloaded"
        raise WeightsUnavailable(_unavailable_message(source, reason))
    try:
        return _download(source)
    # The hub raises its HTTP client's errors (requests, httpx or httpx2, by version; xet's
    # own), so no narrower class covers "cannot download" everywhere; the message names it.
    except Exception as error:  # noqa: BLE001 -- converted to WeightsUnavailable, not swallowed
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        error_name = type(error).__name__
        reason = f"the download from {_hub_endpoint()} failed ({error_name}: {first_line})"
        raise WeightsUnavailable(_unavailable_message(source, reason)) from None


def _download(source: WeightsSource) -> Path:
    url = hf_hub_url(source.repo_id, source.filename, revision=source.revision, endpoint=_hub_endpoint())
    logger.info(
        "weights: downloading %s into %s (timeouts %ss / %ss: HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT)",
        source.describe(),
        hub_cache_dir(),
        constants.HF_HUB_ETAG_TIMEOUT,
        constants.HF_HUB_DOWNLOAD_TIMEOUT,
    )
    get_hf_file_metadata(url, timeout=constants.HF_HUB_ETAG_TIMEOUT)  # fail fast, see fetch()
    paths = [
        hf_hub_download(
            source.repo_id, name, revision=source.revision, cache_dir=hub_cache_dir(), endpoint=_hub_endpoint()
        )
        for name in source.files
    ]
    return Path(paths[0])


def _unavailable_message(source: WeightsSource, reason: str) -> str:
    """What was asked, why it failed, every place searched, and each way to fix it."""
    assert source.repo_id is not None  # a user file is never downloaded
    folder = source.repo_id.split("/")[-1]
    revision = f" --revision {source.revision}" if source.revision else ""
    url = hf_hub_url(source.repo_id, source.filename, revision=source.revision, endpoint=_hub_endpoint())
    released = source.variant == "released"
    given = (
        f"pass the folder: --checkpoint {folder}"
        if released
        else f"pass the file: --encoder-weights {folder}/{source.filename}"
    )
    last = (
        "evaluate or fine-tune from a checkpoint of your own instead (best_model.pth)"
        if released
        else "Train from random initialisation, knowingly: --encoder-weights none (expect a clearly lower mIoU for "
        "the same training time)"
    )
    return (
        f"{source.what()} {'is' if released else 'are'} not on this machine and cannot be downloaded: {reason}.\n"
        f"Wanted: {source.describe()}{' with ' + ', '.join(source.companions) if source.companions else ''}\n"
        f"Searched:\n{_searched_text(source)}\n"
        "Fix, one of:\n"
        f"  1. On a machine with internet, download the file{'s' if source.companions else ''}:\n"
        f"       hf download {source.repo_id} {' '.join(source.files)}{revision} --local-dir {folder}\n"
        f"     (or save {url} as {folder}/{source.filename}); then make it visible here:\n"
        f"     - upload the folder {folder}/ as a Kaggle Dataset (or a Kaggle Model) and add it "
        "to the kernel: it appears under /kaggle/input/, where segkit looks;\n"
        f"     - or put the folder in a directory and set {WEIGHTS_DIR_ENV}=<that directory>;\n"
        f"     - or {given}\n"
        f"  2. {_online_fix()}\n"
        f"  3. {last[0].upper()}{last[1:]}."
    )


def _searched_text(source: WeightsSource) -> str:
    name = source.repo_id.split("/")[-1]
    lines = [f"  Hugging Face cache (HF_HUB_CACHE / HF_HOME): {hub_cache_dir()}"]
    for label, folder in _search_folders():
        state = "not set" if folder is None else f"{folder}"
        state += "" if folder is None or folder.is_dir() else " (does not exist)"
        lines.append(f"  {label}: {state}")
    single = "" if source.companions else f"{name}{Path(source.filename).suffix} "
    lines.append(
        f"  (folders {_SEARCH_DEPTH} levels deep, for {name}/{source.filename}, "
        f"{single}or a hub-cache copy {repo_folder_name(repo_id=source.repo_id, repo_type='model')}/)"
    )
    return "\n".join(lines)


def _online_fix() -> str:
    if hub_offline():
        return (
            "Allow the download: unset HF_HUB_OFFLINE (and TRANSFORMERS_OFFLINE) with the "
            "internet on (Kaggle editor: Settings > Internet); the file then goes into the "
            "Hugging Face cache."
        )
    return (
        "Turn the kernel's Internet on (Kaggle editor: Settings > Internet; the account must be "
        "phone-verified) and run again; the file is then downloaded into the Hugging Face cache."
    )


def reachability(encoder: str, weights: str) -> tuple[bool, str]:
    """Whether training will get these weights; never downloads (for preflight checks).

    Args:
        encoder: smp encoder name.
        weights: As for `weights_source`.

    Returns:
        (True, "found: <path>"), (True, "not on disk; will download ...") when not offline,
        or (False, the fix text of the WeightsUnavailable that `fetch` would raise).

    Raises:
        ConfigError: As `weights_source`.
    """
    source = weights_source(encoder, weights)
    path = find_local(source)
    if path is not None:
        return True, f"found: {path}"
    if source.repo_id is None:
        return False, f"weights file {source.path} does not exist"
    if not hub_offline():
        return True, f"not on disk; will download {source.describe()} from {_hub_endpoint()}"
    reason = "Hugging Face offline mode is on (HF_HUB_OFFLINE=1), so nothing is downloaded"
    return False, _unavailable_message(source, reason)
