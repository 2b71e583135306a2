"""``deformed_digits``: an infinite-MNIST-style task whose every sample is a seeded deformation of
one of scikit-learn's real 8x8 digits (the deformations: hpcfed.data.deform).

The base digits are split as digits are (stream 1, ``data.test_fraction`` of every class): the
**base-test** digits only ever appear in the test set, so a test sample is a deformation of a digit
no client has seen. Of the **base-train** digits, the server keeps a stratified share
``data.server_val_fraction`` (stream 5) and the job's partition (stream 2, ``data.partition`` with
``data.alpha`` or ``data.shards_per_client``, hpcfed.data.partition) gives each client the rest as
its **owned base digits**. Every base digit is upsampled (bilinear) to ``data.image_size``.

The samples (all deformations of one base digit share one numpy stream, copy ``j`` is row ``j`` of
its draws, so asking for more copies never changes the earlier ones):

* client ``k`` holds ``data.deformed_per_digit`` deformations (copies ``0..P-1``) of each base digit
  it owns, digit by digit; deformation ``j`` of base-train digit ``d`` draws from ``[seed, 6, d]``.
  A sample is thus a function of (seed, base digit, copy, the owner's style): the same wherever and
  whenever it is generated, whatever the population size; only which client owns which digit
  follows the partition. Client validation (``data.client_val_fraction``, stream 4) keeps
  ``floor(fraction * owned digits)`` of a client's base digits, with all their deformations, out
  of its training, so validation never shares a base digit with training;
* the server validation set: deformations ``0..P-1`` of every server-held base digit (stream 6);
* the test set: ``data.deformed_test`` samples; sample ``i`` deforms base-test digit ``i mod B``
  (``B`` base-test digits), copy ``i div B``, drawn from ``[seed, 7, d]``.

With ``data.styles: N`` > 0 (feature skew) client ``k`` has style ``k mod N``, which adds a fixed
rotation (evenly spread over +-``STYLE_ROTATION_DEG``; 0 for one style) and a stroke-thickness bias
(``STYLE_THICKNESS`` times 0, +1, -1 for styles 0, 1, 2, repeating) to all its samples; server
validation sample ``i`` and test sample ``i`` have style ``i mod N``.

Samples are generated on demand on the rank that trains them; only the base digits (a few MB) and
the partition of the base digits are kept. Images are normalised with the mean and standard
deviation of copy 0 of every client-held base digit (training samples only, never the test set).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hpcfed.data.deform import deform, num_draws, upsample
from hpcfed.data.digits import read_digits
from hpcfed.data.federated import NUM_CLASSES, FederatedData
from hpcfed.data.partition import partition_labels
from hpcfed.data.splits import PARTITION_STREAM, ClientValidation, require, server_validation_split, split_test_set

NAME = "deformed_digits"
TRAIN_STREAM = 6            # deformations of base-train digits: [seed, 6, digit]
TEST_STREAM = 7             # deformations of base-test digits: [seed, 7, digit]
IMAGE_SIZES = (16, 32)
STYLE_ROTATION_DEG = 30.0   # styles' rotations spread evenly over +- this
STYLE_THICKNESS = 0.6       # styles' thickness bias: this x (0, +1, -1, 0, +1, ...)


@dataclass(frozen=True)
class DeformedOptions:
    """The ``data.*`` keys of deformed_digits (hpcfed.config.DataConfig)."""

    image_size: int = 16        # 16 or 32
    per_digit: int = 4          # deformations per owned base digit
    test_samples: int = 2000    # test-set size
    styles: int = 0             # 0 = no feature skew
    strength: float = 1.0       # multiplies every deformation magnitude

    def check(self) -> None:
        """One-line DataError for a bad value."""
        integer = (int, np.integer)
        require(self.image_size in IMAGE_SIZES, "data.image_size", self.image_size, "16 or 32")
        require(isinstance(self.per_digit, integer) and self.per_digit >= 1, "data.deformed_per_digit",
                self.per_digit, "an integer >= 1")
        require(isinstance(self.test_samples, integer) and self.test_samples >= 1, "data.deformed_test",
                self.test_samples, "an integer >= 1")
        require(isinstance(self.styles, integer) and self.styles >= 0, "data.styles", self.styles,
                "an integer >= 0 (0 = no styles)")
        require(self.strength >= 0, "data.deform_strength", self.strength, "a number >= 0")


def style_offsets(styles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per style: rotation offset (degrees) and thickness bias, float32 tensors of length ``styles``."""
    s = torch.arange(styles, dtype=torch.float32)
    rotation = STYLE_ROTATION_DEG * (2 * s / (styles - 1) - 1) if styles > 1 else torch.zeros(styles)
    thickness = STYLE_THICKNESS * ((s + 1) % 3 - 1)
    return rotation, thickness


