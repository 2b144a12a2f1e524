"""DJI aircraft for WPML: their published enums and the cameras GSD is computed with."""

from __future__ import annotations

import pytest

from flightplans import (
    CAMERAS,
    DRONES,
    PlanParameterError,
    drone_for_enums,
    get_camera,
    get_drone,
    list_drones,
)

# DJI Cloud API "Product Support": aircraft type/sub_type, camera type; P1 = 50 (Pilot 2).
PUBLISHED = {
    "m300rtk": (60, 0, 50),
    "m350rtk": (89, 0, 50),
    "m30": (67, 0, 52),
    "m30t": (67, 1, 53),
    "mavic3e": (77, 0, 66),
    "mavic3t": (77, 1, 67),
    "matrice4e": (99, 0, 88),
    "matrice4t": (99, 1, 89),
}


def test_every_aircraft_has_djis_published_enums() -> None:
    assert set(DRONES) == set(PUBLISHED)
    for name, (drone, sub, payload) in PUBLISHED.items():
        d = get_drone(name)
        assert (d.drone_enum, d.drone_sub_enum, d.payload_enum) == (drone, sub, payload), name
        assert d.payload_position == 0
        assert drone_for_enums(drone, sub, payload) is d
    assert [d.name for d in list_drones()] == sorted(PUBLISHED)
    # only the M30, Mavic 3 and Matrice 4 read takeOffRefPoint; the P1 has one lens
    assert not get_drone("m300rtk").takeoff_ref_point and get_drone("m4t").takeoff_ref_point
    assert get_drone("m350").lens == "visable" and get_drone("m30t").lens == "wide"


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("M300 RTK", "m300rtk"),
        ("DJI Matrice 350 RTK", "m350rtk"),
        ("M30T", "m30t"),
        ("Mavic 3E", "mavic3e"),
        ("m4e", "matrice4e"),
        ("Matrice_4T", "matrice4t"),
    ],
)
def test_names_people_use(alias: str, name: str) -> None:
    assert get_drone(alias).name == name


def test_unknown_aircraft_lists_the_known_ones() -> None:
    with pytest.raises(PlanParameterError) as e:
        get_drone("phantom 4 rtk")
    msg = str(e.value)
    assert "unknown drone 'phantom 4 rtk'" in msg and "m300rtk" in msg and "\n" not in msg
    assert drone_for_enums(60, 0, 42) is None  # an M300 RTK with an H20: no camera model


def test_each_aircraft_camera_is_a_camera_preset_with_the_right_gsd() -> None:
    # GSD = H * Sw * 100 / (Iw * f): the 24 mm-equivalent wide cameras at 100 m
    expected_cm = {
        "m300rtk": 100 * 35.9 * 100 / (8192 * 35.0),  # P1 35 mm: 1.25 cm/px
        "m30t": 100 * 6.4 * 100 / (4000 * 4.44),  # 1/2" 12 MP: 3.60 cm/px
        "mavic3e": 100 * 17.3 * 100 / (5280 * 12.29),  # 4/3" 20 MP: 2.67 cm/px
        "matrice4e": 100 * 17.3 * 100 / (5280 * 12.29),
        "matrice4t": 100 * 9.68 * 100 / (8064 * 6.71),  # 1/1.3" 48 MP: 1.79 cm/px
        "mavic3t": 100 * 6.4 * 100 / (8000 * 4.44),  # 1/2" 48 MP: 1.80 cm/px
    }
    for name, gsd in expected_cm.items():
        cam = get_drone(name).camera
        assert cam.gsd_cm(100.0) == pytest.approx(gsd, rel=1e-9), name
        assert get_camera(cam.name) is cam and CAMERAS[cam.name] is cam
    for d in DRONES.values():
        cam = d.camera
        equivalent = cam.focal_mm * 34.62 / cam.sensor_w_mm  # 35 mm-format equivalent, 4:3
        assert 23.0 < equivalent < 36.0, d.name  # wide cameras 24 mm, the P1 35 mm
    # --camera knows the aircraft's names too
    assert get_camera("M30T").name == "matrice30-wide"
    assert get_camera("m4t").name == "matrice4t-wide"
