"""Flight-log ingestion: ``read_log`` on a large tlog against pymavlink's own loop over it.

Input: a MAVLink 2 telemetry log with the message mix and rates of an ArduCopter survey
stream (ATTITUDE and RAW_IMU at 10 Hz, GLOBAL_POSITION_INT, GPS_RAW_INT, LOCAL_POSITION_NED
and AHRS2 at 5 Hz, VFR_HUD, RC_CHANNELS and SERVO_OUTPUT_RAW at 4 Hz, SYS_STATUS and VIBRATION
at 2 Hz, HEARTBEAT and SYSTEM_TIME at 1 Hz, a CAMERA_FEEDBACK every 2 s: 58.5 messages and
2.6 kB a second of flight, 37 % of the records of types ``read_log`` keeps, a denser
share than a real stream's, 14 % in the SITL log of ``shared/realdata``). One minute is
encoded with pymavlink; the file repeats it with every time (the ground station's receive
times and the time fields of the messages ``read_log`` uses) moved on by a minute a copy and
those frames' checksums recomputed
(vectorized), so the flight goes on and on: 300 MB is about 32 hours of telemetry.

Figures, each in the same run:

* throughput of ``read_log`` in MB/s against ``mavutil.mavlink_connection(path)`` with a
  ``recv_match(type=[...])`` loop over the same file for the message types ``read_log``
  decodes (pymavlink's fastest way: it indexes the file, then decodes only those); target
  ratio of times <= 1 (at least as fast). The untyped ``recv_match()`` loop (every message
  decoded) is timed on a smaller file;
* where the time goes: the plain read of the file, the record walk (framing, checksums,
  decoding the kept payloads: ``iter_tlog_chunks``), and the rest (reducing each chunk:
  attitude at the positions, clock pairs; then the clock model and the Datasets);
* peak RSS of ``read_log`` at three file sizes, each in a fresh process, against an
  interpreter that only imported it; the returned Datasets (telemetry and camera events) grow
  with the flight, everything else should not: the growth of peak RSS minus the Datasets'
  size per MB of log is the figure to keep near 0 (what remains: a clock knot per
  SYSTEM_TIME, 20 B, and the receive time and offset of each CAMERA_FEEDBACK, 16 B: about
  28 B per second of this flight), and the Datasets' own growth per MB says how compact the
  output is.

Sizes: 100, 300 and 600 MB (``--quick``: 4, 12 and 24 MB); pymavlink's loops on the 100 and
300 MB files. The large log is the generator's below, not the flight simulator's: the
simulator encodes every message with pymavlink, minutes for hundreds of MB.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import Result  # noqa: E402

BENCH = "ingest"
T0_US = 1_714_532_400_000_000  # 2024-05-01T03:00:00Z
BLOCK_S = 60
USED_TYPES = [
    "GLOBAL_POSITION_INT",
    "GPS_RAW_INT",
    "ATTITUDE",
    "SYSTEM_TIME",
    "CAMERA_FEEDBACK",
    "CAMERA_TRIGGER",
    "COMMAND_LONG",
    "COMMAND_INT",
    "MISSION_ITEM",
    "MISSION_ITEM_INT",
]
# message → (field, unit) of the times read_log uses: moved on by a block a copy
_TIME_FIELDS = {
    "GLOBAL_POSITION_INT": [("time_boot_ms", "ms")],
    "ATTITUDE": [("time_boot_ms", "ms")],
    "SYSTEM_TIME": [("time_unix_usec", "us"), ("time_boot_ms", "ms")],
    "GPS_RAW_INT": [("time_usec", "us")],
    "CAMERA_FEEDBACK": [("time_usec", "us")],
}


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint16)
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table[i] = crc
    return table


_TABLE = _crc_table()


def _crc_rows(rows: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """CRC-16/MCRF4XX of each row of ``rows`` (uint8, (k, L)) followed by its ``extra`` byte."""
    crc = np.full(rows.shape[0], 0xFFFF, dtype=np.uint16)
    for col in (*rows.T, extra):
        crc = (crc >> 8) ^ _TABLE[(crc ^ col) & 0xFF]
    return crc


def _field_offsets(cls: Any) -> dict[str, int]:
    import struct

    offsets, pos = {}, 0
    codes = bytes(cls.native_format).decode()[1:]
    for name, code, n in zip(cls.ordered_fieldnames, codes, cls.array_lengths, strict=True):
        offsets[name] = pos
        pos += struct.calcsize("<" + code) * max(n, 1)
    return offsets


def _encode_block() -> tuple[bytes, list[tuple[int, int, Any]]]:
    """One minute of flight as tlog records; (record offset, frame length, class) of each."""
    from pymavlink.dialects.v20 import ardupilotmega as m

    mav = m.MAVLink(None, srcSystem=1, srcComponent=1)
    rng = np.random.default_rng(0)
    records: list[tuple[int, bytes, Any]] = []
    boot0 = 18_000.0  # 5 h of uptime: no time field ends in zero bytes MAVLink 2 would cut

    def add(t: float, msg: Any) -> None:
        gcs_us = T0_US + round((t + 0.02 + rng.uniform(0, 0.03)) * 1e6)
        records.append((gcs_us, msg.pack(mav), type(msg)))
        mav.seq = (mav.seq + 1) % 256

    for k in range(BLOCK_S * 20):
        t = k / 20.0
        ms = round((boot0 + t) * 1000)
        lat, lon = round((22.55 + 1e-6 * t) * 1e7), round((114.05 + 2e-6 * t) * 1e7)
        if k % 2 == 0:
            add(t, m.MAVLink_attitude_message(ms, 0.03, -0.02, 1.2, 0.0, 0.0, 0.0))
            add(t, m.MAVLink_raw_imu_message(ms * 1000, 1, 2, -980, 0, 0, 0, 200, 10, -400))
        if k % 4 == 0:
            add(
                t,
                m.MAVLink_global_position_int_message(
                    ms, lat, lon, 80_000, 60_000, 500, 300, 0, 3100
                ),
            )
            add(
                t,
                m.MAVLink_gps_raw_int_message(
                    T0_US + round(t * 1e6), 3, lat, lon, 80_000, 70, 110, 580, 3100, 14
                ),
            )
            add(t, m.MAVLink_local_position_ned_message(ms, 3.0 * t, 5.0 * t, -60.0, 5.0, 3.0, 0.0))
            add(t, m.MAVLink_ahrs2_message(0.03, -0.02, 1.2, 80.0, lat, lon))
        if k % 5 == 0:
            add(t, m.MAVLink_vfr_hud_message(6.0, 5.8, 31, 45, 80.0, 0.0))
            add(t, m.MAVLink_rc_channels_message(ms, 16, *([1500] * 18), 255))
            add(t, m.MAVLink_servo_output_raw_message(ms * 1000 & 0xFFFFFFFF, 0, *([1600] * 8)))
        if k % 10 == 0:
            add(t, m.MAVLink_sys_status_message(0, 0, 0, 500, 15800, 1200, 80, 0, 0, 0, 0, 0, 0))
            add(t, m.MAVLink_vibration_message(ms * 1000, 2.0, 2.5, 3.0, 0, 0, 0))
        if k % 20 == 0:
            add(t, m.MAVLink_heartbeat_message(2, 3, 217, 3, 4, 3))
            add(t, m.MAVLink_system_time_message(T0_US + round(t * 1e6), ms))
        if k % 40 == 30:
            add(t, m.MAVLink_camera_feedback_message(
                T0_US + round(t * 1e6), 1, 0, k // 40, lat, lon, 80.0, 60.0, 0.5, -0.3, 31.0,
                8.8, 0, k // 40))  # fmt: skip
    records.sort(key=lambda r: r[0])
    out = bytearray()
    layout = []
    for gcs_us, frame, cls in records:
        layout.append((len(out), len(frame), cls))
        out += gcs_us.to_bytes(8, "big") + frame
    return bytes(out), layout


class _Repeater:
    """Copies of the one-minute block with every used time moved on and checksums redone."""

    def __init__(self) -> None:
        block, layout = _encode_block()
        self.block = np.frombuffer(block, dtype=np.uint8)
        self.starts = np.array([o for o, _, _ in layout], dtype=np.int64)
        self.time_be = self.starts  # the ground station's big-endian µs at each record start
        fields: dict[str, list[int]] = {"ms": [], "us": []}
        groups: dict[tuple[int, int], list[int]] = {}
        for offset, length, cls in layout:
            spec = _TIME_FIELDS.get(cls.msgname)
            if spec is None:
                continue
            where = _field_offsets(cls)
            for name, unit in spec:
                fields[unit].append(offset + 8 + 10 + where[name])
            # the checksum covers the header after the marker and the payload
            groups.setdefault((length - 3, cls.crc_extra), []).append(offset)
        self.ms = np.array(fields["ms"], dtype=np.int64)
        self.us = np.array(fields["us"], dtype=np.int64)
        self.groups = {k: np.array(v, dtype=np.int64) for k, v in groups.items()}

    @staticmethod
    def _add(buf: np.ndarray, at: np.ndarray, nbytes: int, delta: np.ndarray, big: bool) -> None:
        """Add ``delta`` (per copy) to the unsigned integers at byte offsets ``at``."""
        idx = at[None, :, None] + np.arange(nbytes)[None, None, :]
        idx = idx + (np.arange(delta.size) * buf.shape[1])[:, None, None]
        flat = buf.reshape(-1)
        raw = flat[idx].astype(np.uint64)
        weights = (np.uint64(256) ** np.arange(nbytes, dtype=np.uint64))[:: -1 if big else 1]
        value = (raw * weights).sum(axis=-1) + delta.astype(np.uint64)[:, None]
        new = (value[..., None] // weights) % np.uint64(256)
        flat[idx] = new.astype(np.uint8)

    def copies(self, first: int, count: int) -> bytes:
        """Copies ``first`` .. ``first + count - 1`` of the block, as file bytes."""
        buf = np.tile(self.block, (count, 1))
        k = np.arange(first, first + count, dtype=np.int64)
        self._add(buf, self.starts, 8, k * BLOCK_S * 1_000_000, big=True)
        self._add(buf, self.ms, 4, k * BLOCK_S * 1000, big=False)
        self._add(buf, self.us, 8, k * BLOCK_S * 1_000_000, big=False)
        for (span, extra), offsets in self.groups.items():
            rows_at = offsets[None, :] + (np.arange(count) * buf.shape[1])[:, None]
            idx = rows_at.reshape(-1)[:, None] + 9 + np.arange(span)
            flat = buf.reshape(-1)
            crc = _crc_rows(flat[idx], np.full(idx.shape[0], extra, dtype=np.uint8))
            end = rows_at.reshape(-1) + 9 + span
            flat[end] = (crc & 0xFF).astype(np.uint8)
            flat[end + 1] = (crc >> 8).astype(np.uint8)
        return buf.tobytes()


def write_tlog(path: Path, size_mb: float) -> int:
    """Write a tlog of about ``size_mb`` MB; returns the number of one-minute copies."""
    rep = _Repeater()
    n_copies = max(1, round(size_mb * 1e6 / rep.block.size))
    with open(path, "wb") as fh:
        for first in range(0, n_copies, 32):
            fh.write(rep.copies(first, min(32, n_copies - first)))
    return n_copies


# --- measurements, each in a fresh interpreter -------------------------------------------------


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process since its exec (VmHWM)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(mode: str, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if mode == "import":
        import survey.ingest  # noqa: F401
    elif mode == "read_log":
        import survey.ingest.mavlink as tlog
        from survey.ingest import read_log

        t0 = time.perf_counter()  # the floor: reading the bytes at all
        with open(path, "rb") as fh:
            while fh.read(1 << 20):
                pass
        out["file_read_s"] = time.perf_counter() - t0
        chunks = tlog.iter_tlog_chunks
        out["scan_s"] = 0.0

        def timed_chunks(*args: Any) -> Iterator[Any]:
            it = chunks(*args)
            while True:
                t0 = time.perf_counter()
                chunk = next(it, None)
                out["scan_s"] += time.perf_counter() - t0
                if chunk is None:
                    return
                yield chunk

        tlog.iter_tlog_chunks = timed_chunks  # read_tlog calls it by this name
        t0 = time.perf_counter()
        flight = read_log(path)
        out["s"] = time.perf_counter() - t0
        out["messages"] = flight.report.messages
        out["gps_points"] = flight.report.gps_points
        out["telemetry_mb"] = flight.telemetry.nbytes / 2**20
        out["events_mb"] = flight.camera_events.nbytes / 2**20
        out["output_mb"] = out["telemetry_mb"] + out["events_mb"]
    elif mode.startswith("pymavlink"):
        from pymavlink import mavutil

        types = USED_TYPES if mode == "pymavlink-typed" else None
        t0 = time.perf_counter()
        conn = mavutil.mavlink_connection(path)
        n = 0
        while conn.recv_match(type=types) is not None:
            n += 1
        out["s"] = time.perf_counter() - t0
        out["messages"] = n
    out["rss_mb"] = _vm_hwm_mb()
    return out


def _in_child(mode: str, path: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, __file__, mode, str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench_ingest child {mode} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    return float(np.polyfit(np.asarray(xs), np.asarray(ys), 1)[0])


def run(quick: bool) -> list[Result]:
    sizes_mb = {"small": 4, "mid": 12, "large": 24, "untyped": 2}
    if not quick:
        sizes_mb = {"small": 100, "mid": 300, "large": 600, "untyped": 20}
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        paths = {}
        for name, mb in sizes_mb.items():
            t0 = time.perf_counter()
            paths[name] = Path(tmp) / f"{name}.tlog"
            copies = write_tlog(paths[name], mb)
            print(
                f"   wrote {paths[name].stat().st_size / 1e6:.0f} MB ({copies} min of flight) "
                f"in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        size = {k: p.stat().st_size / 1e6 for k, p in paths.items()}
        imported = _in_child("import", paths["small"])
        ours = {k: _in_child("read_log", paths[k]) for k in ("small", "mid", "large")}
        theirs_small = _in_child("pymavlink-typed", paths["small"])
        theirs = _in_child("pymavlink-typed", paths["mid"])
        untyped_ours = _in_child("read_log", paths["untyped"])
        untyped = _in_child("pymavlink-all", paths["untyped"])
        for k, m in ours.items():
            print(f"   read_log {k}: {m}", flush=True)
        print(f"   pymavlink typed (mid): {theirs}; all (untyped file): {untyped}", flush=True)

    mid = ours["mid"]
    mb_s = size["mid"] / mid["s"]
    their_mb_s = size["mid"] / theirs["s"]
    results.append(
        Result(
            BENCH,
            f"read_log throughput, {size['mid']:.0f} MB tlog",
            mid["s"],
            "s",
            baseline=theirs["s"],
            baseline_name="pymavlink recv_match(type=used types) loop, same file",
            target="ratio <= 1 (at least as fast)",
            ok=mid["s"] <= theirs["s"],
            note=f"{mb_s:.1f} MB/s against {their_mb_s:.1f} MB/s; pymavlink decoded "
            f"{theirs['messages']} used messages, read_log checked {mid['messages']} "
            f"records and kept {mid['gps_points']} positions",
        )
    )
    results.append(
        Result(
            BENCH,
            f"read_log throughput, {size['untyped']:.0f} MB tlog, every message",
            untyped_ours["s"],
            "s",
            baseline=untyped["s"],
            baseline_name="pymavlink recv_match() loop (all messages), same file",
            target="ratio <= 1",
            ok=untyped_ours["s"] <= untyped["s"],
            note=f"{size['untyped'] / untyped_ours['s']:.1f} MB/s against "
            f"{size['untyped'] / untyped['s']:.2f} MB/s",
        )
    )
    m = ours["large"]
    results.append(
        Result(
            BENCH,
            f"where the time goes ({size['large']:.0f} MB): record walk (framing, checksums, "
            f"decoding the kept payloads)",
            m["scan_s"],
            "s",
            baseline=m["s"],
            baseline_name="whole read_log (same process)",
            note=f"plain read of the file {m['file_read_s']:.2f} s "
            f"({m['file_read_s'] / m['s']:.0%} of read_log); the rest "
            f"({max(0.0, m['s'] - m['scan_s']):.2f} s) reduces each chunk (attitude at the "
            f"positions, clock pairs) and makes the clock model and the Datasets; "
            f"{size['large'] / m['s']:.1f} MB/s",
        )
    )
    names = ("small", "mid", "large")
    file_mb = [size[k] * 1e6 / 2**20 for k in names]
    for k in names:
        results.append(
            Result(
                BENCH,
                f"peak RSS, read_log of {size[k]:.0f} MB",
                ours[k]["rss_mb"],
                "MB",
                baseline=imported["rss_mb"],
                baseline_name="interpreter that imported survey.ingest",
                note=f"returned Datasets {ours[k]['output_mb']:.1f} MB (telemetry "
                f"{ours[k]['telemetry_mb']:.1f}, camera events {ours[k]['events_mb']:.1f}); "
                f"beyond them and the import: "
                f"{ours[k]['rss_mb'] - imported['rss_mb'] - ours[k]['output_mb']:.1f} MB; "
                f"fresh process",
            )
        )
    beyond = _slope(file_mb, [ours[k]["rss_mb"] - ours[k]["output_mb"] for k in names])
    output = _slope(file_mb, [ours[k]["output_mb"] for k in names])
    total = _slope(file_mb, [ours[k]["rss_mb"] for k in names])
    results.append(
        Result(
            BENCH,
            "peak RSS beyond the returned Datasets, growth per MB of log",
            beyond,
            "MB/MB",
            target="< 0.05: flat, the reader's own state does not follow the log",
            ok=beyond < 0.05,
            note=f"least squares over the three sizes; peak RSS itself {total:.3f} MB/MB",
        )
    )
    results.append(
        Result(
            BENCH,
            "returned Datasets, growth per MB of log",
            output,
            "MB/MB",
            note="telemetry: lat, lon float64, alt/attitude/speed float32, fix int8, "
            "satellites int16, time int64 (47 B a position); camera events float64",
        )
    )
    results.append(
        Result(
            BENCH,
            "peak RSS growth, pymavlink recv_match(type=...) loop",
            theirs["rss_mb"] - theirs_small["rss_mb"],
            "MB",
            baseline=(size["mid"] - size["small"]) * 1e6 / 2**20,
            baseline_name="growth of the file",
            note=f"{theirs_small['rss_mb']:.0f} -> {theirs['rss_mb']:.0f} MB (its index of "
            f"every record's offset grows with the file; it keeps no decoded values)",
        )
    )
    return results


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2])))
