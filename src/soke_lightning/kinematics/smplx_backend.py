"""The SMPL-X joint backend: official frames -> the joints SOKE evaluates on (docs/design.md §2.8, §6.1), exactly.

Needs the ``smplx`` package (optional extra, non-commercial licence) and the user's SMPL-X model file. The layer
is built once with SOKE's settings — neutral gender, ``use_pca=False``, ``flat_hand_mean=False`` (hand poses are
offsets from the mean hand), face contour on, 10 betas and 10 expression coefficients, no internal parameters —
and moves with the module (``.to(device)``). Frames go through it in chunks.

Output joints (J = 186), metres, SMPL-X frame:

* 0-143: the layer's 144 joints (55 skeleton, 21 vertex joints: nose 55, right/left eye 56/57, right/left ear
  58/59, feet 60-65, fingertips 66-75; 51 face landmarks; 17 contour landmarks);
* 144-164 / 165-185: the left / right 21-point hand sets *regressed from the posed mesh* as SOKE's evaluation
  does: the wrist (J-regressor row 20 / 21), then thumb, index, middle, ring, pinky with three J-regressor rows and
  one fingertip vertex each.

Joint sets: ``body`` = (12, 16, 17, 18, 19, 20, 21, 59, 58, 57, 56, 55), ``lhand`` = 144..164,
``rhand`` = 165..185, ``body_align`` = 0..143 (SOKE fits the body Procrustes on all 144 SMPL-X joints).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from soke_lightning.core.errors import MissingFileError
from soke_lightning.core.layout import FIXED_BETAS, RAW_DIM, RAW_SLICES
from soke_lightning.kinematics.base import BODY_SET_NAMES, JointBackend

#: Environment variable naming the SMPL-X model directory (or file) when none is configured.
ENV_VAR = "SOKE_SMPLX_DIR"
NUM_SMPLX_JOINTS = 144

#: docs/evaluation.md §6.1: (J-regressor rows, fingertip vertex) per finger in set order thumb, index, middle, ring, pinky.
HAND_REGRESSION: dict[str, tuple[int, tuple[tuple[tuple[int, int, int], int], ...]]] = {
    "left": (20, (((37, 38, 39), 5361), ((25, 26, 27), 4933), ((28, 29, 30), 5058), ((34, 35, 36), 5169),
                  ((31, 32, 33), 5286))),
    "right": (21, (((52, 53, 54), 8079), ((40, 41, 42), 7669), ((43, 44, 45), 7794), ((49, 50, 51), 7905),
                   ((46, 47, 48), 8022))),
}
#: SMPL-X output ids of the body set, in SOKE order (:data:`BODY_SET_NAMES`).
SMPLX_BODY_SET: tuple[int, ...] = (12, 16, 17, 18, 19, 20, 21, 59, 58, 57, 56, 55)
_FINGERS = ("thumb", "index", "middle", "ring", "pinky")


def resolve_model_file(model_dir: str | os.PathLike | None, gender: str = "neutral", ext: str = "npz") -> Path:
    """Find ``SMPLX_<GENDER>.<ext>`` from a file path, its folder, or a folder holding ``smplx/``.

    Falls back to the ``SOKE_SMPLX_DIR`` environment variable; raises FileNotFoundError naming what was looked for.
    """
    source = "argument model_dir"
    if model_dir is None:
        model_dir, source = os.environ.get(ENV_VAR), f"environment variable {ENV_VAR}"
    fname = f"SMPLX_{gender.upper()}.{ext}"
    if not model_dir:
        raise MissingFileError(
            f"the smplx joint backend needs the SMPL-X model file {fname}: pass model_dir=... (the folder holding "
            f"{fname} or smplx/{fname}) or set {ENV_VAR}; download it from https://smpl-x.is.tue.mpg.de"
        )
    path = Path(model_dir).expanduser()
    candidates = [path] if path.is_file() else [path / fname, path / "smplx" / fname]
    for cand in candidates:
        if cand.is_file():
            return cand
    raise MissingFileError(
        f"no SMPL-X model at {path} (from {source}): expected one of {[str(c) for c in candidates]}; the file "
        f"comes from https://smpl-x.is.tue.mpg.de (models_smplx_v1_1), {ext} format"
    )


class SmplxBackend(JointBackend):
    """SMPL-X forward pass with SOKE's evaluation settings (see the module docstring for the joint layout).

    Args:
        model_dir: folder with ``SMPLX_NEUTRAL.npz`` (or ``smplx/SMPLX_NEUTRAL.npz``), or the file itself;
            default ``$SOKE_SMPLX_DIR``.
        gender: model gender ("neutral" in SOKE).
        ext: model file extension ("npz"; "pkl" files need chumpy-free conversion first).
        betas: "fixed" (SOKE's single shape vector, docs/design.md §2.8) or "raw" (the frame's own shape values).
        chunk_size: frames per layer call (bounds the vertex memory: ~125 kB per frame in float32).
    """

    name = "smplx"

    def __init__(self, model_dir: str | os.PathLike | None = None, gender: str = "neutral", ext: str = "npz",
                 betas: str = "fixed", chunk_size: int = 512) -> None:
        super().__init__()
        import smplx  # optional extra: imported here so the rest of the package works without it

        if betas not in ("fixed", "raw"):
            raise ValueError(f"betas must be 'fixed' (SOKE) or 'raw', got {betas!r}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.model_file = resolve_model_file(model_dir, gender, ext)
        self.betas_mode = betas
        self.chunk_size = int(chunk_size)
        self.layer = smplx.SMPLX(
            str(self.model_file), gender=gender, ext=ext, use_pca=False, flat_hand_mean=False,
            use_face_contour=True, num_betas=10, num_expression_coeffs=10,
            create_global_orient=False, create_body_pose=False, create_betas=False, create_left_hand_pose=False,
            create_right_hand_pose=False, create_expression=False, create_jaw_pose=False, create_leye_pose=False,
            create_reye_pose=False, create_transl=False,
        )
        num_vertices = self.layer.v_template.shape[0]
        regressor = self.layer.J_regressor  # [55, V]
        rows, names = [], []
        for side, (wrist_row, fingers) in HAND_REGRESSION.items():
            rows.append(regressor[wrist_row])
            names.append(f"{side}_hand_wrist")
            for finger, (joint_rows, tip) in zip(_FINGERS, fingers):
                for k, r in enumerate(joint_rows, start=1):
                    rows.append(regressor[r])
                    names.append(f"{side}_hand_{finger}{k}")
                onehot = torch.zeros(num_vertices, dtype=regressor.dtype)
                onehot[tip] = 1.0
                rows.append(onehot)
                names.append(f"{side}_hand_{finger}_tip")
        #: [42, V]: the hand points as linear combinations of the posed vertices.
        self.register_buffer("hand_regressor", torch.stack(rows), persistent=False)
        self.register_buffer("fixed_betas", torch.tensor(FIXED_BETAS, dtype=torch.float32), persistent=False)

        from smplx.joint_names import JOINT_NAMES

        base = list(JOINT_NAMES[:NUM_SMPLX_JOINTS])
        base += [f"smplx_joint_{i}" for i in range(len(base), NUM_SMPLX_JOINTS)]
        self.joint_names = tuple(base + names)
        left = tuple(range(NUM_SMPLX_JOINTS, NUM_SMPLX_JOINTS + 21))
        right = tuple(range(NUM_SMPLX_JOINTS + 21, NUM_SMPLX_JOINTS + 42))
        self.joint_sets = {
            "body": SMPLX_BODY_SET,
            "lhand": left,
            "rhand": right,
            "body_align": tuple(range(NUM_SMPLX_JOINTS)),
        }
        assert len(SMPLX_BODY_SET) == len(BODY_SET_NAMES)
        parents = [int(p) for p in self.layer.parents.tolist()]
        bones = [(p, c) for c, p in enumerate(parents) if p >= 0]
        for hand in (left, right):  # wrist -> each finger's 3 joints -> tip
            for f in range(5):
                chain = (hand[0],) + hand[1 + 4 * f : 5 + 4 * f]
                bones += list(zip(chain[:-1], chain[1:]))
        self.bones = tuple(bones)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """Args: raw [..., 179] official frames. Returns: joints [..., 186, 3] (dtype/device of ``raw``)."""
        if raw.shape[-1] != RAW_DIM:
            raise ValueError(f"SmplxBackend expects official frames [..., {RAW_DIM}], got shape {tuple(raw.shape)}")
        lead = raw.shape[:-1]
        dtype = self.layer.v_template.dtype
        flat = raw.reshape(-1, RAW_DIM).to(dtype)
        outs = [self._chunk(flat[s : s + self.chunk_size]) for s in range(0, flat.shape[0], self.chunk_size)]
        joints = torch.cat(outs) if outs else flat.new_zeros(0, len(self.joint_names), 3)
        return joints.reshape(*lead, len(self.joint_names), 3).to(raw.dtype)

    def _chunk(self, frames: torch.Tensor) -> torch.Tensor:
        n = frames.shape[0]
        zeros3 = frames.new_zeros(n, 3)
        if self.betas_mode == "fixed":
            betas = self.fixed_betas.to(frames.dtype).expand(n, -1)
        else:
            betas = frames[:, RAW_SLICES["smplx_shape"]]
        out = self.layer(
            global_orient=frames[:, RAW_SLICES["smplx_root_pose"]],
            body_pose=frames[:, RAW_SLICES["smplx_body_pose"]],
            left_hand_pose=frames[:, RAW_SLICES["smplx_lhand_pose"]],
            right_hand_pose=frames[:, RAW_SLICES["smplx_rhand_pose"]],
            jaw_pose=frames[:, RAW_SLICES["smplx_jaw_pose"]],
            expression=frames[:, RAW_SLICES["smplx_expr"]],
            betas=betas, leye_pose=zeros3, reye_pose=zeros3, transl=zeros3, return_verts=True,
        )
        if out.joints.shape[1] != NUM_SMPLX_JOINTS:
            raise RuntimeError(f"the SMPL-X layer returned {out.joints.shape[1]} joints, expected "
                               f"{NUM_SMPLX_JOINTS} (face contour on); check the model file {self.model_file}")
        hands = torch.einsum("kv,nvc->nkc", self.hand_regressor.to(out.vertices.dtype), out.vertices)
        return torch.cat([out.joints, hands], dim=1)
