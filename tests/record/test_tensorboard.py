"""The TensorBoard view (output.tensorboard): every round and evaluation exactly once, equal to the
results file, after a plain run and after a run killed and resumed; a missing package is one line."""
from __future__ import annotations

from hpcfed.record.tensorboard import subnet_labels


def test_subnet_labels_are_unique_and_name_the_model_when_there_are_several():
    assert subnet_labels(["a", "b"], [0, 0]) == ["a", "b"]
    assert subnet_labels(["a", "a"], [0, 1]) == ["model0/a", "model1/a"]
    assert subnet_labels(["a", "a", "b"], [0, 0, 0]) == ["a#0", "a#1", "b"]
