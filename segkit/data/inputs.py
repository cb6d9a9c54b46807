"""What `segkit predict` is given, one file at a time: photos as people take them, and image pairs.

Each file is read by the one photo reader (`images.read_photo`: EXIF orientation applied, odd
modes converted or refused). A file that cannot be read is named in the log and counted; the rest
of the folder is still predicted, and the command then fails with the count (exit status 2).

Image pairs (photo left, Cityscapes colour mask right: Kaggle's Cityscapes Image Pairs) are told
apart from photos three ways, never by guessing alone (`pairs`, PredictConfig's field):

- on: every file is a pair; its left half is predicted (the prediction has the half's size);
- off: every file is predicted whole;
- auto: a file whose content is a pair (`pairs.pair_problem`: the right half is a colour mask,
  the left half is not) has its left half predicted when the checkpoint was trained on pairs;
  given to a checkpoint trained on photos, such a file fails with the flag that decides. Any other
  file is predicted whole.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from segkit.data.images import read_photo
from segkit.data.pairs import pair_problem, split_pair
from segkit.errors import DataError

logger = logging.getLogger("segkit")
_SHOW = 3  # failed files named in the final message


class PredictInputs:
    """Reads `segkit predict`'s files, decides what is predicted of each, and counts the failures.

    Args:
        pairs: auto, on or off (PredictConfig.pairs).
        trained_on_pairs: whether the checkpoint's model learned on image pairs (`pairs.trained_on_pairs`).
    """

    def __init__(self, pairs: str = "auto", trained_on_pairs: bool = False) -> None:
        self.pairs, self.trained_on_pairs = pairs, trained_on_pairs
        self.failed: list[tuple[Path, str]] = []
        self.halves = 0  # files predicted on their photo half

    def read(self, path: Path) -> np.ndarray | None:
        """The (H, W, 3) uint8 RGB to predict for `path`, or None when it cannot be (logged, counted)."""
        try:
            return self._photo(read_photo(path), Path(path))
        except DataError as err:
            logger.error("%s", err)
            self.failed.append((Path(path), str(err)))
            return None

    def _photo(self, image: np.ndarray, path: Path) -> np.ndarray:
        if self.pairs == "off":
            return image
        if self.pairs == "auto" and pair_problem(image):
            return image  # not a pair: a photo, predicted whole
        if self.pairs == "auto" and not self.trained_on_pairs:
            h, w = image.shape[:2]
            raise DataError(
                f"{path} looks like an image pair (a photo on its left half, a Cityscapes colour mask on its right), "
                f"but the checkpoint was trained on photos: predicting the whole {h}x{w} file would segment the mask "
                f"too. Fix: --pairs on (predict its photo half; the prediction is {h}x{w // 2}) or --pairs off "
                "(predict the whole file)."
            )
        self.halves += 1
        return np.ascontiguousarray(split_pair(image, path)[0])

    def finish(self, total: int, out_dir: Path) -> None:
        """Say how many pairs were halved; raise a DataError counting the files that failed."""
        if self.halves:
            logger.info(
                "%d image pair(s): their photo (left half) predicted, each prediction at the half's size", self.halves
            )
        if not self.failed:
            return
        names = ", ".join(str(p) for p, _ in self.failed[:_SHOW]) + (
            f" and {len(self.failed) - _SHOW} more" if len(self.failed) > _SHOW else ""
        )
        raise DataError(
            f"{len(self.failed)} of {total} images could not be predicted ({names}; each one's reason is logged above, "
            f"the first: {self.failed[0][1]}). The other {total - len(self.failed)} predictions are in {out_dir}. "
            "Fix: repair or remove those files and predict them again (--overwrite keeps the rest as they are)."
        )
