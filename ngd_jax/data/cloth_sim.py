"""Host: loose garments simulated as cloth with MuJoCo flex (the synthetic ground truth).

The garment is an open, flared tube pinned at its top ring (a skirt at the waist, a strapless
dress under the arms). MuJoCo quirks this module works around (docs/notes.md, "Cloth
simulation for synthetic ground truth"): flex elasticity refuses mocap parents, so the pinned ring belongs to a free
"anchor" body welded to a mocap target that follows one bone's LBS transform; implicit
integrators reject flex elasticity, so the Euler integrator runs with a small step; flex cannot
collide with an animated mesh, so the body is proxied by capsules on mocap bodies that follow the
bones. elastic2d="both" is needed: "bend" alone leaves the membrane without stretch stiffness.
"""

from typing import NamedTuple

import mujoco
import numpy as np

from ngd_jax.body import anny

# Proxy capsules: (bone that moves it, start joint, end joint, bones whose vertices set its
# radius, pieces, drop). The segment is cut into `pieces` capsules, each with its own radius, so
# that tapered limbs are followed; `drop` lowers it (m): the second pelvis capsule fills the hips
# below the waist, where the first one must stay small to clear the pinned waist ring.
_CAPSULES = (
    ('root', 'upperleg01.L', 'upperleg01.R', ('root', 'spine05'), 1, 0.0),
    ('root', 'upperleg01.L', 'upperleg01.R', ('root', 'spine05', 'upperleg01.L', 'upperleg01.R'),
     1, 0.07),
    ('spine04', 'spine05', 'spine02', ('spine04', 'spine03'), 2, 0.0),
    ('spine02', 'spine02', 'neck01', ('spine02', 'spine01'), 2, 0.0),
    ('upperleg01.L', 'upperleg01.L', 'lowerleg01.L', ('upperleg01.L',), 3, 0.0),
    ('upperleg01.R', 'upperleg01.R', 'lowerleg01.R', ('upperleg01.R',), 3, 0.0),
    ('lowerleg01.L', 'lowerleg01.L', 'foot.L', ('lowerleg01.L',), 2, 0.0),
    ('lowerleg01.R', 'lowerleg01.R', 'foot.R', ('lowerleg01.R',), 2, 0.0),
    ('upperarm01.L', 'upperarm01.L', 'lowerarm01.L', ('upperarm01.L',), 1, 0.0),
    ('upperarm01.R', 'upperarm01.R', 'lowerarm01.R', ('upperarm01.R',), 1, 0.0),
    ('lowerarm01.L', 'lowerarm01.L', 'wrist.L', ('lowerarm01.L',), 1, 0.0),
    ('lowerarm01.R', 'lowerarm01.R', 'wrist.R', ('lowerarm01.R',), 1, 0.0),
)
_RADIUS_QUANTILE = 0.9  # Capsule radius = this quantile of its vertices' distances (near the skin).
# Bones whose vertices are not part of the trunk outline a garment must clear (arms hang apart).
_ARM_PREFIXES = ('shoulder', 'upperarm', 'lowerarm', 'wrist')


class Capsules(NamedTuple):
  """Proxy capsules in the body's rest space: bone i32[C], start/end f32[C, 3], radius f32[C]."""
  bone: np.ndarray
  start: np.ndarray
  end: np.ndarray
  radius: np.ndarray


class ClothParams(NamedTuple):
  """Material and solver parameters of the simulated garment (SI units)."""
  young: float = 5e4  # Young's modulus (Pa) of the membrane and bending model.
  poisson: float = 0.2  # Poisson ratio.
  thickness: float = 8e-4  # Shell thickness (m).
  density: float = 0.4  # Areal density (kg/m^2); lighter cloth needs a smaller timestep.
  damping: float = 2e-3  # Elastic damping.
  edge_damping: float = 0.02  # Edge damping (air drag-like).
  friction: float = 0.4  # Cloth-body friction.
  radius: float = 0.005  # Collision radius of the cloth (m).
  timestep: float = 1e-3  # Euler step (s).


