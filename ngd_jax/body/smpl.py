"""Host: SMPL parameters baked to body.npz arrays (docs/design.md section 3) through smplx_jax."""

import jax
import numpy as np
import smplx_jax

from ngd_jax.body import body_data

_FRAMES_PER_CALL = 64  # Frames per batched forward call (bounds memory on long sequences).


@jax.jit
def _forward_frames(model, betas, poses, transl):
  return jax.vmap(smplx_jax.forward, in_axes=(None, None, 0, 0))(model, betas, poses, transl)


def bake_smpl(model: smplx_jax.SMPL, poses: np.ndarray, betas: np.ndarray, transl: np.ndarray) -> body_data.BodyData:
  """Host: BodyData of an SMPL motion: poses f[T,3K] axis-angle, betas f[S], transl f[T,3].

  rest_vertices is the shaped body in zero pose; transforms are SMPL's A_k with translation, so
  LBS of the rest vertices without pose blend shapes (the garment's skinning, docs/method.md section 2)
  follows the skeleton; posed_vertices is the full SMPL body (with pose blend shapes); pose = poses.
  """
  poses = np.asarray(poses, np.float32)
  betas = np.asarray(betas, np.float32)
  transl = np.asarray(transl, np.float32)
  num_pose = 3 * model.num_joints
  if poses.ndim != 2 or poses.shape[1] != num_pose:
    raise ValueError(f'poses has shape {poses.shape}, expected (T, {num_pose}) axis-angle per frame.')
  if transl.shape != (poses.shape[0], 3):
    raise ValueError(f'transl has shape {transl.shape}, expected ({poses.shape[0]}, 3) to match poses.')
  if betas.ndim != 1 or betas.shape[0] > model.num_betas:
    raise ValueError(f'betas has shape {betas.shape}, expected (S,) with S <= {model.num_betas}.')
  transforms, posed = [], []
  for start in range(0, poses.shape[0], _FRAMES_PER_CALL):
    end = start + _FRAMES_PER_CALL
    out = _forward_frames(model, betas, poses[start:end], transl[start:end])
    transforms.append(np.asarray(out.transforms))
    posed.append(np.asarray(out.vertices))
  rest = smplx_jax.shape_blend(model, betas)
  names = model.joint_names
  return body_data.validate_body(
      body_data.BodyData(
          rest_vertices=np.asarray(rest),
          faces=np.asarray(model.faces),
          skinning_weights=np.asarray(model.weights),
          transforms=np.concatenate(transforms),
          pose=poses,
          parents=np.asarray(model.parents, np.int32),
          joint_names=None if names is None else np.array(names),
          posed_vertices=np.concatenate(posed),
      ),
      'baked SMPL body',
  )
