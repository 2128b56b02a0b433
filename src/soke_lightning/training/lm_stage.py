"""Stage 2 (AMG): train SignMBart on text -> motion-token codes with a frozen stage-1 tokenizer; generate, decode
and score the motion with SOKE's DTW metrics.

Wiring (docs/design.md §4):

* ``setup`` loads the frozen tokenizer with :meth:`SignTokenizer.from_checkpoint` and asserts the contract with the
  token cache of the DataModule (parts, codebook sizes, tokenizer hash) and with the DataModule's normalisation
  statistics; every error names both values. The tokenizer is held OUTSIDE the module tree: it is never in
  ``state_dict`` (stage-2 checkpoints store its path and hash instead), never in the optimizer, and Lightning's
  ``train()`` calls never switch it out of eval mode.
* The text tokenizer is a local mBART directory (``text_tokenizer: /path/mbart-large-cc25``) or the embedded BPE
  (``text_tokenizer: embedded``) trained in ``setup`` on the training sentences. Every rank trains it (0.2 s,
  deterministic) and then adopts rank zero's copy (broadcast), so all ranks hold the same ids whatever the
  library does with ties. Its files are saved inside every checkpoint (``ckpt["soke_lm"]``) and next to the logs,
  so ``soke generate --ckpt`` rebuilds everything from the stage-2 checkpoint plus the stage-1 path it names.
* Training is teacher-forced on the cached codes (``SignBatch.codes``); the encoder prompt is
  ``batch.prompt`` (text + retrieval string, set by the retrieval callback) or ``batch.text``.
* Validation (on the DataModule's ``val_max_samples`` subset, every ``check_val_every_n_epoch``) and test (the
  whole split): teacher-forced loss, then generation -> per-part decode (each stream padded by repeating its
  last frame, docs/design.md §4.10) -> denormalise -> joints -> :class:`SignMotionMetrics`. Keys:
  ``{val,test}/dtw_jpe/<lang>/<part>``, ``.../dtw_pa_jpe/...`` (part: body, lhand, rhand, hand, avg; lang: each
  language and ``all`` = mean over languages), ``{stage}/steps_per_sample`` (decoder passes a sample needed) and
  ``{stage}/latency_ms_per_sample`` (generation + decoding wall time / batch size). The test adds the SLRTP 2025
  protocol (:class:`~soke_lightning.metrics.slrtp.SLRTPMotionMetrics`, docs/evaluation.md §6.7):
  ``test/slrtp_dtw_mje/<lang>``, ``test/wrist_distance_ratio/<lang>``, ``test/duration_ratio/<lang>`` (lang: each
  language and ``all`` = pooled over the samples) on the body and hand joints, wrists for the distance ratio.
* Retrieval (docs/design.md §5) is one switch: ``retrieval: true`` makes :meth:`LMStage.configure_callbacks` add a
  :class:`~soke_lightning.callbacks.retrieval.RetrievalCallback` built from ``retrieval_settings`` (what a sweep
  toggles with ``--model.init_args.retrieval=True``; the config parser cannot index ``trainer.callbacks``). A callback
  given in ``trainer.callbacks`` still works on its own; both at once is refused. The callback's state (dictionary
  digest, settings) is part of the checkpoint, and a resumed fit must have retrieval on/off as before.
* ``compile: true`` compiles the SignMBart's forward (the teacher-forced training/validation loss) in place with
  ``nn.Module.compile`` (:func:`~soke_lightning.training.common.compile_in_place`): parameter names and checkpoints
  are the same compiled or not; generation stays eager (its shapes change every step).
* ``predict_step`` returns :class:`~soke_lightning.callbacks.prediction_writer.MotionPrediction` objects (generated
  motion + ground truth) for :class:`~soke_lightning.callbacks.prediction_writer.PredictionWriter`.
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningModule
from torchmetrics import MeanMetric

from soke_lightning.callbacks.prediction_writer import MotionPrediction
from soke_lightning.callbacks.retrieval import RetrievalCallback, check_settings
from soke_lightning.core.batch import SignBatch
from soke_lightning.core.errors import CheckpointError, SokeError
from soke_lightning.core.feature_layout import LayoutError, check_same_layout
from soke_lightning.core.io import load_checkpoint
from soke_lightning.core.languages import LANGUAGES, Language, declared_languages, register_language
from soke_lightning.kinematics import get_joint_backend
from soke_lightning.metrics.dtw import SignMotionMetrics, parts_from_joint_sets
from soke_lightning.metrics.functional.parts import MASKABLE_VARIANTS, keypoint_parts
from soke_lightning.metrics.functional.slrtp import slrtp_joints, wrist_joints
from soke_lightning.metrics.slrtp import SLRTPMotionMetrics
from soke_lightning.models.denoise import DenoiseSettings, denoise_prompts, eval_rng, transfer_weights
from soke_lightning.models.generation import GenerationConfig, GenerationResult, cap_result
from soke_lightning.models.sign_mbart import SignMBart
from soke_lightning.models.text_tokenizer import TextTokenizer, tokenizer_files, tokenizer_from_files
from soke_lightning.models.tokenizer import SignTokenizer, decode_streams, tokenizer_hash
from soke_lightning.retrieval.matcher import separator_texts
from soke_lightning.training.common import EvalLoops, adamw_cosine, compile_in_place

log = logging.getLogger(__name__)

#: Checkpoint entry written by :meth:`LMStage.on_save_checkpoint`.
CHECKPOINT_KEY = "soke_lm"
CHECKPOINT_FORMAT = 1
EMBEDDED = "embedded"
METRIC_VARIANTS = ("dtw_jpe", "dtw_pa_jpe")
#: Per-sample means logged by validation/test, as weighted sum-state means (exact under DDP with uneven shards,
#: where Lightning's ``sync_dist`` would average the ranks' means).
EVAL_MEANS = ("loss", "steps_per_sample", "latency_ms_per_sample", "frames_per_sample")


class ContractError(SokeError, ValueError):
    """The frozen tokenizer, the token cache, the data and the LM disagree (sizes, parts, hashes, statistics)."""


def _check_retrieval_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``retrieval_settings`` keys against RetrievalCallback's arguments and their values with
    :func:`~soke_lightning.callbacks.retrieval.check_settings`, so a bad value fails when the config is read."""
    settings = dict(settings or {})
    valid = set(inspect.signature(RetrievalCallback.__init__).parameters) - {"self", "enabled"}
    unknown = sorted(set(settings) - valid)
    if unknown:
        raise ValueError(f"LMStage: retrieval_settings has unknown keys {unknown}; valid: {sorted(valid)} (on/off "
                         f"is model.init_args.retrieval)")
    try:
        check_settings(settings)
    except ValueError as err:
        raise ValueError(f"LMStage: retrieval_settings: {err} (--model.init_args.retrieval_settings.KEY=VALUE)"
                         ) from None
    return settings


