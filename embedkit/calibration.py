"""Same-person thresholds: which one applies, and calibrating one on the user's own people.

A threshold belongs to a model *and* a face setting (detector and alignment,
or the centre-crop fraction, and mirror-image averaging): each setting moves
the best threshold (pretrained facenet on LFW: 0.404 with YuNet alignment,
0.436 with MTCNN, 0.365-0.398 for centre crops). A threshold is used only for
the setting it was measured on; otherwise the verdict is marked uncalibrated.

Where a threshold comes from, first found wins:

1. ``--threshold T`` given for one command;
2. a calibration stored with the index (``embedkit calibrate --index``) for
   the index's model and face setting;
3. a calibration stored with a model folder (``calibrate --model``), or the
   threshold a fine-tuned model saved from its validation people, for the face
   setting it was measured on;
4. the backbone's LFW thresholds for pretrained weights, per face setting;
5. :data:`embedkit.encoder.UNCALIBRATED_THRESHOLD`, marked uncalibrated.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

INFO_KEY = "calibration"


def face_setting(detector: str | None, center_crop: float = 1.0, flip: bool = False) -> str:
    """A face setting's name: ``yunet``, ``mtcnn``, ``cc0.7`` (no detection, central 70%), ``+flip``."""
    name = detector if detector else f"cc{float(center_crop):g}"
    return name + ("+flip" if flip else "")


def pipeline_setting(pipeline) -> str:
    """The face setting a :class:`~embedkit.pipeline.FacePipeline` embeds with."""
    extractor = pipeline.extractor
    return face_setting(extractor.detector_name, extractor.center_crop, pipeline.flip)


@dataclass
class Threshold:
    """A same-person threshold and where it came from.

    ``calibrated`` is False when no threshold was measured for this model and
    face setting (the value is then a generic default).
    """

    value: float
    calibrated: bool
    setting: str
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


def model_thresholds(encoder) -> dict[str, float]:
    """The thresholds a model carries, per face setting."""
    from embedkit.backbones import PRETRAINED, get_backbone

    found: dict[str, float] = {}
    if encoder.weights_source == PRETRAINED and encoder.threshold is not None:
        spec = get_backbone(encoder.backbone)
        found.update(spec.thresholds or {})
    elif encoder.threshold is not None:
        extractor = (encoder.metadata or {}).get("faces", {}).get("extractor")
        if extractor:
            found[face_setting(extractor.get("detector"), extractor.get("center_crop", 1.0))] = encoder.threshold
    for entry in (encoder.metadata or {}).get("calibrations", {}).values():
        found[entry["setting"]] = float(entry["threshold"])
    return found


def stored_calibration(store, model_id: str, setting: str) -> dict | None:
    """The calibration stored with an index for this model and face setting, if any."""
    entries = json.loads(store.get_info(INFO_KEY, "{}") or "{}")
    entry = entries.get(setting)
    if entry and entry.get("model_id") == model_id:
        return entry
    return None


def threshold_for(pipeline, store=None, override: float | None = None) -> Threshold:
    """The threshold for ``pipeline``'s model and face setting (see the module's order)."""
    from embedkit.encoder import UNCALIBRATED_THRESHOLD

    setting = pipeline_setting(pipeline)
    encoder = pipeline.encoder
    if override is not None:
        return Threshold(float(override), True, setting, "given")
    if store is not None:
        entry = stored_calibration(store, encoder.model_id, setting)
        if entry:
            return Threshold(float(entry["threshold"]), True, setting,
                             f"calibrated on {entry.get('data', 'your folders')}")
    thresholds = model_thresholds(encoder)
    if setting in thresholds:
        return Threshold(float(thresholds[setting]), True, setting, "model")
    if thresholds:
        logger.info("model %s has thresholds for %s, not for face setting %s: verdicts are uncalibrated",
                    encoder.model_id, ", ".join(sorted(thresholds)), setting)
    return Threshold(UNCALIBRATED_THRESHOLD, False, setting, "default (uncalibrated)")


def save_to_model(folder, entry: dict) -> Path:
    """Store a calibration in a model folder's config (``metadata.calibrations``, one entry per face setting)."""
    from embedkit.encoder import CONFIG_FILE

    folder = Path(folder)
    config_path = folder / CONFIG_FILE
    config = json.loads(config_path.read_text())
    metadata = config.setdefault("metadata", {})
    metadata.setdefault("calibrations", {})[entry["setting"]] = entry
    tmp = config_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    tmp.replace(config_path)
    return config_path
