"""NGD shading (docs/method.md section 3), topology, texture and colour rendering."""

import jax
import jax.numpy as jnp
import numpy as np

from ngd_jax import meshes
from ngd_jax import render

NEAR, FAR = 0.05, 20.0


def _camera(res, focal, angle=0.0, distance=2.0):
  K = np.array([[focal, 0, (res[1] - 1) / 2], [0, focal, (res[0] - 1) / 2], [0, 0, 1]], np.float32)
  rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                  [-np.sin(angle), 0, np.cos(angle)]], np.float32)
  world_to_camera = np.eye(4, dtype=np.float32)
  world_to_camera[:3, :3] = rot
  world_to_camera[2, 3] = distance
  return render.camera_to_clip(K, world_to_camera, res, NEAR, FAR), world_to_camera


def _grid(n, size, z_fn=lambda x, y: 0 * x):
  u = np.linspace(-size / 2, size / 2, n + 1)
  xs, ys = np.meshgrid(u, u)
  verts = np.stack([xs, ys, z_fn(xs, ys)], -1).reshape(-1, 3).astype(np.float32)
  idx = np.arange((n + 1)**2).reshape(n + 1, n + 1)
  a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
  faces = np.concatenate([np.stack([a, d, b], -1).reshape(-1, 3),
                          np.stack([a, c, d], -1).reshape(-1, 3)]).astype(np.int32)
  return verts, faces


def _render(verts, faces, res, focal, angle=0.0, backend='ffi'):
  world_to_clip, world_to_camera = _camera(res, focal, angle)
  return render.render_garment(verts, faces, render.build_topology(faces), world_to_clip,
                               world_to_camera, res, backend)


def test_plane_at_known_depth_gives_exact_depth_normal_diffuse():
  res = (40, 40)
  verts, faces = _grid(4, 1.0)  # Plane z = 0 at camera depth 2, facing the camera.
  out = _render(verts, faces, res, 40.0)
  inner = (slice(15, 25), slice(15, 25))
  z_ndc = (FAR + NEAR) / (FAR - NEAR) - 2 * FAR * NEAR / ((FAR - NEAR) * 2.0)
  np.testing.assert_allclose(out.depth[inner], 0.5 * (1 - z_ndc), atol=1e-6)
  np.testing.assert_allclose(out.normal[inner], np.broadcast_to([0, 0, -1], (10, 10, 3)),
                             atol=1e-6)
  np.testing.assert_allclose(out.diffuse[inner], 1.0, atol=1e-6)
  np.testing.assert_array_equal(out.front[inner], 1.0)
  np.testing.assert_array_equal(out.alpha[inner], 1.0)
  corner = (slice(0, 3), slice(0, 3))
  for channel in out[:5]:
    np.testing.assert_array_equal(channel[corner], 0.0)


def test_rotated_plane_normal_and_back_face():
  res = (32, 32)
  verts, faces = _grid(2, 1.0)
  angle = 0.5
  out = _render(verts, faces, res, 30.0, angle)
  # Camera frame normal of the world -z normal, rotated by the camera rotation.
  expected = np.array([-np.sin(angle), 0.0, -np.cos(angle)])
  np.testing.assert_allclose(out.normal[16, 16], expected, atol=1e-5)
  np.testing.assert_allclose(out.diffuse[16, 16, 0], np.cos(angle), atol=1e-5)
  back = _render(verts, faces[:, ::-1].copy(), res, 30.0, angle)  # Seen from behind.
  assert float(back.front.sum()) == 0.0 and float(back.alpha.sum()) == 0.0
  assert float(back.depth[16, 16, 0]) > 0 and float(back.diffuse.sum()) == 0.0


def test_two_resolutions_give_consistent_coverage():
  verts, faces = _grid(10, 1.0, lambda x, y: 0.2 * np.sin(3 * x) * np.cos(3 * y))
  low = _render(verts, faces, (40, 40), 30.0, 0.3).alpha[..., 0]
  high = _render(verts, faces, (80, 80), 60.0, 0.3).alpha[..., 0]
  pooled = np.asarray(high).reshape(40, 2, 40, 2).mean((1, 3))
  assert abs(float(low.sum()) - float(pooled.sum())) < 0.02 * float(low.sum())
  assert np.abs(np.asarray(low) - pooled).mean() < 0.03


def test_vmap_over_frames_and_padding_match_single_frames():
  """A jitted vmap over frames gives each frame's own render, and padding faces (0, 0, 0) and copies of
  vertex 0 change nothing. Single frames are jitted too: eager against jit is tests/test_render_kernels.py's,
  and op-by-op it took 22 s of compiles here."""
  res = (24, 24)
  verts, faces = _grid(3, 1.0, lambda x, y: 0.1 * x * y)
  cams = [_camera(res, 25.0, a) for a in (0.0, 0.4)]
  frames = np.stack([verts, verts + np.float32([0.05, -0.02, 0.1])])
  topology = render.build_topology(faces)
  render_one = jax.jit(lambda v, f, t, p, w: render.render_garment(v, f, t, p, w, res, 'ffi'))
  single = [render_one(frames[i], faces, topology, cams[i][0], cams[i][1]) for i in range(2)]
  batched = jax.jit(jax.vmap(lambda v, p, w: render.render_garment(v, faces, topology, p, w, res,
                                                                    'ffi')))(
      frames, jnp.stack([c[0] for c in cams]), jnp.stack([c[1] for c in cams]))
  for i in range(2):
    for a, b in zip(single[i], batched):
      np.testing.assert_allclose(a, b[i], atol=1e-6)
  pad_faces = np.concatenate([faces, np.zeros((6, 3), np.int32)])
  pad_verts = np.concatenate([verts, np.repeat(verts[:1], 4, 0)])
  padded = render_one(pad_verts, pad_faces, render.build_topology(pad_faces), cams[0][0], cams[0][1])
  for a, b in zip(single[0], padded):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_build_topology_against_slow_reference():
  verts, faces = _grid(3, 1.0)
  faces = np.concatenate([faces, [[0, 0, 0]], [[1, 2, 20]], [[2, 1, 21]]]).astype(np.int32)
  opposite = np.asarray(render.build_topology(faces).opposite)
  edge_faces = {}
  for f, face in enumerate(faces):
    if len(set(face.tolist())) < 3:
      continue
    for i in range(3):
      key = tuple(sorted((face[(i + 1) % 3], face[(i + 2) % 3])))
      edge_faces.setdefault(key, []).append((f, i))
  expected = np.full(faces.shape, -1)
  for users in edge_faces.values():
    if len(users) == 2:
      (f, i), (g, j) = users
      expected[f, i], expected[g, j] = faces[g, j], faces[f, i]
  np.testing.assert_array_equal(opposite, expected)
  assert np.all(opposite[-3] == -1)  # Padding face.
  # Edge (1, 2) is shared by three faces (non-manifold: boundary), its other edges by one.
  assert np.all(opposite[-2] == -1)
  assert np.all(opposite[:-3] >= -1) and (opposite[:-3] >= 0).sum() > 20


