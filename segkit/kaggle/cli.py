"""`segkit kaggle preflight` and `segkit kaggle bundle`.

In a kernel: data is found under /kaggle/input, outputs go to /kaggle/working, the time budget
defaults to what keeps a run inside the 12-hour session, and a previous kernel's output attached
as input (kernel_sources) is resumed from its last.pth.

On your machine: `segkit kaggle bundle --out runs/kaggle-bundle` writes everything a push needs
(see kaggle/README.md): the 02_train notebook with parameters injected, kernel-metadata.json,
and a dataset folder with the wheels of segkit and segmentation_models_pytorch (Kaggle's image has
the rest), so the kernel installs segkit without internet.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from segkit.kaggle.bundling import (
    DEFAULT_MACHINE_SHAPE,
    DEFAULT_TITLE,
    WHEEL_DATASET,
    bundle,
    load_params,
)
from segkit.kaggle.machine import format_preflight, preflight


def register_cli(sub: Any) -> None:
    """`segkit kaggle preflight` and `segkit kaggle bundle --out DIR ...`."""
    p = sub.add_parser("kaggle", help="Kaggle: environment preflight and kernel bundle", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ksub = p.add_subparsers(dest="kaggle_command", required=True, metavar="{preflight,bundle}")
    pre = ksub.add_parser("preflight", help="GPU/torch/CUDA, CPU, RAM, disk, session time, pretrained weights; "
                         "problems with fixes")
    pre.add_argument("--json", action="store_true", help="print the report as JSON")
    pre.add_argument("--preset", help="check the pretrained encoder weights of this preset (segkit presets)")
    pre.add_argument("--encoder", help="check this encoder's pretrained weights (overrides the preset's)")
    pre.add_argument("--encoder-weights", metavar="W",
                     help="imagenet (default), another variant, or a weights file (overrides the preset's)")
    pre.set_defaults(func=cmd_preflight)
    b = ksub.add_parser("bundle", help="write a kernel push folder + the wheel dataset folder (segkit, smp)")
    b.add_argument("--out", type=Path, default=Path("runs/kaggle-bundle"), help="output folder (default: runs/kaggle-bundle)")
    b.add_argument("--params", type=Path, help="notebook parameters, .json or .yaml (names of 02_train's parameters cell)")
    b.add_argument("--title", default=DEFAULT_TITLE, help=f"kernel title, 5-50 characters (default: {DEFAULT_TITLE!r})")
    b.add_argument("--datasets", nargs="*", default=[], metavar="OWNER/SLUG", help="Cityscapes datasets to attach")
    b.add_argument("--resume-from", metavar="OWNER/KERNEL", help="chain: attach this kernel's output and resume it")
    b.add_argument("--username", help="Kaggle username (default: $KAGGLE_USERNAME, else a legacy ~/.kaggle/kaggle.json; an API token does not name its user)")
    b.add_argument("--no-gpu", dest="enable_gpu", action="store_false", help="CPU kernel")
    b.add_argument("--internet", dest="enable_internet", action="store_true", help="internet on in the kernel")
    b.add_argument("--machine-shape", default=DEFAULT_MACHINE_SHAPE, help=f"default: {DEFAULT_MACHINE_SHAPE} (T4 x2)")
    b.add_argument("--notebook", type=Path, help="notebook to bundle (default: notebooks/02_train.ipynb)")
    b.add_argument("--wheels", type=Path, metavar="DIR", help="folder holding the segmentation_models_pytorch "
                   "wheel (default: pip download it, which needs internet)")
    b.set_defaults(func=cmd_bundle)


def cmd_preflight(args: argparse.Namespace) -> int:
    """Exit 0 when nothing is wrong, 1 when a problem was found (printed with its fix)."""
    report = preflight(args.encoder, args.encoder_weights, args.preset)
    print(json.dumps(report, indent=2) if args.json else format_preflight(report))
    return 1 if report["problems"] else 0


def cmd_bundle(args: argparse.Namespace) -> int:
    """Write the bundle and print the kaggle commands that upload it."""
    params = load_params(args.params) if args.params else {}
    out = bundle(args.out, params, args.title, args.datasets, args.resume_from, args.username,
                 args.enable_gpu, args.enable_internet, args.machine_shape, args.notebook, args.wheels)
    meta = json.loads((out / "kernel" / "kernel-metadata.json").read_text())
    print(f"wrote {out / 'kernel'} (kernel {meta['id']}) and {out / WHEEL_DATASET}. Next:\n"
          f"  kaggle datasets create -p {out / WHEEL_DATASET}   (later: kaggle datasets version -p "
          f"{out / WHEEL_DATASET} -m 'segkit update')\n"
          f"  kaggle kernels push -p {out / 'kernel'}\n"
          f"  kaggle kernels status {meta['id']}\n"
          f"  kaggle kernels output {meta['id']} -p runs/kaggle-output")
    return 0
