"""Procedural, deterministic body motions for the synthetic sequences (the Anny 24-bone rig).

A motion is a smooth function of time giving per-bone axis-angles (ngd_jax.body.anny.BONES, in
world-aligned rest frames: +X the body's left, +Y up, +Z forward) and a root translation. Before
t = 0 the motion fades in from the rest pose, so the cloth simulation can start at rest and
reach the motion without a jolt (the "pre-roll"); frames are only recorded from t = 0.
"""

from typing import NamedTuple

import numpy as np

from ngd_jax.body import anny

MOTIONS = ('walk', 'turn', 'twirl', 'arms')
_INDEX = {name: k for k, name in enumerate(anny.BONES)}


class MotionParams(NamedTuple):
  """Amplitudes (radians, metres) and rates of a procedural motion; see `motion_pose`."""
  kind: str  # One of MOTIONS.
  cadence: float = 1.0  # Gait cycles (two steps) per second / arm swings per second.
  stride: float = 0.45  # Hip flexion amplitude (rad).
  turn: float = 0.8  # Yaw amplitude of 'turn' (rad).
  twirl_speed: float = 3.0  # Peak yaw rate of 'twirl' (rad/s).
  arm_swing: float = 0.5  # Arm swing amplitude (rad).
  fade_in: float = 0.6  # Seconds of fade-in from the rest pose before t = 0.


def _smoothstep(x: np.ndarray) -> np.ndarray:
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3.0 - 2.0 * x)


def motion_pose(params: MotionParams, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Host: pose f64[T, K, 3] (axis-angle per bone) and root translation f64[T, 3] at `times`.

  Times before -fade_in give the rest pose; the motion's amplitude ramps in smoothly over
  [-fade_in, 0]. All motions keep the pelvis near its rest place (a treadmill-like walk), so a
  fixed camera keeps the person in view.
  """
  if params.kind not in MOTIONS:
    raise ValueError(f'Unknown motion {params.kind!r}: use one of {MOTIONS}.')
  t = np.asarray(times, np.float64)
  ramp = _smoothstep((t + params.fade_in) / max(params.fade_in, 1e-6))
  phase = 2 * np.pi * params.cadence * t
  pose = np.zeros(t.shape + (len(anny.BONES), 3))
  transl = np.zeros(t.shape + (3,))

  def rot(name, axis, angle):
    pose[..., _INDEX[name], axis] += ramp * angle

  gait = params.kind in ('walk', 'turn')
  if gait:
    for side, sign in (('L', 1.0), ('R', -1.0)):
      swing = sign * np.sin(phase)
      # Hip flexion (negative about X moves the leg forward); the knee bends (positive about X)
      # while the leg swings forward; the foot stays roughly level.
      rot(f'upperleg01.{side}', 0, -params.stride * swing)
      knee = 0.9 * params.stride * (0.5 + 0.5 * sign * np.cos(phase)) ** 2
      rot(f'lowerleg01.{side}', 0, knee)
      rot(f'foot.{side}', 0, -0.5 * knee + 0.3 * params.stride * swing)
      rot(f'upperarm01.{side}', 0, params.arm_swing * swing)
      rot(f'lowerarm01.{side}', 0, -0.3 * params.arm_swing * (1 + swing))
    rot('spine04', 1, 0.08 * np.sin(phase))
    rot('spine02', 1, -0.12 * np.sin(phase))
    transl[..., 1] = ramp * 0.02 * (np.cos(2 * phase) - 1)
  if params.kind == 'turn':
    rot('root', 1, params.turn * np.sin(2 * np.pi * 0.35 * t))
  if params.kind == 'twirl':
    # The yaw rate eases in over `ease` seconds (integral of a smoothstep); arms open to the
    # sides; knees flex with the spin.
    ease = 0.8
    x = np.clip(t / ease, 0.0, 1.0)
    yaw = params.twirl_speed * (ease * (x**3 - 0.5 * x**4) + np.maximum(t - ease, 0.0))
    rot('root', 1, yaw)
    for side, sign in (('L', 1.0), ('R', -1.0)):
      rot(f'upperarm01.{side}', 2, sign * 0.6)
      rot(f'lowerarm01.{side}', 0, -0.2)
      rot(f'lowerleg01.{side}', 0, 0.15 * (1 - np.cos(phase)))
      rot(f'upperleg01.{side}', 0, -0.075 * (1 - np.cos(phase)))
  if params.kind == 'arms':
    for side, sign in (('L', 1.0), ('R', -1.0)):
      rot(f'upperarm01.{side}', 2, sign * params.arm_swing * (1 - np.cos(phase)))
      rot(f'upperarm01.{side}', 0, -0.4 * params.arm_swing * np.sin(phase + sign))
      rot(f'lowerarm01.{side}', 0, -0.5 * params.arm_swing * (1 - np.cos(phase)))
    rot('spine02', 1, 0.25 * np.sin(0.5 * phase))
    rot('spine04', 2, 0.08 * np.sin(phase))
  return pose, transl