def test_vertex_normals_area_weighted_and_safe():
  verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [5, 5, 5]], np.float32)
  faces = np.array([[0, 1, 2], [0, 3, 1], [0, 0, 0]], np.int32)  # Areas 0.5 (+z), 0.5 (+y).
  n = np.asarray(meshes.vertex_normals(jnp.asarray(verts), faces))
  np.testing.assert_allclose(n[0], np.array([0, 1, 1]) / np.sqrt(2), atol=1e-6)
  np.testing.assert_allclose(n[2], [0, 0, 1], atol=1e-6)
  np.testing.assert_array_equal(n[4], 0.0)
  g = jax.grad(lambda v: meshes.vertex_normals(v, faces).sum())(jnp.asarray(verts))
  assert np.all(np.isfinite(np.asarray(g)))


def _texture_reference(tex, uv):
  """Slow bilinear lookup with clamp-to-edge, v = 0 at the bottom row."""
  tex_h, tex_w = tex.shape[:2]
  out = np.zeros(uv.shape[:-1] + tex.shape[2:])
  for idx in np.ndindex(uv.shape[:-1]):
    x = min(max(uv[idx][0] * tex_w - 0.5, 0), tex_w - 1)
    y = min(max((1 - uv[idx][1]) * tex_h - 0.5, 0), tex_h - 1)
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    x1, y1 = min(x0 + 1, tex_w - 1), min(y0 + 1, tex_h - 1)
    ax, ay = x - x0, y - y0
    out[idx] = ((1 - ay) * ((1 - ax) * tex[y0, x0] + ax * tex[y0, x1])
                + ay * ((1 - ax) * tex[y1, x0] + ax * tex[y1, x1]))
  return out


def test_texture_bilinear_matches_reference_and_gradients():
  rng = np.random.default_rng(0)
  tex = rng.uniform(size=(5, 7, 3)).astype(np.float32)
  uv = rng.uniform(-0.1, 1.1, size=(6, 4, 2)).astype(np.float32)
  out = render.bilinear_sample(jnp.asarray(tex), jnp.asarray(uv))
  np.testing.assert_allclose(out, _texture_reference(tex, uv), atol=1e-5)
  # v = 0 is the bottom row, u = 0 the left column (texel centres).
  np.testing.assert_allclose(render.bilinear_sample(tex, jnp.array([0.5 / 7, 0.5 / 5])), tex[4, 0],
                             atol=1e-6)
  # Linear in tex: the gradient w.r.t. tex is the reference with a one-hot texture.
  g_tex = jax.grad(lambda t: render.bilinear_sample(t, jnp.asarray(uv))[..., 1].sum())(jnp.asarray(tex))
  one_hot = np.zeros_like(tex)
  one_hot[2, 3, 1] = 1.0
  np.testing.assert_allclose(g_tex[2, 3, 1], _texture_reference(one_hot, uv)[..., 1].sum(),
                             atol=1e-5)
  # uv gradient: central differences (step 1e-3, inside texel cells).
  inner = np.array([[0.33, 0.61], [0.71, 0.27]], np.float32)
  g_uv = np.asarray(jax.grad(lambda q: render.bilinear_sample(jnp.asarray(tex), q).sum())(inner))
  for i in range(2):
    for j in range(2):
      step = np.zeros_like(inner)
      step[i, j] = 1e-3
      fd = (_texture_reference(tex, inner + step).sum()
            - _texture_reference(tex, inner - step).sum()) / 2e-3
      np.testing.assert_allclose(g_uv[i, j], fd, rtol=1e-2, atol=1e-3)


def test_render_colors_constant_colour_and_coverage():
  res = (24, 24)
  verts, faces = _grid(2, 1.0)
  world_to_clip, _ = _camera(res, 20.0)
  colors = np.tile(np.float32([[0.2, 0.5, 0.9]]), (len(verts), 1))
  out = render.render_colors(verts, faces, colors, world_to_clip, res, backend='ffi')
  np.testing.assert_allclose(out.rgb, np.asarray(out.coverage) * colors[0], atol=1e-6)
  assert 50 < float(out.coverage.sum()) < 24 * 24
  soft = render.render_colors(verts, faces, colors, world_to_clip, res,
                              render.build_topology(faces), 'ffi')
  np.testing.assert_allclose(soft.rgb, np.asarray(soft.coverage) * colors[0], atol=1e-6)
  assert abs(float(soft.coverage.sum()) - float(out.coverage.sum())) < 24
