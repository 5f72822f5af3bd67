"""vipriors_hub: "Distilling Visual Priors from Self-Supervised Learning" for timm and the Hub.

Importing the package registers the ``vipriors_*`` model family with timm::

    import timm
    import vipriors_hub  # noqa: F401

    model = timm.create_model("vipriors_resnet50", pretrained=True)
"""

from .errors import PretrainedWeightsUnavailableError, VipriorsError
from .models import ARCHITECTURES, HUB_ORGANIZATION, forward_pre_relu_features, hub_repo_id, stage_channels
from .version import __version__

__all__ = [
    "ARCHITECTURES",
    "HUB_ORGANIZATION",
    "PretrainedWeightsUnavailableError",
    "VipriorsError",
    "__version__",
    "forward_pre_relu_features",
    "hub_repo_id",
    "stage_channels",
]
