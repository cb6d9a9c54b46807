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

from segkit.config import BundleConfig, PreflightConfig
from segkit.kaggle.bundling import WHEEL_DATASET, bundle, load_params
from segkit.kaggle.machine import format_preflight, preflight
from segkit.reflect import add_config_flags, config_from_args


def register_cli(sub: Any) -> None:
    """`segkit kaggle preflight` and `segkit kaggle bundle`: their flags are PreflightConfig's and BundleConfig's."""
    p = sub.add_parser(
        "kaggle",
        help="Kaggle: environment preflight and kernel bundle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ksub = p.add_subparsers(dest="kaggle_command", required=True, metavar="{preflight,bundle}")
    pre = ksub.add_parser(
        "preflight", help="GPU/torch/CUDA, CPU, RAM, disk, session time, pretrained weights; problems with fixes"
    )
    add_config_flags(pre, PreflightConfig)
    pre.set_defaults(func=cmd_preflight)
    b = ksub.add_parser("bundle", help="write a kernel push folder + the wheel dataset folder (segkit, smp)")
    add_config_flags(b, BundleConfig)
    b.set_defaults(func=cmd_bundle)


def cmd_preflight(args: argparse.Namespace) -> int:
    """Exit 0 when nothing is wrong, 1 when a problem was found (printed with its fix)."""
    cfg, explicit = config_from_args(PreflightConfig, args)
    asked = {name: getattr(cfg, name) for name in ("preset", "encoder", "encoder_weights") if name in explicit}
    report = preflight(**asked)
    print(json.dumps(report, indent=2) if cfg.json else format_preflight(report))
    return 1 if report["problems"] else 0


def cmd_bundle(args: argparse.Namespace) -> int:
    """Write the bundle and print the kaggle commands that upload it."""
    cfg, _ = config_from_args(BundleConfig, args)
    params = load_params(Path(cfg.params)) if cfg.params else {}
    out = bundle(
        Path(cfg.out),
        params,
        cfg.title,
        list(cfg.datasets),
        cfg.resume_from or None,
        cfg.username or None,
        cfg.gpu,
        cfg.internet,
        cfg.machine_shape,
        Path(cfg.notebook) if cfg.notebook else None,
        Path(cfg.wheels) if cfg.wheels else None,
    )
    meta = json.loads((out / "kernel" / "kernel-metadata.json").read_text())
    print(
        f"wrote {out / 'kernel'} (kernel {meta['id']}) and {out / WHEEL_DATASET}. Next:\n"
        f"  kaggle datasets create -p {out / WHEEL_DATASET}   (later: kaggle datasets version -p "
        f"{out / WHEEL_DATASET} -m 'segkit update')\n"
        f"  kaggle kernels push -p {out / 'kernel'}\n"
        f"  kaggle kernels status {meta['id']}\n"
        f"  kaggle kernels output {meta['id']} -p runs/kaggle-output"
    )
    return 0