class ClothMesh(NamedTuple):
  """Open tube garment in the body's rest space: vertices f32[V, 3], faces i32[F, 3] (CCW from
  outside), pinned i32[P] (top ring), uv f32[V, 2] (u around, v from top 0 to hem 1)."""
  vertices: np.ndarray
  faces: np.ndarray
  pinned: np.ndarray
  uv: np.ndarray


def _segment_distance(points, start, end):
  d = end - start
  t = np.clip((points - start) @ d / (d @ d), 0.0, 1.0)
  return np.linalg.norm(points - (start + t[:, None] * d), axis=-1)


def proxy_capsules(body: anny.AnnyBody, clear_of: np.ndarray, margin: float) -> Capsules:
  """Host: capsules along the main bones, near the skin and clear of the rest garment.

  The radius is a quantile of the capsule's skin vertices' distances, capped so that every
  point of `clear_of` f[N, 3] (the garment at rest) lies at least `margin` outside: a garment
  that starts inside a capsule makes the first contacts explode.
  """
  index = {name: k for k, name in enumerate(body.joint_names)}
  dominant = body.skinning_weights.argmax(1)
  bones, starts, ends, radii = [], [], [], []
  clear_of = np.asarray(clear_of, np.float64)
  for bone, a, b, owners, pieces, drop in _CAPSULES:
    first = body.joints[index[a]].astype(np.float64) - [0.0, drop, 0.0]
    last = body.joints[index[b]].astype(np.float64) - [0.0, drop, 0.0]
    points = body.rest_vertices[np.isin(dominant, [index[o] for o in owners])].astype(np.float64)
    along = (points - first) @ (last - first) / ((last - first) @ (last - first))
    for i in range(pieces):
      start = first + (last - first) * i / pieces
      end = first + (last - first) * (i + 1) / pieces
      # Points beyond the segment's ends belong to the first / last piece.
      near = ((along >= i / pieces) | (i == 0)) & ((along <= (i + 1) / pieces) | (i == pieces - 1))
      dist = _segment_distance(points[near], start, end)
      room = _segment_distance(clear_of, start, end).min() - margin
      bones.append(index[bone])
      starts.append(start)
      ends.append(end)
      radii.append(max(min(np.quantile(dist, _RADIUS_QUANTILE), room), 0.01))
  return Capsules(np.asarray(bones, np.int32), np.asarray(starts, np.float32),
                  np.asarray(ends, np.float32), np.asarray(radii, np.float32))


