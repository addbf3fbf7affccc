"""What a method is, apart from how it trains: its settings class, the data it needs, which
network translates each way, its default architecture and recipes, how it builds a generator,
and the pixel codec between a user's picture and the generator. Inference, checkpoints,
precision, publishing and the app read only this; the losses and update steps are the
method's `TrainingMethod` (`training`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

import numpy as np
from torch import nn

from ..config import DataConfig, Direction, ModelConfig, RunConfig, TrainConfig
from ..io.pixel_format import PixelFormat
from ..models import build_generator

DatasetKind = Literal["paired", "unpaired", "colour"]


class PixelCodec:
    """The pictures users give and get, as the generator's input and from its output. This one
    is the identity: the generator's own formats."""

    def user_formats(self, direction: Direction) -> tuple[PixelFormat, PixelFormat] | None:
        """(what users give, what they get) in `direction`; None: the generator's own formats."""
        return None

    def to_network(self, pixels: np.ndarray) -> np.ndarray:
        """A user's picture as the generator's input."""
        return pixels

    def from_network(self, source: np.ndarray, result: np.ndarray) -> np.ndarray:
        """The picture a user gets from `source` (theirs) and the generator's `result`."""
        return result


@dataclass(frozen=True)
class MethodSpec:
    """One method, as everything but its training sees it. A new method is one file that
    defines its Config, its TrainingMethod and its MethodSpec, plus one line in `METHODS`."""

    config: type  # the method's settings: a dataclass of `config.setting` fields
    dataset_kind: DatasetKind  # the data layout it trains on (data.builders)
    generator_keys: Mapping[Direction, str]  # the network that translates each way
    training: type  # its TrainingMethod: losses and update steps
    # A generator's moving average, where the method keeps one: it then translates instead.
    ema_keys: Mapping[str, str] = field(default_factory=dict)
    default_model: Callable[[], ModelConfig] = ModelConfig
    # The paper's (epochs at constant lr, epochs of linear decay) for a new run.
    default_schedule: tuple[int, int] = (100, 100)
    # What a new run names its domains, for people (the app's menu), unless --domain-a/-b say.
    default_domains: tuple[str, str] = ("A", "B")
    # Named presets a new run can start from (`--recipe NAME`): {section: {field: value}}, each
    # applied unless that setting is given explicitly.
    recipes: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    codec: PixelCodec = field(default_factory=PixelCodec)
    # Each training sample also carries "A2", a second A image drawn at random (UNSB's second
    # data loader, whose A images its bridge loss contrasts with the first's).
    second_source: bool = False

    def translating_key(self, direction: Direction, network_names) -> str:
        """The network that translates in `direction`: the moving average if stored."""
        key = self.generator_keys[direction]
        ema = self.ema_keys.get(key)
        return ema if ema in network_names else key

    def build_generator(self, model: ModelConfig, direction: Direction, batch_statistics: str = "image",
                        method_config: Any = None) -> nn.Module:
        """The generator for `direction`, untrained: BtoA maps out_channels to in_channels.
        `method_config`: the run's method settings, for a method whose generator they shape."""
        if direction == "BtoA":
            return build_generator(model, model.out_channels, model.in_channels, batch_statistics)
        return build_generator(model, batch_statistics=batch_statistics)

    def translation_steps(self, method_config: Any) -> int:
        """How many steps a translation may take, for a method that translates in steps (UNSB);
        0 for one pass."""
        return 0

    def new_run(self, method: str, **sections: Any) -> RunConfig:
        """A new run of this method, named `method`, with its defaults; `sections` replace whole
        sections."""
        epochs, epochs_decay = self.default_schedule
        domain_a, domain_b = self.default_domains
        return RunConfig(method=method, method_config=sections.pop("method_config", self.config()),
                         model=sections.pop("model", self.default_model()),
                         data=sections.pop("data", DataConfig(domain_a=domain_a, domain_b=domain_b)),
                         train=sections.pop("train", TrainConfig(epochs=epochs, epochs_decay=epochs_decay)),
                         **sections)