class LMStage(EvalLoops, LightningModule):
    """Trains :class:`SignMBart` against a frozen :class:`SignTokenizer` and evaluates generated motion.

    Args:
        tokenizer_ckpt: stage-1 checkpoint (TokenizerStage ``.ckpt`` or ``soke import-official`` output).
        tokenizer_hash: expected :func:`tokenizer_hash` of that checkpoint (None: not checked; the token cache
            is always checked against the loaded tokenizer).
        text_tokenizer: ``"embedded"`` (BPE trained on the training sentences in ``setup``) or a local directory
            (a copy of mbart-large-cc25 with ``sentencepiece.bpe.model``, or a saved run tokenizer).
        text_vocab_size: target vocabulary size of the embedded tokenizer.
        mbart: mBART architecture: a mapping of ``MBartConfig`` arguments (random init) or a local pretrained
            directory (e.g. mbart-large-cc25, together with ``text_tokenizer`` pointing at the same directory).
        decoding: "multihead" (SOKE), "flattened" or "parallel" (docs/design.md §4.11 baselines).
        lambda_hand: λ of the fused decoder input (paper 1/3; the released code 0.4).
        embed_scale_fused, ignore_pad_in_loss, separate_heads, mean_resizing, label_smoothing: see :class:`SignMBart`.
        max_source_length: encoder tokens per prompt (SOKE: 256); longer prompts are truncated.
        generation: :class:`GenerationConfig` fields for validation/test/predict (``max_codes``, ``do_sample``,
            ``stop_on``, ``use_cache``, ...; SOKE: greedy, 100 codes).
        lr, betas, weight_decay: AdamW (SOKE: 2e-4, (0.9, 0.99), 0).
        scheduler: "cosine" (to ``min_lr``) or "none".
        scheduler_interval: step the cosine per "epoch" (SOKE) or per "step".
        warmup_steps: linear warm-up in scheduler intervals (SOKE: 0).
        min_lr: final cosine learning rate (SOKE: 1e-6).
        joint_backend: forward kinematics of the metrics ("builtin" or "smplx").
        metric_languages: languages reported (default: the registry).
        retrieval: add a :class:`~soke_lightning.callbacks.retrieval.RetrievalCallback` (retrieval-enhanced
            prompts, SOKE §5) from ``retrieval_settings``; False = the retrieval-off ablation.
        retrieval_settings: RetrievalCallback arguments (``dictionary``, ``top_k``, ``max_codes_per_entry``,
            ``order``, ``matcher``, ``max_prompt_tokens``, ``log_coverage``, ``tokenizer``, ``build_split``,
            ``inflection``, ``separator``, ``entry_dropout``, ``block_dropout``, ``exemplar``, ``seed``,
            ``known_words``, ``lexicon``); values are checked here.
            Defaults: ``dictionary`` = ``dictionary.json`` inside the DataModule's token cache (built on first use
            from its stores' ``build_split`` with the frozen tokenizer: the cache and the dictionary are both "this
            data under this tokenizer"); ``tokenizer`` = ``tokenizer_ckpt``; the rest as RetrievalCallback (SOKE).
        compile: compile the SignMBart forward with ``torch.compile`` (in place; checkpoints unchanged).
        compile_options: ``torch.compile`` keyword arguments (``mode``, ``backend``, ``dynamic``, ...).
        slrtp: also score the test with the SLRTP 2025 protocol (docs/evaluation.md §6.7). Its FastDTW runs in
            Python, about 0.05-0.2 s per sample on one core; false leaves it out.
        objective: "translate" (text -> codes, SOKE's fine-tuning) or "denoise" (mBART's pretraining objective on
            motion codes: the prompt is the sample's own codes with spans masked; :mod:`.denoise`).
        denoise_settings: :class:`~soke_lightning.models.denoise.DenoiseSettings` fields (``mask_ratio``,
            ``mean_span``, ``max_steps``).
        init_ckpt: start from this stage-2 checkpoint's weights and text tokenizer (e.g. a ``denoise`` run), as
            SOKE starts from pretrained mBART: same stage-1 tokenizer and mbart sizes; vocabulary rows are matched by
            token and position tables may grow. Used when a fit starts (a resumed fit restores its own weights).
    """

    def __init__(
        self,
        tokenizer_ckpt: str,
        mbart: dict[str, Any] | str,
        tokenizer_hash: str | None = None,
        text_tokenizer: str = EMBEDDED,
        text_vocab_size: int = 8000,
        decoding: Literal["multihead", "flattened", "parallel"] = "multihead",
        lambda_hand: float = 1 / 3,
        embed_scale_fused: bool = True,
        ignore_pad_in_loss: bool = True,
        separate_heads: bool = False,
        mean_resizing: bool = True,
        label_smoothing: float = 0.0,
        max_source_length: int = 256,
        generation: dict[str, Any] | None = None,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        scheduler: Literal["cosine", "none"] = "cosine",
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        warmup_steps: int = 0,
        min_lr: float = 1e-6,
        joint_backend: str = "builtin",
        metric_languages: list[str] | None = None,
        retrieval: bool = False,
        retrieval_settings: dict[str, Any] | None = None,
        compile: bool = False,
        compile_options: dict[str, Any] | None = None,
        slrtp: bool = True,
        objective: Literal["translate", "denoise"] = "translate",
        denoise_settings: dict[str, Any] | None = None,
        init_ckpt: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        try:
            self.generation_config = GenerationConfig(**(generation or {}))
        except TypeError as err:
            raise ValueError(f"LMStage: generation={generation!r}: {err}; valid keys: "
                             f"{sorted(asdict(GenerationConfig()))}") from None
        if scheduler not in ("cosine", "none") or scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"LMStage: scheduler must be cosine|none and scheduler_interval epoch|step, got "
                             f"{scheduler!r}, {scheduler_interval!r}")
        if max_source_length < 3:
            raise ValueError(f"LMStage: max_source_length must be >= 3, got {max_source_length}")
        self.metric_languages = list(metric_languages or LANGUAGES)
        unknown = sorted(set(self.metric_languages) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"LMStage: unknown metric_languages {unknown}; valid: {sorted(LANGUAGES)}")
        # A private copy: the registry's instance is shared and must not be moved to this device.
        self.backend = copy.deepcopy(get_joint_backend(joint_backend))
        self.metric_variants: tuple[str, ...] = METRIC_VARIANTS
        self._metric_parts = parts_from_joint_sets(self.backend.joint_sets)
        self._build_metrics()
        # the SLRTP protocol on the test split only (FastDTW in Python: kept out of the per-epoch validation)
        if not isinstance(slrtp, bool):
            raise ValueError(f"LMStage: slrtp must be true or false, got {slrtp!r}")
        self.slrtp_metrics = SLRTPMotionMetrics(wrist_joints(self.backend.joint_sets),
                                                slrtp_joints(self.backend.joint_sets), self.metric_languages,
                                                prefix="test/")
        # states are not persistent: nothing of these enters state_dict / checkpoints
        self.eval_means = torch.nn.ModuleDict({
            stage: torch.nn.ModuleDict({name: MeanMetric() for name in EVAL_MEANS}) for stage in ("val", "test")
        })
        self.retrieval_settings = _check_retrieval_settings(retrieval_settings)
        if objective not in ("translate", "denoise"):
            raise ValueError(f"LMStage: objective must be 'translate' or 'denoise', got {objective!r}")
        try:
            self.denoise_settings = DenoiseSettings(**(denoise_settings or {}))
        except TypeError as err:
            raise ValueError(f"LMStage: denoise_settings={denoise_settings!r}: {err}; valid keys: "
                             f"{sorted(asdict(DenoiseSettings()))}") from None
        if objective == "denoise" and retrieval:
            raise ValueError("LMStage: objective 'denoise' writes its own prompts (the sample's masked codes); "
                             "retrieval must be false for it")
        if not isinstance(retrieval, bool):
            raise ValueError(f"LMStage: retrieval must be true or false, got {retrieval!r}")
        self._retrieval = None  # the RetrievalCallback this stage created (configure_callbacks)
        self.lm: SignMBart | None = None
        self.text_tokenizer: TextTokenizer | None = None
        # The frozen tokenizer lives in a tuple: not a submodule, so not in state_dict, parameters() or train().
        self._frozen: tuple[SignTokenizer, str] | None = None
        # language -> the largest (time codes / sentence encoder tokens) of its training sentences: what
        # generation.length_cap scales (learnt in setup("fit"), stored in checkpoints)
        self.code_length_ratio: dict[str, float] | None = None

    def _build_metrics(self) -> None:
        self.metrics = torch.nn.ModuleDict({
            stage: SignMotionMetrics(self._metric_parts, self.metric_variants, self.metric_languages,
                                     prefix=f"{stage}/")
            for stage in ("val", "test")
        }).to(self.device)

    def _use_keypoint_metrics(self, layout) -> None:
        """Keypoint layouts: DTW on the layout's points and parts (no kinematics), missing points left out."""
        self._metric_parts = keypoint_parts(layout)
        self.metric_variants = MASKABLE_VARIANTS
        self._build_metrics()

    @property
    def feature_layout(self):
        """The frozen tokenizer's feature layout (what the LM's codes decode to)."""
        return self.tokenizer.feature_layout

    # ------------------------------------------------------------------------------------------- frozen tokenizer
    @property
    def tokenizer(self) -> SignTokenizer:
        """The frozen stage-1 tokenizer (eval mode, no gradients), on this module's device."""
        if self._frozen is None:
            self._load_tokenizer()
        tok = self._frozen[0]
        if next(tok.parameters()).device != self.device:
            tok.to(self.device)
        return tok

    @property
    def tokenizer_digest(self) -> str:
        if self._frozen is None:
            self._load_tokenizer()
        return self._frozen[1]

    def _load_tokenizer(self, path: str | None = None, expected_hash: str | None = None) -> None:
        path = path or self.hparams.tokenizer_ckpt
        expected = expected_hash or self.hparams.tokenizer_hash
        if not Path(path).is_file():
            raise FileNotFoundError(f"LMStage: tokenizer_ckpt {path} does not exist; train stage 1 (`soke fit "
                                    f"--config experiments/stage1/demo.yaml`) or pass the stage-1 checkpoint path")
        tok = SignTokenizer.from_checkpoint(path)
        digest = tokenizer_hash(tok)
        if expected is not None and digest != expected:
            raise ContractError(f"LMStage: the tokenizer at {path} has hash {digest} but this stage expects "
                                f"{expected} (model.tokenizer_hash / the stage-2 checkpoint); the stage-1 "
                                f"checkpoint changed since the LM was trained: use the original file")
        tok.eval().requires_grad_(False)
        self._frozen = (tok, digest)
        if tok.feature_layout.is_keypoints:
            self._use_keypoint_metrics(tok.feature_layout)
        log.info("frozen tokenizer %s (hash %s..., parts %s, codebooks %s)", path, digest[:12], list(tok.parts),
                 tok.codebook_sizes)

    def check_contract(self, dm) -> None:
        """Assert that the DataModule's token cache and statistics match the frozen tokenizer (and the LM).

        Raises:
            ContractError naming both values when parts, codebook sizes, frames per code, the tokenizer hash or
            the normalisation statistics disagree.
        """
        tok = self.tokenizer
        data_layout = getattr(dm, "feature_layout", None)
        if data_layout is not None:
            try:
                check_same_layout(data_layout, f"the data ({', '.join(getattr(dm, 'stores', []))})",
                                  tok.feature_layout, f"the tokenizer {self.hparams.tokenizer_ckpt}")
            except LayoutError as err:
                raise ContractError(str(err)) from None
            if self.hparams.metric_languages is None and set(dm.languages) - set(self.metric_languages):
                self.metric_languages = list(LANGUAGES)  # the stores declared languages of their own
                self._build_metrics()
        cache = getattr(dm, "token_cache", None)
        if cache is not None:
            where = f"token cache {cache.root}"
            if cache.parts != list(tok.parts):
                raise ContractError(f"{where} has parts {cache.parts} but the tokenizer "
                                    f"{self.hparams.tokenizer_ckpt} has {list(tok.parts)}")
            if cache.codebook_sizes != tok.codebook_sizes:
                raise ContractError(f"{where} has codebook sizes {cache.codebook_sizes} but the tokenizer "
                                    f"{self.hparams.tokenizer_ckpt} has {tok.codebook_sizes}; re-run `soke encode`")
            if cache.downsample_rate != tok.downsample_rate:
                raise ContractError(f"{where} has {cache.downsample_rate} frames per code but the tokenizer "
                                    f"{tok.downsample_rate}")
            if cache.tokenizer_hash != self.tokenizer_digest:
                raise ContractError(f"{where} was made by a tokenizer with hash {cache.tokenizer_hash} but "
                                    f"{self.hparams.tokenizer_ckpt} has hash {self.tokenizer_digest}; re-run "
                                    f"`soke encode --tokenizer {self.hparams.tokenizer_ckpt}`")
        theirs = getattr(dm, "normalizer", None)
        if theirs is not None:
            ours = tok.normalizer
            diff = max(float((ours.mean.cpu() - theirs.mean.cpu()).abs().max()),
                       float((ours.std.cpu() - theirs.std.cpu()).abs().max()))
            if diff > 1e-5:
                raise ContractError(f"the DataModule's normalisation statistics differ from those stored in the "
                                    f"tokenizer {self.hparams.tokenizer_ckpt} (max |diff| {diff:.3g}); give the "
                                    f"DataModule the statistics stage 1 was trained with")
        if self.lm is not None:
            self._check_lm(self.lm)

    def _check_lm(self, lm: SignMBart) -> None:
        tok = self.tokenizer
        if tuple(lm.parts) != tuple(tok.parts):
            raise ContractError(f"the LM has parts {list(lm.parts)} but the tokenizer has {list(tok.parts)}")
        sizes = dict(zip(lm.parts, lm.codebook_sizes))
        if sizes != tok.codebook_sizes:
            raise ContractError(f"the LM has codebook sizes {sizes} but the tokenizer {self.hparams.tokenizer_ckpt} "
                                f"has {tok.codebook_sizes}")

    # ------------------------------------------------------------------------------------------------ building
    def build(self, text_tokenizer: TextTokenizer) -> None:
        """Create the SignMBart for the frozen tokenizer's parts/codebooks and ``text_tokenizer``'s vocabulary."""
        hp = self.hparams
        tok = self.tokenizer
        sign_tags = [LANGUAGES[k].sign_tag for k in LANGUAGES]
        lm = SignMBart(list(tok.parts), [tok.codebook_sizes[p] for p in tok.parts], sign_tags, hp.mbart,
                       text_vocab_size=text_tokenizer.base_vocab_size, decoding=hp.decoding,
                       lambda_hand=hp.lambda_hand, embed_scale_fused=hp.embed_scale_fused,
                       ignore_pad_in_loss=hp.ignore_pad_in_loss, separate_heads=hp.separate_heads,
                       mean_resizing=hp.mean_resizing, label_smoothing=hp.get("label_smoothing", 0.0))
        if text_tokenizer.motion is None:
            text_tokenizer.add_motion_vocabulary(lm.motion)
        lm.check_tokenizer(text_tokenizer)
        self._check_lm(lm)
        self.lm = compile_in_place(lm.to(self.device), hp.compile, **(hp.compile_options or {}))
        self.text_tokenizer = text_tokenizer

    def _init_from(self, path: str) -> None:
        """Copy a stage-2 checkpoint's LM weights into the freshly built model (``init_ckpt``)."""
        fix = "give model.init_args.init_ckpt the last.ckpt of a stage-2 run (e.g. objective: denoise)"
        ckpt = load_checkpoint(path, "init checkpoint (init_ckpt)", fix, "cpu")
        entry = ckpt.get(CHECKPOINT_KEY)
        if entry is None or "state_dict" not in ckpt:
            raise CheckpointError(f"{path}: not a stage-2 (LMStage) checkpoint (no {CHECKPOINT_KEY!r} entry); {fix}")
        if entry["tokenizer_hash"] != self.tokenizer_digest:
            raise ContractError(f"init_ckpt {path} was trained on stage-1 tokenizer {entry['tokenizer_ckpt']} (hash "
                                f"{entry['tokenizer_hash'][:12]}...) but this run uses {self.hparams.tokenizer_ckpt} "
                                f"(hash {self.tokenizer_digest[:12]}...); its codes would mean something else")
        source_vocab = tokenizer_from_files(entry["text_tokenizer"], str(path)).hf.get_vocab()
        prefix = "lm."
        source = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        try:
            state, report = transfer_weights(self.lm.state_dict(), source, str(path),
                                             self.text_tokenizer.hf.get_vocab(), source_vocab)
        except ValueError as err:
            raise ContractError(str(err)) from None
        self.lm.load_state_dict(state, strict=True)
        log.info("initialised the LM from %s (%d tokens shared, %d new%s)", path, report["shared_tokens"],
                 report["new_tokens"], "; resized " + ", ".join(report["resized"]) if report["resized"] else "")

    def _prompts(self, batch: SignBatch, stage: str) -> list[str]:
        """Encoder prompts of a batch: the retrieval prompt or the text; for ``objective: denoise`` the
        sample's own codes with masked spans (a fixed mask per batch outside training)."""
        if self.hparams.get("objective", "translate") != "denoise":
            return list(batch.prompt if batch.prompt is not None else batch.text)
        if batch.codes is None:
            raise ValueError("LMStage: objective 'denoise' reads the batch's token codes; give the DataModule a "
                             "token_cache (`soke encode` output)")
        rng = (np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item())) if stage == "train"
               else eval_rng(list(batch.keys)))
        return denoise_prompts(batch.codes, batch.code_lengths, self.lm.parts, self.denoise_settings, rng,
                               list(batch.lang))

    def _train_text_tokenizer(self, dm) -> TextTokenizer:
        hp = self.hparams
        if hp.text_tokenizer != EMBEDDED:
            return TextTokenizer.from_pretrained(hp.text_tokenizer)
        if dm is None or not hasattr(dm, "texts"):
            raise ValueError("LMStage: text_tokenizer='embedded' is trained on the DataModule's training sentences "
                             "(SignDataModule.texts); give a SignDataModule or a tokenizer directory")
        files = None
        if self.trainer.is_global_zero:
            # The retrieval separators (" Key word 2, ", " 关键词 2, " ...) are part of prompts too: without them their
            # digits and characters would become <unk> and the entry index would be lost.
            # separator "word" also writes ": " after each entry's word
            texts = list(dm.texts("train")) + separator_texts(10, self.retrieval_settings.get("separator", "index"))
            files = tokenizer_files(TextTokenizer.train(texts, vocab_size=hp.text_vocab_size))
        files = self.trainer.strategy.broadcast(files, src=0)
        return tokenizer_from_files(files, f"embedded BPE trained on the {len(dm.texts('train'))} training texts")

    def setup(self, stage: str) -> None:
        """Load the frozen tokenizer, check the data contract, build the text tokenizer and SignMBart."""
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None:
            if hasattr(dm, "check_token_cache"):
                dm.check_token_cache(self.tokenizer_digest)
            self.check_contract(dm)
        # validate/test/predict: the model is built from the checkpoint (ckpt_path) in on_load_checkpoint
        if self.lm is None and stage == "fit":
            self.build(self._train_text_tokenizer(dm))
            if self.hparams.get("init_ckpt"):
                self._init_from(self.hparams.init_ckpt)
        if stage == "fit" and self.hparams.get("objective", "translate") == "translate":
            self.code_length_ratio = self._length_ratio_from(dm)
        # Trainer.log_dir is a collective call (a broadcast from rank 0) under DDP: every rank must ask for it.
        log_dir = self.trainer.log_dir if stage == "fit" else None
        if log_dir and self.trainer.is_global_zero:
            out = Path(log_dir) / "text_tokenizer"
            self.text_tokenizer.save(out)
            log.info("text tokenizer (%d tokens, %s) saved to %s", len(self.text_tokenizer),
                     self.text_tokenizer.source, out)

    # ------------------------------------------------------------------------------------------------ retrieval
    def configure_callbacks(self) -> list:
        """``retrieval: true``: the RetrievalCallback built from ``retrieval_settings`` (the same instance for every
        trainer call of this module, so its loaded dictionary and counts carry over).

        Raises:
            ValueError when ``trainer.callbacks`` already holds a RetrievalCallback (configure one or the other).
        """
        if not self.hparams.retrieval:
            return []

        explicit = [c for c in self.trainer.callbacks if isinstance(c, RetrievalCallback) and c is not self._retrieval]
        if explicit:
            raise ValueError("LMStage: retrieval is switched on (model.init_args.retrieval: true) AND trainer.callbacks "
                             f"holds a RetrievalCallback (dictionary {explicit[0].dictionary_path}); configure one of "
                             "them: remove the callback from trainer.callbacks (its settings go to "
                             "model.init_args.retrieval_settings) or set retrieval: false")
        if self._retrieval is None:
            settings = dict(self.retrieval_settings)
            settings.setdefault("tokenizer", self.hparams.tokenizer_ckpt)
            if "dictionary" not in settings:
                dm = getattr(self.trainer, "datamodule", None)
                cache = getattr(dm, "token_cache_path", None)
                if cache is None:
                    raise ValueError("LMStage: retrieval is on but retrieval_settings has no `dictionary` and there is "
                                     "no DataModule token cache to keep it in; give "
                                     "--model.init_args.retrieval_settings.dictionary=PATH")
                settings["dictionary"] = str(Path(cache) / "dictionary.json")
            self._retrieval = RetrievalCallback(**settings)
        return [self._retrieval]

    def _check_retrieval_resume(self, checkpoint: dict) -> None:
        """A resumed fit must have retrieval on/off as the checkpoint's run had (the callback checks the rest)."""
        if self._trainer is None or self.trainer.state.fn != "fit":
            return

        saved = [v for k, v in checkpoint.get("callbacks", {}).items()
                 if k.split("{")[0] == RetrievalCallback.__qualname__]
        was_on = any(v.get("enabled") for v in saved)
        now_on = any(c.enabled for c in self.trainer.callbacks if isinstance(c, RetrievalCallback))
        if was_on != now_on:
            raise ContractError(f"the checkpoint was trained with retrieval {'on' if was_on else 'off'} but this run "
                                f"has it {'on' if now_on else 'off'}; resume with the same setting "
                                f"(model.init_args.retrieval: {str(was_on).lower()}) or start a new run")

    # ------------------------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the text tokenizer's files and the frozen tokenizer's path and hash (not its weights)."""
        checkpoint[CHECKPOINT_KEY] = {
            "format": CHECKPOINT_FORMAT,
            "tokenizer_ckpt": str(Path(self.hparams.tokenizer_ckpt).resolve()),
            "tokenizer_hash": self.tokenizer_digest,
            "text_tokenizer": tokenizer_files(self.text_tokenizer),
            "feature_layout": {"name": self.feature_layout.name, "fingerprint": self.feature_layout.fingerprint},
            # languages a corpus declared (not built in): the LM's sign tags depend on them
            "languages": {k: vars(v) for k, v in declared_languages().items()},
            "code_length_ratio": self.code_length_ratio,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Rebuild the text tokenizer and SignMBart from the checkpoint before its weights are loaded."""
        entry = checkpoint.get(CHECKPOINT_KEY)
        if entry is None or entry.get("format") != CHECKPOINT_FORMAT:
            raise KeyError(f"not a stage-2 (LMStage) checkpoint: no {CHECKPOINT_KEY!r} entry of format "
                           f"{CHECKPOINT_FORMAT} (found {None if entry is None else entry.get('format')})")
        if self._frozen is not None and self.tokenizer_digest != entry["tokenizer_hash"]:
            raise ContractError(f"the checkpoint was trained with tokenizer hash {entry['tokenizer_hash']} "
                                f"({entry['tokenizer_ckpt']}) but this run loaded {self.hparams.tokenizer_ckpt} "
                                f"with hash {self.tokenizer_digest}")
        recorded = entry.get("feature_layout")
        if recorded is not None and self._frozen is not None:
            ours = self.feature_layout
            if (recorded["name"], recorded["fingerprint"]) != (ours.name, ours.fingerprint):
                raise ContractError(f"the stage-2 checkpoint was trained on feature layout {recorded['name']!r} "
                                    f"({recorded['fingerprint']}) but the tokenizer {self.hparams.tokenizer_ckpt} "
                                    f"uses {ours.describe()}")
        for lang in (entry.get("languages") or {}).values():
            register_language(Language(**lang))
        self._check_retrieval_resume(checkpoint)
        if entry.get("code_length_ratio"):
            self.code_length_ratio = dict(entry["code_length_ratio"])
        text_tokenizer = tokenizer_from_files(entry["text_tokenizer"])
        if self.lm is None:
            self.build(text_tokenizer)
        elif self.text_tokenizer.hf.get_vocab() != text_tokenizer.hf.get_vocab():
            raise ContractError("the checkpoint's text tokenizer differs from the one built for this run; resume "
                                "with the same text_tokenizer setting and training data")

    @classmethod
    def from_checkpoint(cls, path: str | Path, tokenizer_ckpt: str | None = None,
                        map_location: str | torch.device = "cpu") -> LMStage:
        """Rebuild a trained stage from its checkpoint alone (plus the stage-1 checkpoint it names).

        Args:
            path: stage-2 checkpoint.
            tokenizer_ckpt: use this stage-1 file instead of the stored path (e.g. after moving files); its hash
                must still equal the stored one.

        Raises:
            ContractError when the stage-1 file's hash differs from the one recorded at training time.
        """
        fix = "train one with `soke fit --config experiments/stage2/demo.yaml`"
        ckpt = load_checkpoint(path, "stage-2 checkpoint", fix, map_location)
        if CHECKPOINT_KEY not in ckpt or "hyper_parameters" not in ckpt:
            raise CheckpointError(f"{path}: not a stage-2 (LMStage) checkpoint (no {CHECKPOINT_KEY!r} entry); {fix}")
        hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
        entry = ckpt[CHECKPOINT_KEY]
        hparams["tokenizer_ckpt"] = tokenizer_ckpt or entry["tokenizer_ckpt"]
        stage = cls(**hparams)
        stage._load_tokenizer(hparams["tokenizer_ckpt"], entry["tokenizer_hash"])
        stage.on_load_checkpoint(ckpt)
        stage.load_state_dict(ckpt["state_dict"], strict=True)
        return stage.eval()

    def _require_model(self) -> None:
        if self.lm is None:
            raise RuntimeError("LMStage: no trained model: validate/test/predict need a stage-2 checkpoint, e.g. "
                               "`soke test --config experiments/stage2/demo.yaml --ckpt_path CKPT`")

    def on_validation_start(self) -> None:
        self._require_model()

    def on_test_start(self) -> None:
        self._require_model()

    def on_predict_start(self) -> None:
        self._require_model()

    # ------------------------------------------------------------------------------------------------ steps
    def encode_prompts(self, texts: list[str], langs: list[str]):
        """Encoder inputs of B prompts (:meth:`TextTokenizer.encode_source`), on this module's device."""
        return self.text_tokenizer.encode_source(texts, langs, self.hparams.max_source_length).to(self.device)

    def _forward(self, batch: SignBatch, prompts: list[str] | None = None):
        """Teacher-forced loss of a batch; ``prompts`` default to the training prompts (:meth:`_prompts`)."""
        if batch.codes is None:
            raise ValueError("LMStage: the batch carries no token codes; give the DataModule a token_cache "
                             "(`soke encode` output), e.g. --data.init_args.token_cache outputs/tokens-demo")
        prompts = self._prompts(batch, "train") if prompts is None else prompts
        src = self.encode_prompts(prompts, list(batch.lang))
        return self.lm(src.input_ids, src.attention_mask, batch.codes, batch.code_lengths, list(batch.lang))

    def training_step(self, batch: SignBatch, batch_idx: int) -> torch.Tensor:
        out = self._forward(batch)
        logs = {"train/loss": out.loss}
        for part in out.per_part_loss:
            logs[f"train/{part}/loss"] = out.per_part_loss[part]
            logs[f"train/{part}/accuracy"] = out.per_part_accuracy[part]
        self.log_dict(logs, batch_size=len(batch))
        self.log("loss", out.loss, batch_size=len(batch), prog_bar=True, logger=False)
        return out.loss

    def learn_length_ratio(self, rows: list[tuple[str, str, int]]) -> dict[str, float]:
        """Per language, the largest ``time codes / encoder tokens`` over ``rows`` of (sentence, language, codes):
        the scale of ``generation.length_cap`` (:meth:`length_caps`)."""
        ratio: dict[str, float] = {}
        for start in range(0, len(rows), 256):
            chunk = rows[start:start + 256]
            tokens = self.text_tokenizer.encode_source([t for t, _, _ in chunk], [lang for _, lang, _ in chunk],
                                                       self.hparams.max_source_length).attention_mask.sum(-1)
            for (_, lang, codes), n in zip(chunk, tokens.tolist()):
                ratio[lang] = max(ratio.get(lang, 0.0), codes / max(n, 1))
        return ratio

    def _length_ratio_from(self, dm) -> dict[str, float] | None:
        """:meth:`learn_length_ratio` over a DataModule's training split; None when it has no token cache."""
        if getattr(dm, "token_cache_path", None) is None or not hasattr(dm, "code_lengths"):
            return None
        return self.learn_length_ratio(dm.code_lengths("train"))

    def length_caps(self, texts: list[str], langs: list[str], scale: float, max_codes: int) -> torch.Tensor:
        """[B] most time codes each sentence may generate under ``length_cap = scale`` (at most ``max_codes``; a
        language without a learnt ratio gets ``max_codes``).

        Raises:
            ValueError when the model has no learnt ratios (a checkpoint from before they were recorded) and no
            fitted DataModule with a token cache to learn them from.
        """
        if self.code_length_ratio is None and self._trainer is not None:
            self.code_length_ratio = self._length_ratio_from(getattr(self._trainer, "datamodule", None))
        if self.code_length_ratio is None:
            raise ValueError("generation.length_cap scales each language's largest codes-per-token ratio of the "
                             "training sentences, learnt when the model is fitted; this model has none (a "
                             "checkpoint written before they were recorded): evaluate it with `soke test` and "
                             "the training DataModule (with its token_cache) so they are learnt from its train "
                             "split, or set generation.length_cap=0")
        tokens = self.text_tokenizer.encode_source(texts, langs, self.hparams.max_source_length).attention_mask.sum(-1)
        caps = [min(max_codes, max(1, int(np.ceil(scale * self.code_length_ratio[lang] * n))))
                if lang in self.code_length_ratio else max_codes for lang, n in zip(langs, tokens.tolist())]
        return torch.tensor(caps, dtype=torch.long)

    @torch.no_grad()
    def generate(self, prompts: list[str], langs: list[str], texts: list[str] | None = None, **overrides
                 ) -> tuple[torch.Tensor, torch.Tensor, GenerationResult]:
        """Text -> motion: generate codes, decode them with the frozen tokenizer, denormalise.

        Args:
            prompts: B prompts (sentence [+ retrieval string]).
            langs: B language keys ("asl", "csl", "dgs").
            texts: the B sentences without retrieval entries (what ``generation.length_cap`` measures; default
                ``prompts``, which over-counts a retrieval prompt).
            overrides: :class:`GenerationConfig` fields replacing the configured ones.

        Returns:
            (features [B, T, 133] denormalised, zero-padded; lengths [B] frames; the raw generation result).
        """
        src = self.encode_prompts(prompts, langs)
        scale = overrides.get("length_cap", self.generation_config.length_cap)
        caps = None
        if scale > 0:  # a negative one is refused by GenerationConfig below
            max_codes = overrides.get("max_codes", self.generation_config.max_codes)
            caps = self.length_caps(list(texts if texts is not None else prompts), langs, scale, max_codes)
            overrides = {**overrides, "max_codes": int(caps.max())}  # no decoder step past the longest cap
        result = self.lm.generate(src.input_ids, src.attention_mask, langs, self.generation_config, **overrides)
        if caps is not None:
            result = cap_result(result, caps)
        feats, lengths = decode_streams(self.tokenizer, result)
        return self.tokenizer.normalizer.denormalize(feats), lengths.to(self.device), result

    def _log_mean(self, stage: str, name: str, value: torch.Tensor, weight: float | torch.Tensor) -> None:
        metric = self.eval_means[stage][name]
        metric.update(value.detach().float(), weight)
        self.log(f"{stage}/{name}", metric, batch_size=int(torch.as_tensor(weight).sum()) or 1)

    def _eval_step(self, batch: SignBatch, stage: str) -> dict[str, torch.Tensor]:
        """Generate, decode and score one batch; returns the generated motion (denormalised ``features``
        [B, T, 133] and ``lengths`` [B]) for callbacks such as the back-translation scorer."""
        size = len(batch)
        prompts = self._prompts(batch, stage)
        if batch.codes is not None:
            out = self._forward(batch, prompts)
            self._log_mean(stage, "loss", out.loss, size)
        start = time.perf_counter()
        feats, lengths, result = self.generate(prompts, list(batch.lang), texts=list(batch.text))
        elapsed = time.perf_counter() - start
        norm = self.tokenizer.normalizer
        layout = self.tokenizer.feature_layout
        visible = None
        with torch.no_grad():
            if layout.is_keypoints:
                pred_joints = layout.points_of(feats)
                gt_joints = layout.points_of(norm.denormalize(batch.poses))
                if batch.feature_mask is not None:
                    visible = layout.point_mask(batch.feature_mask)
            else:
                pred_joints = self.backend.to(self.device).from_features(feats, lengths)
                gt_joints = self.backend.from_features(norm.denormalize(batch.poses), batch.lengths)
        self.metrics[stage].update(pred_joints, gt_joints, lengths, batch.lengths, list(batch.lang), batch.keys,
                                   target_visible=visible)
        if stage == "test" and self.hparams.slrtp and not layout.is_keypoints:  # SMPL-X joints from kinematics
            self.slrtp_metrics.update(pred_joints, gt_joints, lengths, batch.lengths, list(batch.lang))
        ones = torch.ones(size, device=self.device)
        self._log_mean(stage, "steps_per_sample", self.lm.decoder_passes(result).to(ones), ones)
        self._log_mean(stage, "latency_ms_per_sample", torch.tensor(1000.0 * elapsed / size, device=self.device), size)
        self._log_mean(stage, "frames_per_sample", lengths.to(ones), ones)
        return {"features": feats, "lengths": lengths}

    def _eval_epoch_end(self, stage: str) -> None:
        values = self.metrics[stage].compute()
        self.metrics[stage].reset()
        parts = [p.name for p in self._metric_parts] + ["hand", "avg"]
        for variant in self.metric_variants:
            for part in parts:
                per_lang = [v for k, v in values.items() if k.startswith(f"{stage}/{variant}/")
                            and k.endswith(f"/{part}")]
                if per_lang:
                    values[f"{stage}/{variant}/all/{part}"] = torch.stack(per_lang).mean()
        if stage == "test" and self.hparams.slrtp and not self.feature_layout.is_keypoints:
            values.update(self.slrtp_metrics.compute())
            self.slrtp_metrics.reset()
        self.log_dict({k: v.float() for k, v in values.items()}, sync_dist=False)

    def predict_step(self, batch: SignBatch, batch_idx: int) -> list:
        """Generated motion of a batch as MotionPrediction objects (with the ground truth as reference)."""
        prompts = self._prompts(batch, "predict")
        feats, lengths, _ = self.generate(prompts, list(batch.lang), texts=list(batch.text))
        gt = self.tokenizer.normalizer.denormalize(batch.poses)
        fps = batch.extra.get("fps")
        out = []
        for i in range(len(batch)):
            out.append(MotionPrediction(
                name=batch.keys[i], text=batch.text[i], lang=batch.lang[i], raw=feats[i, : int(lengths[i])],
                fps=float(fps[i]) if fps is not None else 25.0,
                reference_raw=gt[i, : int(batch.lengths[i])], corpus=batch.corpus[i]))
        return out

    # ------------------------------------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        hp = self.hparams
        return adamw_cosine(self.lm.parameters(), self.trainer, lr=hp.lr, betas=hp.betas,
                            weight_decay=hp.weight_decay, scheduler=hp.scheduler, interval=hp.scheduler_interval,
                            warmup_steps=hp.warmup_steps, min_lr=hp.min_lr)


__all__ = ["CHECKPOINT_KEY", "ContractError", "LMStage", "decode_streams", "tokenizer_files", "tokenizer_from_files"]
