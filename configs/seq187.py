"""Paper setting for 4D-Dress sequence 187: the long skirt of subject 00187.

The paper's loose-garment case; 4D-Dress lists the outfit as a dress (upper + lower labels).

The paper (docs/method.md section 8) names subjects, not takes, and its exact takes and frame ranges
are not published. Suggested: 00187/Inner/Take4 (a take of the dataset's own single-view
reconstruction benchmark, in the README of its dataset folder), 100 frames from camera 0004, as in the paper.

Whether the paper reconstructs the whole dress or only its skirt is not stated; the import below
takes the whole garment (--garment=dress); for the skirt part alone use --garment=lower and
config.template.garment='skirt'. The long skirt remeshes at epochs 400 and 800 (docs/method.md section 6).

Import (SMPL model file: yours, of the subject's gender; normals/depth: folders of per-frame estimates,
e.g. Sapiens as in the paper, or 'oracle' for an upper bound rendered from the scan):

    python -m ngd_jax.data.dress4d --take=4D-DRESS/00187/Inner/Take4 --garment=dress \
        --camera=0004 --smpl_model=/path/to/SMPL_FEMALE.pkl --out=sequences/seq187 \
        --first=0 --last=99 --normals=/path/to/normals --depth=/path/to/depth
    python -m ngd_jax.main --config=configs/seq187.py --workdir=runs/seq187 \
        --config.data.path=sequences/seq187
"""

from configs import dress4d


def get_config():
  config = dress4d.get_config('dress')  # Torso-to-legs template.
  config.remesh.epochs = (400, 800)  # Long skirt (docs/method.md section 6).
  return config
