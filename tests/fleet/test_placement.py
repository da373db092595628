"""Placement rules, without a cluster: even spread, never over capacity, unplaced waits, most room first."""

from __future__ import annotations

from streamseg.fleet.placement import NodeRoom, most_room, orphans, rooms, spread


def test_cameras_spread_evenly_over_nodes_of_equal_capacity():
    placed, unplaced = spread(["a", "b", "c", "d"], [NodeRoom("head", 4), NodeRoom("second", 4)])
    assert unplaced == []
    assert sorted(placed.values()) == ["head", "head", "second", "second"]


def test_spread_follows_capacity_and_counts_cameras_already_there():
    placed, _ = spread(["a", "b", "c"], [NodeRoom("big", 8, cameras=2), NodeRoom("small", 2)])
    # big is 2/8 full, small 0/2: small first, then big (1/2 full is fuller than 2/8)
    assert placed == {"a": "small", "b": "big", "c": "big"}


def test_never_over_capacity_and_the_rest_wait_unplaced_in_order():
    placed, unplaced = spread(["a", "b", "c", "d", "e"], [NodeRoom("x", 2), NodeRoom("y", 1, cameras=1)])
    assert placed == {"a": "x", "b": "x"}
    assert unplaced == ["c", "d", "e"]


def test_no_node_ready_places_nothing():
    assert spread(["a"], []) == ({}, ["a"])


def test_unbounded_node_takes_every_camera():
    placed, unplaced = spread([f"c{i}" for i in range(50)], [NodeRoom("local", None)])
    assert unplaced == [] and set(placed.values()) == {"local"}


def test_most_room_picks_the_emptiest_node_and_none_when_full():
    nodes = [NodeRoom("a", 4, cameras=3), NodeRoom("b", 6, cameras=3), NodeRoom("c", 2, cameras=2)]
    assert most_room(nodes) == "b"
    assert most_room([NodeRoom("a", 1, cameras=1)]) is None
    assert most_room([NodeRoom("b", 3, cameras=1), NodeRoom("a", 3, cameras=1)]) == "a"  # ties: the node id


def test_orphans_are_the_cameras_of_nodes_not_alive():
    assigned = {"a": "dead", "b": "live", "c": None, "d": "dead"}
    assert orphans(assigned, ["live"]) == ["a", "d"]


def test_rooms_count_the_map_for_ready_nodes_only():
    counted = rooms({"a": "x", "b": "x", "c": "gone", "d": None}, {"x": 3, "y": 2})
    assert counted == [NodeRoom("x", 3, 2), NodeRoom("y", 2, 0)]


def test_a_node_that_joins_takes_the_unplaced():
    placed, unplaced = spread(["a", "b", "c"], [NodeRoom("x", 2)])
    assert unplaced == ["c"]
    later, still = spread(unplaced, [NodeRoom("x", 2, cameras=2), NodeRoom("new", 2)])
    assert later == {"c": "new"} and still == []
