"""The grader's scan for an answer borrowed from a library (notebook 7: accuracy and the confusion matrix
written with torch, not taken from sklearn.metrics). The graded path is in the notebook-7 zoo
(``real_data.sklearn_metrics``); these are the spellings, each with its untouched control."""

import pytest

from autograder.checks.scan import borrowed

OWN = '''def accuracy(predicted, labels):
    return (predicted == labels).double().mean().item()


def confusion_matrix(predicted, labels, num_classes):
    flat = labels.long() * num_classes + predicted.long()
    return torch.bincount(flat, minlength=num_classes ** 2).reshape(num_classes, num_classes)
'''


@pytest.mark.parametrize("solution, elsewhere, line", [
    ("def accuracy(p, l):\n    return sklearn.metrics.accuracy_score(l, p)\n", [], 2),
    ("from sklearn.metrics import accuracy_score\ndef accuracy(p, l):\n    return accuracy_score(l, p)\n", [], 1),
    ("from sklearn import metrics as m\ndef accuracy(p, l):\n    return m.accuracy_score(l, p)\n", [], 1),
    ("def accuracy(p, l):\n    return float(score(l, p))\n",
     ["from sklearn.metrics import (\n    confusion_matrix,\n    accuracy_score as score,\n)"], 2),
    ("def accuracy(p, l):\n    return float(score(l, p))\n",
     ["from sklearn.metrics import accuracy_score as score"], 2),
    ("def accuracy(p, l):\n    import sklearn.metrics\n    return sklearn.metrics.accuracy_score(l, p)\n", [], 2),
])
def test_each_spelling_of_sklearn_in_the_answer_cell_is_found(solution, elsewhere, line):
    assert borrowed(solution, elsewhere, "sklearn")[0][0] == line


@pytest.mark.parametrize("elsewhere", [
    [],
    # checking against scikit-learn in a scratch cell is fine, even under the answer's own name
    ["from sklearn.metrics import confusion_matrix, accuracy_score\nprint(accuracy_score([1], [1]))"],
    ["# sklearn.metrics.accuracy_score would do this\nx = 'sklearn'"],
])
def test_the_students_own_answer_is_not_flagged(elsewhere):
    assert borrowed(OWN + "# not sklearn.metrics: 'sklearn'\n", elsewhere, "sklearn") == []