def pose_capsules(capsules: Capsules, transforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Host: capsule end points f32[T, C, 3] (start, end) under LBS transforms f32[T, K, 4, 4]."""
  a = transforms[:, capsules.bone]
  start = np.einsum('tcij,cj->tci', a[..., :3, :3], capsules.start) + a[..., :3, 3]
  end = np.einsum('tcij,cj->tci', a[..., :3, :3], capsules.end) + a[..., :3, 3]
  return start, end


def capsule_penetration(points: np.ndarray, start: np.ndarray, end: np.ndarray,
                        radius: np.ndarray) -> np.ndarray:
  """Host: depth f[..., N] of each point inside the union of capsules (0 outside).

  points f[N, 3]; start, end f[C, 3]; radius f[C].
  """
  depth = np.zeros(points.shape[0])
  for s, e, r in zip(start, end, radius):
    depth = np.maximum(depth, r - _segment_distance(points, s, e))
  return depth


def trunk_profile(body: anny.AnnyBody, heights: np.ndarray, angles: np.ndarray,
                  band: float = 0.02) -> np.ndarray:
  """Host: outline radius f64[H, A] of the body (arms excluded) around the vertical axis.

  For each height and direction (angle about +Y, 0 = +Z forward) the largest horizontal distance
  of a trunk/leg vertex within `band` of that height and 1/A turn of that direction, from the
  axis through the root joint. Bins without vertices take their neighbours' maximum (so the gap
  between the legs counts as filled).
  """
  arm = np.array([n.startswith(_ARM_PREFIXES) for n in body.joint_names])
  keep = ~arm[body.skinning_weights.argmax(1)]
  v = body.rest_vertices[keep].astype(np.float64) - body.joints[0]
  radial = np.hypot(v[:, 0], v[:, 2])
  theta = np.arctan2(v[:, 0], v[:, 2]) % (2 * np.pi)
  num = len(angles)
  bins = np.floor(theta / (2 * np.pi) * num).astype(int) % num
  profile = np.zeros((len(heights), num))
  for i, h in enumerate(heights):
    near = np.abs(body.rest_vertices[keep, 1] - h) < band
    np.maximum.at(profile[i], bins[near], radial[near])
  for _ in range(num):  # Spread into empty bins, and make the outline star-convex-ish smooth.
    profile = np.maximum(profile, 0.5 * (np.roll(profile, 1, 1) + np.roll(profile, -1, 1)) * 0.999)
  return profile


def tube_mesh(body: anny.AnnyBody, top: float, length: float, flare: float, clearance: float,
              rings: int, segments: int) -> ClothMesh:
  """Host: flared tube from height `top` down `length` m that clears the body by `clearance`.

  The radius at each ring is max(top outline + clearance + (top - y) * flare, body outline +
  clearance), so the rest shape hangs free of the body (a skirt or a strapless dress).
  """
  if rings < 2 or segments < 3:
    raise ValueError(f'tube_mesh needs rings >= 2 and segments >= 3, got {rings}, {segments}.')
  heights = top - length * np.linspace(0.0, 1.0, rings)
  angles = 2 * np.pi * np.arange(segments) / segments
  outline = trunk_profile(body, heights, angles)
  cone = outline[:1] + clearance + (top - heights)[:, None] * flare
  radius = np.maximum(cone, outline + clearance)
  radius = np.maximum.accumulate(radius, axis=0)  # Never narrower below than above.
  centre = body.joints[0]
  x = centre[0] + radius * np.sin(angles)
  z = centre[2] + radius * np.cos(angles)
  y = np.broadcast_to(heights[:, None], radius.shape)
  vertices = np.stack([x, y, z], -1).reshape(-1, 3)
  i, j = np.meshgrid(np.arange(rings - 1), np.arange(segments), indexing='ij')
  a = i * segments + j
  b = i * segments + (j + 1) % segments
  c, d = a + segments, b + segments
  # Angles grow counter-clockwise seen from above (+Y); going down the rings, (a, c, b) is CCW
  # seen from outside (outward normals, as the renderer's diffuse shading needs).
  faces = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3),
                          np.stack([b, c, d], -1).reshape(-1, 3)])
  uv = np.stack(np.meshgrid(np.arange(segments) / segments, np.linspace(0, 1, rings)),
                -1).reshape(-1, 2)
  return ClothMesh(vertices.astype(np.float32), faces.astype(np.int32),
                   np.arange(segments, dtype=np.int32), uv.astype(np.float32))


def _numbers(array) -> str:
  return ' '.join(f'{x:.6g}' for x in np.asarray(array).ravel())


def _model_xml(mesh: ClothMesh, capsules: Capsules, anchor_point: np.ndarray,
               params: ClothParams) -> str:
  """Host: MJCF text of the anchor body + flex garment + mocap capsules (Y up, gravity -Y)."""
  faces = mesh.faces
  tri = mesh.vertices[faces]
  area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
  caps = '\n'.join(
      f'<body name="cap{c}" mocap="true" pos="{_numbers(s)}">'
      f'<geom type="capsule" fromto="0 0 0 {_numbers(e - s)}" size="{r:.6g}"/></body>'
      for c, (s, e, r) in enumerate(zip(capsules.start, capsules.end, capsules.radius)))
  return f'''<mujoco>
<option timestep="{params.timestep:.9g}" integrator="Euler" gravity="0 -9.81 0"/>
<worldbody>
<body name="target" mocap="true" pos="{_numbers(anchor_point)}"/>
<body name="anchor" pos="{_numbers(anchor_point)}"><freejoint/>
<geom type="sphere" size="0.02" contype="0" conaffinity="0" mass="2"/>
<flexcomp name="cloth" type="direct" dim="2" dof="full" radius="{params.radius}"
 mass="{params.density * area:.6g}" point="{_numbers(mesh.vertices - anchor_point)}"
 element="{_numbers(faces)}">
<edge equality="false" damping="{params.edge_damping}"/>
<elasticity young="{params.young}" poisson="{params.poisson}" thickness="{params.thickness}"
 elastic2d="both" damping="{params.damping}"/>
<contact condim="3" selfcollide="none" friction="{params.friction}"/>
<pin id="{_numbers(mesh.pinned)}"/>
</flexcomp></body>
{caps}
</worldbody>
<equality><weld body1="anchor" body2="target" solref="0.005 1"/></equality>
</mujoco>'''


def _quaternion(rotation: np.ndarray) -> np.ndarray:
  quat = np.zeros(4)
  mujoco.mju_mat2Quat(quat, np.ascontiguousarray(rotation, np.float64).ravel())
  return quat


def simulate_cloth(mesh: ClothMesh, capsules: Capsules, anchor_bone: int,
                   anchor_point: np.ndarray, transforms: np.ndarray, control_dt: float,
                   record: np.ndarray, params: ClothParams) -> np.ndarray:
  """Host: simulates the garment under a body motion sampled at the control rate.

  Args:
    mesh: the garment at rest (body rest space), the top ring pinned to the anchor.
    capsules: body proxy in rest space.
    anchor_bone: bone whose transform moves the pinned ring (rigidly, through the weld).
    anchor_point: f[3] rest point of the anchor body (a point on the bone).
    transforms: f[N, K, 4, 4] body LBS transforms at times control_dt * n; transforms[0] must be
      the rest pose (identity), as the cloth starts at rest.
    control_dt: seconds between control samples (the step is shortened to divide it).
    record: i[R] increasing control indices whose cloth state is returned.
    params: material and solver parameters.

  Returns:
    f32[R, V, 3] world-frame garment vertices at the recorded control steps.
  """
  steps = int(np.ceil(control_dt / params.timestep - 1e-9))  # The step divides control_dt.
  params = params._replace(timestep=control_dt / steps)
  if not np.allclose(transforms[0], np.eye(4), atol=1e-5):
    raise ValueError('transforms[0] must be the rest pose (identity): start the motion at rest.')
  model = mujoco.MjModel.from_xml_string(_model_xml(mesh, capsules, anchor_point, params))
  data = mujoco.MjData(model)
  flex_vertices = slice(model.flex_vertadr[0], model.flex_vertadr[0] + model.flex_vertnum[0])
  out = np.zeros((len(record), mesh.vertices.shape[0], 3), np.float32)
  record_slot = {int(n): i for i, n in enumerate(record)}
  anchor = np.append(anchor_point, 1.0)
  cap_start = np.concatenate([capsules.start, np.ones((len(capsules.bone), 1))], 1)
  for n in range(int(record.max()) + 1):
    a = transforms[n]
    data.mocap_pos[0] = (a[anchor_bone] @ anchor)[:3]
    data.mocap_quat[0] = _quaternion(a[anchor_bone, :3, :3])
    for c, bone in enumerate(capsules.bone):
      data.mocap_pos[c + 1] = (a[bone] @ cap_start[c])[:3]
      data.mocap_quat[c + 1] = _quaternion(a[bone, :3, :3])
    if n > 0:
      mujoco.mj_step(model, data, nstep=steps)
    else:
      mujoco.mj_forward(model, data)
    if n in record_slot:
      out[record_slot[n]] = data.flexvert_xpos[flex_vertices]
  # MuJoCo resets the state when it diverges (and warns): a reset is as fatal as a nan.
  if data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number or not np.all(np.isfinite(out)):
    raise ValueError('The cloth simulation diverged: lower ClothParams.timestep, raise the '
                     'density or lower young in the preset.')
  return out
