"""Every option of the commands, declared once: option dataclasses and their argparse flags.

Standard library only (no torch, numpy or PIL), so `recon4d --help` builds every sub-command's
flags without importing the heavy modules. A field is declared with `option(default, help, ...)`
(`recon4d.options.fields`); `add_options(parser, Options)` adds its flags (one argument group per
nested dataclass) and `options_from_args(Options, namespace)` builds the dataclass back. Each
dataclass validates itself in `__post_init__` (raising `OptionError`), so the library and the
command line refuse the same values with the same message. `option(..., flag=())` declares a
library-only setting (documented and validated, without a flag). The choices and default names
that help texts need live in `recon4d.options.choices`; the heavy modules import them from there.

A module declaring option dataclasses must stay as light as these (import its choices from
`choices`), or its command's `--help` becomes slow.
"""

from recon4d.options.choices import (
    ATTENTION_PASSES,
    AUTO_GRAPH_WINDOW,
    BACKGROUND_COLOURS,
    BOUNDARY_TOLERANCE,
    CHECKPOINT_HELP,
    CONF_MODES,
    DEFAULT_BLOCK_SIZE,
    DEFAULT_MAX_ITER,
    DEFAULT_WEIGHTS,
    DEPTH_ALIGN_MODES,
    DEPTH_PROTOCOLS,
    DEVICES,
    DISTANCES,
    DTYPES,
    FIT_SPACES,
    FLOW_METHODS,
    GEOMETRIES,
    GRAPH_HELP,
    GT_FORMATS,
    MASK_MODES,
    MATCH_WEIGHTS,
    METRIC_GROUPS,
    MOTION_CHOICES,
    MOTION_METHODS,
    POSE_ALIGN_MODES,
    PREFILTER_HELP,
    RESIZE_METHODS,
    SCALE_SHIFT_FITS,
    SOLVERS,
    TRAJECTORIES,
)
from recon4d.options.evaluation import EvalOptions, max_depth_value
from recon4d.options.fields import (
    OptionSpec,
    add_options,
    at_least,
    check_choices,
    comma_list,
    flag_of,
    off_or_float,
    option,
    options_from_args,
)
from recon4d.options.masks import MasksOptions
from recon4d.options.matching import MatchNetworkOptions, MatchOptions
from recon4d.options.motion import MotionOptions, VideoOptions
from recon4d.options.pipeline import (
    AlignOptions,
    FrameOptions,
    InferOptions,
    NetworkOptions,
    OutputOptions,
    ReconstructOptions,
)
from recon4d.options.slam import Mast3rSlamOptions, Slam3rOptions, SlamOptions
from recon4d.options.synthetic import SynthOptions
from recon4d.options.view import ViewOptions

__all__ = [
    "ATTENTION_PASSES", "FLOW_METHODS", "MOTION_CHOICES", "MOTION_METHODS",
    "add_options", "AlignOptions", "at_least", "AUTO_GRAPH_WINDOW", "BACKGROUND_COLOURS",
    "BOUNDARY_TOLERANCE", "check_choices", "CHECKPOINT_HELP", "comma_list", "CONF_MODES",
    "DEFAULT_BLOCK_SIZE", "DEFAULT_MAX_ITER", "DEFAULT_WEIGHTS", "DEPTH_ALIGN_MODES",
    "DEPTH_PROTOCOLS", "DEVICES", "DISTANCES", "DTYPES", "EvalOptions", "FIT_SPACES", "flag_of",
    "FrameOptions", "GEOMETRIES", "GRAPH_HELP", "GT_FORMATS", "InferOptions", "MASK_MODES",
    "Mast3rSlamOptions", "MasksOptions", "MATCH_WEIGHTS", "MatchNetworkOptions", "MatchOptions",
    "max_depth_value",
    "METRIC_GROUPS", "MotionOptions", "NetworkOptions", "off_or_float", "option",
    "options_from_args", "OptionSpec", "OutputOptions", "POSE_ALIGN_MODES", "PREFILTER_HELP",
    "ReconstructOptions",
    "RESIZE_METHODS", "SCALE_SHIFT_FITS", "Slam3rOptions", "SlamOptions", "SOLVERS",
    "SynthOptions", "TRAJECTORIES",
    "VideoOptions", "ViewOptions",
]
