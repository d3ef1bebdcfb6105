"""Configuration: YAML composition, command-line overrides, validation and ``_target_`` instantiation.

:mod:`.compose` reads files with ``defaults`` lists and overrides, remembering the file that set each key;
:mod:`.validate` checks every key of a composed config before anything is built (targets import, keys exist,
values have the annotated types), naming the key, its file and the closest valid names; :mod:`.targets` decides
what a config may build (a config is data); :mod:`.instantiate` builds it.
"""

from itryon.config.common import COMMAND_LINE, CONFIG_ROOT, RESERVED, ConfigError
from itryon.config.compose import load_config, origin_of
from itryon.config.instantiate import instantiate, to_yaml
from itryon.config.targets import (
    ALLOWED_PACKAGES,
    DENIED_ARGUMENTS,
    DENIED_MODULES,
    PACKAGES_ENV,
    TRUST_ENV,
    allowed_packages,
    import_target,
    targets_trusted,
    trust_targets,
)
from itryon.config.validate import ArgumentsOf, Entries, validate

__all__ = [
    "ALLOWED_PACKAGES",
    "COMMAND_LINE",
    "CONFIG_ROOT",
    "DENIED_ARGUMENTS",
    "DENIED_MODULES",
    "PACKAGES_ENV",
    "RESERVED",
    "TRUST_ENV",
    "ArgumentsOf",
    "ConfigError",
    "Entries",
    "allowed_packages",
    "import_target",
    "instantiate",
    "load_config",
    "origin_of",
    "targets_trusted",
    "to_yaml",
    "trust_targets",
    "validate",
]
