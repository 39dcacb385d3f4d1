"""Paper setting for 4D-Dress sequence 169: the upper garment of subject 00169.

A t-shirt (4D-Dress label 3).

The paper (docs/method.md section 8) names subjects, not takes, and its exact takes and frame ranges
are not published. Suggested: 00169/Inner/Take3 (a take of the dataset's own single-view
reconstruction benchmark, in the README of its dataset folder), 100 frames from camera 0004, as in the paper.

The paper does not say which garment of 00169 it reconstructs; the upper garment is chosen because
it is the one camera 0004 sees whole in every frame and it moves with the arms, while the Inner
lower garment is close-fitting and mostly explained by the body. For the lower one, import with
--garment=lower and set config.template.garment='trousers'.

Import (SMPL model file: yours, of the subject's gender; normals/depth: folders of per-frame estimates,
e.g. Sapiens as in the paper, or 'oracle' for an upper bound rendered from the scan):

    python -m ngd_jax.data.dress4d --take=4D-DRESS/00169/Inner/Take3 --garment=upper \
        --camera=0004 --smpl_model=/path/to/SMPL_MALE.pkl --out=sequences/seq169 \
        --first=0 --last=99 --normals=/path/to/normals --depth=/path/to/depth
    python -m ngd_jax.main --config=configs/seq169.py --workdir=runs/seq169 \
        --config.data.path=sequences/seq169
"""

from configs import dress4d


def get_config():
  return dress4d.get_config('tshirt')  # Upper-body template with sleeves.
