"""Notebook 6's bug zoo and correct styles through real nbgrader."""

from zoo_common import ZooTests


class TestZoo(ZooTests):
    A = "06_speed_ladder"
