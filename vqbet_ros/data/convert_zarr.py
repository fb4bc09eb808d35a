"""`vqbet-convert`: a Diffusion Policy zarr replay buffer -> a LeRobotDataset v3.0 (written by LeRobotWriter).

    vqbet-convert ../shared/external/pusht_cchi_v7_replay.zarr data/pusht            # PushT, AV1 video
    vqbet-convert REPLAY.zarr data/pusht_x264 --video-codec libx264 --max-episodes 10
    vqbet-convert REPLAY.zarr data/pusht_state --no-video                          # state-based only

Default mapping (PushT, the source of LeRobot's `lerobot/pusht`):
    data/img (float 0..255, 96x96x3)  -> video  `observation.images.image` (rounded to uint8)
    data/state[:, 0:2]                -> `observation.state` (agent x, y; names ["x", "y"])
    data/keypoint (9x2) flattened     -> `observation.environment_state` (18)
    data/action                       -> `action` (2; names ["x", "y"])
Parquet values are copied exactly (float32). Use `--state-slice`, `--env-state-key`, `--image-key`, `--extra-key`
to map other replay buffers.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from vqbet_ros import constants
from vqbet_ros.data import lerobot_layout as layout
from vqbet_ros.data.lerobot_writer import LeRobotWriter
from vqbet_ros.data.video_encoder import VideoEncoding
from vqbet_ros.data.zarr_replay import (
    PUSHT_CAMERA,
    PUSHT_FPS,
    PUSHT_TASK,
    episode_ranges_from_ends,
    images_to_uint8,
    open_replay,
    pusht_keypoint_names,
    read_rows,
)

logger = logging.getLogger(__name__)

# Offline conversion feeds frames as fast as it can read them; let add_frame wait for the encoder instead of
# treating a full queue as a real-time overload.
_OFFLINE_PUT_TIMEOUT_S = 600.0


def _parse_slice(text: str) -> slice:
    try:
        parts = [int(p) if p else None for p in text.split(":")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:STOP such as 0:2, got {text!r}") from None
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected START:STOP such as 0:2, got {text!r}")
    return slice(*parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vqbet-convert",
        description="Convert a Diffusion Policy zarr replay buffer (e.g. PushT) to a LeRobotDataset v3.0.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("zarr", type=Path, help="replay buffer directory (meta/episode_ends, data/<key>)")
    p.add_argument("output", type=Path, help="new dataset root (must not hold a dataset unless --overwrite)")
    p.add_argument("--fps", type=int, default=PUSHT_FPS, help="frame rate of the demonstrations (PushT: 10)")
    p.add_argument("--max-episodes", type=int, default=None, help="convert only the first N episodes")
    p.add_argument("--task", default=PUSHT_TASK, help="task string stored for every episode")
    p.add_argument("--robot-type", default="pusht", help="info.json robot_type")
    keys = p.add_argument_group("key mapping (defaults: PushT)")
    keys.add_argument("--state-key", default="state", help="zarr key of observation.state ('' = none)")
    keys.add_argument("--state-slice", type=_parse_slice, default=slice(0, 2),
                      help="columns of the state key kept (PushT 0:2 = agent x, y)")
    keys.add_argument("--state-names", nargs="*", default=None,
                      help="joint names of observation.state (default x y for 2 columns, else s0 s1 ...)")
    keys.add_argument("--env-state-key", default="keypoint",
                      help="zarr key flattened into observation.environment_state ('' = none)")
    keys.add_argument("--action-key", default="action", help="zarr key of the actions")
    keys.add_argument("--extra-key", action="append", default=[],
                      help="further zarr key stored flattened as observation.<key> (repeatable)")
    keys.add_argument("--image-key", default="img", help="zarr key of the camera images ('' = none)")
    keys.add_argument("--camera", default=PUSHT_CAMERA, help="camera name: observation.images.<camera>")
    video = p.add_argument_group("video")
    video.add_argument("--no-video", action="store_true", help="store no images (state-based dataset)")
    video.add_argument("--video-codec", default="libsvtav1", choices=["libsvtav1", "libx264"],
                       help="encoder (libsvtav1 = LeRobot's AV1 default; libx264 = H.264)")
    video.add_argument("--crf", type=int, default=None, help="constant rate factor (default: writer default)")
    video.add_argument("--gop", type=int, default=2, help="keyframe interval in frames (LeRobot 2)")
    p.add_argument("--overwrite", action="store_true", help="delete an existing dataset at OUTPUT first")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _default_names(key: str, size: int) -> list[str]:
    if key == constants.ENV_STATE and size == 18:
        return pusht_keypoint_names()
    if size == 2:
        return ["x", "y"]
    return [f"{key.rsplit('.', 1)[-1]}_{i}" for i in range(size)]


def _map_keys(args: argparse.Namespace, data) -> tuple[dict[str, tuple], object, dict[str, dict]]:
    """Zarr arrays for each dataset key, the image array (or None) and the LeRobot features they make.

    Sources map a dataset key to (zarr array, column slice); each row is flattened to a float32 vector.
    """
    available = sorted(data.array_keys())

    def need(key: str, option: str):
        if key not in available:
            raise KeyError(f"`{option}`: `{args.zarr}` has no `data/{key}`; available keys: {available}")
        return data[key]

    sources: dict[str, tuple] = {}
    if args.state_key:
        sources[constants.STATE] = (need(args.state_key, "--state-key"), args.state_slice)
    if args.env_state_key:
        sources[constants.ENV_STATE] = (need(args.env_state_key, "--env-state-key"), slice(None))
    for key in args.extra_key:
        sources[constants.low_dim_key(key)] = (need(key, "--extra-key"), slice(None))
    sources[constants.ACTION] = (need(args.action_key, "--action-key"), slice(None))
    images = None if args.no_video or not args.image_key else need(args.image_key, "--image-key")

    features = {}
    for key, (array, cols) in sources.items():
        size = int(np.prod(array.shape[1:])) if cols == slice(None) else len(range(*cols.indices(array.shape[1])))
        if size < 1:
            raise ValueError(f"`{key}`: the selected columns of `{array.name}` are empty (shape {array.shape})")
        names = args.state_names if key == constants.STATE and args.state_names else _default_names(key, size)
        if len(names) != size:
            raise ValueError(f"`--state-names`: {len(names)} names for {size} state columns")
        features[key] = {"dtype": "float32", "shape": [size], "names": names}
    if images is not None:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"`--image-key {args.image_key}`: expected (N, H, W, 3) images, got {images.shape}")
        features[constants.image_key(args.camera)] = {
            "dtype": "video", "shape": [int(images.shape[1]), int(images.shape[2]), 3],
            "names": ["height", "width", "channels"],
        }
    return sources, images, features


def _encoding(args: argparse.Namespace) -> VideoEncoding:
    kwargs = {"codec": args.video_codec, "gop": args.gop}
    if args.crf is not None:
        kwargs["crf"] = args.crf
    if args.video_codec == "libx264":
        kwargs["preset"] = "veryfast"
    return VideoEncoding(**kwargs)


def _add_episode(writer: LeRobotWriter, args, sources: dict[str, tuple], images, start: int, stop: int) -> None:
    """Read rows start:stop from the zarr and feed them to the writer as one episode."""
    values = {}
    for key, (array, cols) in sources.items():
        rows = read_rows(array, start, stop, args.zarr)
        rows = rows[:, cols] if cols != slice(None) else rows
        values[key] = rows.reshape(stop - start, -1).astype(np.float32)
    frames = images_to_uint8(read_rows(images, start, stop, args.zarr)) if images is not None else None
    camera_key = constants.image_key(args.camera)
    writer.start_episode(task=args.task)
    for t in range(stop - start):
        frame = {key: v[t] for key, v in values.items()}
        if frames is not None:
            frame[camera_key] = frames[t]
        writer.add_frame(frame)  # refuses NaN/inf: the caller names the episode


def convert(args: argparse.Namespace) -> dict:
    """Run the conversion described by parsed `args`; returns a summary dict (episodes, frames, seconds)."""
    root = open_replay(args.zarr)
    sources, images, features = _map_keys(args, root["data"])
    ranges = episode_ranges_from_ends(read_rows(root["meta/episode_ends"], None, None, args.zarr))
    if args.max_episodes is not None:
        if args.max_episodes < 1:
            raise ValueError(f"`--max-episodes` must be >= 1, got {args.max_episodes}")
        ranges = ranges[: args.max_episodes]
    encoding = _encoding(args)
    if layout.info_path(args.output).exists():
        if not args.overwrite:
            raise FileExistsError(f"`{args.output}` already holds a dataset; pass --overwrite or pick a new path")
        shutil.rmtree(args.output)
    writer = LeRobotWriter.create(args.output, fps=args.fps, features=features, robot_type=args.robot_type,
                                  video=encoding, put_timeout_s=_OFFLINE_PUT_TIMEOUT_S)
    started = time.monotonic()
    futures = []
    try:
        for e, (start, stop) in enumerate(ranges):
            try:
                _add_episode(writer, args, sources, images, start, stop)
            except ValueError as err:
                writer.discard_episode()
                raise ValueError(f"episode {e} (rows {start}..{stop}): {err}. The {e} episode(s) before it are "
                                 f"saved in `{args.output}`; fix the source and rerun with --overwrite") from None
            futures.append(writer.save_episode())
            logger.info("episode %d/%d queued (%d frames)", e + 1, len(ranges), stop - start)
        for future in futures:
            future.result()  # raises the writer's error for a failed episode
    finally:
        writer.close()
    return {
        "episodes": len(ranges),
        "frames": int(sum(b - a for a, b in ranges)),
        "seconds": time.monotonic() - started,
        "features": sorted(features),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = convert(args)
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as err:
        print(f"vqbet-convert: error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    print(f"wrote {summary['episodes']} episodes / {summary['frames']} frames to {args.output} "
          f"in {summary['seconds']:.1f} s; features: {', '.join(summary['features'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
