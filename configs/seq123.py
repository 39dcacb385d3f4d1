"""Paper setting for 4D-Dress sequence 123: the outer garment of subject 00123.

A jacket over the inner outfit (4D-Dress label 5).

The paper (docs/method.md section 8) names subjects, not takes, and its exact takes and frame ranges
are not published. Suggested: 00123/Outer/Take10 (a take of the dataset's own single-view
reconstruction benchmark, in the README of its dataset folder), 100 frames from camera 0004, as in the paper.

Import (SMPL model file: yours, of the subject's gender; normals/depth: folders of per-frame estimates,
e.g. Sapiens as in the paper, or 'oracle' for an upper bound rendered from the scan):

    python -m ngd_jax.data.dress4d --take=4D-DRESS/00123/Outer/Take10 --garment=outer \
        --camera=0004 --smpl_model=/path/to/SMPL_FEMALE.pkl --out=sequences/seq123 \
        --first=0 --last=99 --normals=/path/to/normals --depth=/path/to/depth
    python -m ngd_jax.main --config=configs/seq123.py --workdir=runs/seq123 \
        --config.data.path=sequences/seq123
"""

from configs import dress4d


def get_config():
  # No jacket template is built from the body; 'tshirt' (torso and sleeves) is the closest, the
  # static field takes up the jacket's length and collar.
  return dress4d.get_config('tshirt')
