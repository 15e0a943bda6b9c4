"""Tests of one `xdist_group` go to one xdist worker (the suite's shared servers rely on it)."""

from __future__ import annotations

from xdist.scheduler.loadgroup import LoadGroupScheduling

from tests.support.markers import GroupNodeIds

pytest_plugins = ["pytester"]

SOURCE = """
import pytest

@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("i", range(3))
def test_grouped(i):
    pass

@pytest.mark.parametrize("i", range(3))
def test_free(i):
    pass
"""


def _scopes(items) -> list[str]:
    scheduler = LoadGroupScheduling.__new__(LoadGroupScheduling)  # only its reading of node ids
    return [scheduler._split_scope(item.nodeid) for item in items]


def test_under_loadgroup_a_groups_tests_share_one_scope_and_the_others_have_their_own(pytester):
    items = pytester.getitems(SOURCE)
    config = items[0].config
    config.option.loadgroup = True
    GroupNodeIds().pytest_collection_modifyitems(config, items)
    scopes = _scopes(items)
    assert scopes[:3] == ["shared"] * 3
    assert len(set(scopes[3:])) == 3 and "shared" not in scopes[3:]
    # written once, however many times the hook runs
    GroupNodeIds().pytest_collection_modifyitems(config, items)
    assert [item.nodeid.count("@") for item in items] == [1, 1, 1, 0, 0, 0]


def test_without_loadgroup_node_ids_are_left_alone(pytester):
    items = pytester.getitems(SOURCE)
    config = items[0].config
    config.option.loadgroup = False
    before = [item.nodeid for item in items]
    GroupNodeIds().pytest_collection_modifyitems(config, items)
    assert [item.nodeid for item in items] == before
