"""Paper setting for 4D-Dress sequence 185: the dress of subject 00185.

4D-Dress has no dress label: the import takes the upper and lower labels together.

The paper (docs/method.md section 8) names subjects, not takes, and its exact takes and frame ranges
are not published. Suggested: 00185/Inner/Take7 (a take of the dataset's own single-view
reconstruction benchmark, in the README of its dataset folder), 100 frames from camera 0004, as in the paper.

Import (SMPL model file: yours, of the subject's gender; normals/depth: folders of per-frame estimates,
e.g. Sapiens as in the paper, or 'oracle' for an upper bound rendered from the scan):

    python -m ngd_jax.data.dress4d --take=4D-DRESS/00185/Inner/Take7 --garment=dress \
        --camera=0004 --smpl_model=/path/to/SMPL_FEMALE.pkl --out=sequences/seq185 \
        --first=0 --last=99 --normals=/path/to/normals --depth=/path/to/depth
    python -m ngd_jax.main --config=configs/seq185.py --workdir=runs/seq185 \
        --config.data.path=sequences/seq185
"""

from configs import dress4d


def get_config():
  return dress4d.get_config('dress')  # Torso-to-legs template.