class DeformedDigits:
    """The generator: base images, the options and the seed; every sample on demand."""

    def __init__(self, options: DeformedOptions, seed: int, base: dict[str, np.ndarray]):
        self.options, self.seed = options, seed
        size = options.image_size
        self.train_images = upsample(torch.from_numpy(base["x_train"]), size)
        self.test_images = upsample(torch.from_numpy(base["x_test"]), size)
        self.y_train, self.y_test = torch.from_numpy(base["y_train"]), torch.from_numpy(base["y_test"])
        self.train_rows, self.test_rows = base["train_rows"], base["test_rows"]   # rows of the digits' table
        self.rotation, self.thickness = style_offsets(options.styles)
        self.mean, self.std = 0.0, 1.0

    def _draws(self, stream: int, digits: np.ndarray, copies: np.ndarray) -> torch.Tensor:
        """The normal draws of deformation ``copies[i]`` of digit ``digits[i]`` (rows), one numpy stream
        per digit."""
        draws = np.empty((len(digits), num_draws(self.options.image_size)), dtype=np.float32)
        if not len(digits):
            return torch.from_numpy(draws)
        order = np.lexsort((copies, digits))
        ds, cs = digits[order], copies[order]
        starts = np.flatnonzero(np.r_[True, ds[1:] != ds[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(ds)]):
            rng = np.random.default_rng([self.seed, stream, int(ds[start])])
            block = rng.standard_normal((int(cs[stop - 1]) + 1, draws.shape[1]), dtype=np.float32)
            draws[order[start:stop]] = block[cs[start:stop]]
        return torch.from_numpy(draws)

    def raw(self, test: bool, digits: np.ndarray, copies: np.ndarray, styles: np.ndarray | None = None
            ) -> torch.Tensor:
        """Unnormalised images (n, 1, S, S) in [0, 1]: deformation ``copies[i]`` of base-train (or, with
        ``test``, base-test) digit ``digits[i]``, in style ``styles[i]`` (ignored without styles)."""
        digits, copies = np.asarray(digits, dtype=np.int64), np.asarray(copies, dtype=np.int64)
        images = self.test_images if test else self.train_images
        z = self._draws(TEST_STREAM if test else TRAIN_STREAM, digits, copies)
        rotation = thickness = None
        if self.options.styles and len(digits):
            index = torch.from_numpy(np.asarray(styles, dtype=np.int64) % self.options.styles)
            rotation, thickness = self.rotation[index], self.thickness[index]
        return deform(images[torch.from_numpy(digits)], z, self.options.strength, rotation, thickness)

    def normalised(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def samples(self, digits: np.ndarray, style: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Copies ``0..P-1`` of each base-train digit in ``digits``, digit by digit, in ``style``: (x, y)."""
        per = self.options.per_digit
        digits = np.repeat(np.asarray(digits, dtype=np.int64), per)
        copies = np.tile(np.arange(per, dtype=np.int64), len(digits) // per)
        x = self.raw(False, digits, copies, np.full(len(digits), style))
        return self.normalised(x), self.y_train[torch.from_numpy(digits)]

    def fit_normalisation(self, digits: np.ndarray, styles: np.ndarray) -> None:
        """Mean and standard deviation of copy 0 of ``digits`` in their owners' ``styles``, taken in
        digit order (so that they do not depend on the partition without styles)."""
        order = np.argsort(digits, kind="stable")
        x = self.raw(False, digits[order], np.zeros(len(digits), dtype=np.int64), styles[order]).double()
        self.mean, self.std = float(x.mean()), float(x.std(unbiased=False)) or 1.0


@dataclass(frozen=True, eq=False)
class DeformedData(FederatedData):
    """deformed_digits: client ``k`` owns the base-train digits
    ``digit_indices[digit_offsets[k]:digit_offsets[k + 1]]`` (two read-only int64 arrays over the
    base digits) and holds ``per_digit`` deformations of each, generated on demand; ``client_split``
    splits its base digits, not its samples, into training and validation."""

    generator: DeformedDigits
    digit_offsets: np.ndarray
    digit_indices: np.ndarray

    def _owned(self) -> np.ndarray:
        return np.diff(self.digit_offsets)

    def samples_per_client(self) -> np.ndarray:
        owned = self._owned()
        return (owned - self.client_split.sizes(owned)) * self.generator.options.per_digit

    def validation_per_client(self) -> np.ndarray:
        return self.client_split.sizes(self._owned()) * self.generator.options.per_digit

    def client_digits(self, k: int, validation: bool = False) -> np.ndarray:
        """The base-train digits (indices) whose deformations are client ``k``'s training (or validation) samples."""
        self._check_client(k)
        owned = self.digit_indices[self.digit_offsets[k]:self.digit_offsets[k + 1]]
        train, val = self.client_split.split(k, len(owned))
        return owned[val if validation else train]

    def _client_part(self, k: int, validation: bool) -> tuple[torch.Tensor, torch.Tensor]:
        styles = self.generator.options.styles
        return self.generator.samples(self.client_digits(k, validation), k % styles if styles else 0)


def _base_digits(test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """The base digits: 8x8 images and labels of the base-train and base-test digits (stream 1) and
    their rows in scikit-learn's table."""
    x, y = read_digits(NAME)
    train, test = split_test_set(y, test_fraction, seed)
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test],
            "train_rows": train, "test_rows": test}


def load_deformed(options: DeformedOptions, partition: str, alpha: float, shards_per_client: int, num_clients: int,
                  test_fraction: float, seed: int, server_val_fraction: float, client_split: ClientValidation):
    """The deformed_digits data set (arguments as :func:`hpcfed.data.load_federated_data`'s)."""
    options.check()
    generator = DeformedDigits(options, seed, _base_digits(test_fraction, seed))
    y_train = generator.y_train.numpy()
    pool, val = server_validation_split(y_train, server_val_fraction, seed)
    offsets, indices = partition_labels(y_train[pool], partition, num_clients, alpha=alpha,
                                        shards_per_client=shards_per_client,
                                        rng=np.random.default_rng([seed, PARTITION_STREAM]))
    owned = pool[indices]                      # base-train digit of every owned position, client by client
    owner = np.repeat(np.arange(num_clients), np.diff(offsets))
    generator.fit_normalisation(owned, owner)
    per, styles = options.per_digit, np.arange(len(val) * options.per_digit)
    x_val = generator.normalised(generator.raw(False, np.repeat(val, per), np.tile(np.arange(per), len(val)), styles))
    y_val = generator.y_train[torch.from_numpy(np.repeat(val, per).astype(np.int64))]
    n_test = len(generator.y_test)
    index = np.arange(options.test_samples)
    x_test = generator.normalised(generator.raw(True, index % n_test, index // n_test, index))
    y_test = generator.y_test[torch.from_numpy(index % n_test)]
    for array in (offsets, owned):
        array.setflags(write=False)
    return DeformedData(name=NAME, test_inputs=x_test, y_test=y_test, num_classes=NUM_CLASSES,
                        client_offsets=_readonly(offsets * per), val_inputs=x_val, y_val=y_val,
                        client_split=client_split, generator=generator, digit_offsets=offsets,
                        digit_indices=owned)


def _readonly(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.int64)
    array.setflags(write=False)
    return array
