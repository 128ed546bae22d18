"""The built-in detectors; importing this module registers them under kind ``detector``.

Names: ``secrets``, ``pii``, ``injection``, ``hidden``, ``network``, ``malware``,
``leakage`` (needs canaries or a system prompt), ``obedience``.
"""

from __future__ import annotations

from finegate.detect._hidden import HiddenTextDetector
from finegate.detect._injection import InjectionDetector, ObedienceDetector
from finegate.detect._leakage import LeakageDetector
from finegate.detect._network import MalwareDetector, NetworkDetector
from finegate.detect._pii import PiiDetector
from finegate.detect._secrets import SecretsDetector
from finegate.plugins import register

__all__ = [
    "HiddenTextDetector",
    "InjectionDetector",
    "LeakageDetector",
    "MalwareDetector",
    "NetworkDetector",
    "ObedienceDetector",
    "PiiDetector",
    "SecretsDetector",
]

register("detector", "secrets")(SecretsDetector)
register("detector", "pii")(PiiDetector)
register("detector", "injection")(InjectionDetector)
register("detector", "hidden")(HiddenTextDetector)
register("detector", "network")(NetworkDetector)
register("detector", "malware")(MalwareDetector)
register("detector", "leakage")(LeakageDetector)
register("detector", "obedience")(ObedienceDetector)
