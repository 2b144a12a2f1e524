"""Fixtures of the map tests: one hand-made scene and its review pages, built once."""

from __future__ import annotations

import pytest

from maps.review import ReviewMap, render_review_map
from tests.maps.scenes import Scene, make_scene


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return make_scene(tmp_path_factory.mktemp("maps_scene"))


@pytest.fixture(scope="session")
def review_map(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> ReviewMap:
    out = tmp_path_factory.mktemp("maps_review") / "review.html"
    return render_review_map(
        scene.leads,
        before_ortho=scene.before_ortho,
        after_ortho=scene.after_ortho,
        out_html=out,
        permits=scene.permits,
        track=scene.track,
        photos=scene.photos,
        title="Scene <review> & co",
    )
