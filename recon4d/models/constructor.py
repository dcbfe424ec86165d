"""Safe reading of model descriptions: official constructor strings and Hugging Face config.json.

A checkpoint's `args.model` is Python source such as `AsymmetricCroCo3DStereo(enc_depth=24, ...)`.
It is parsed with `ast` and checked against a whitelist, never evaluated: one call to a known
class, keyword arguments only, values built from literals, tuples/lists, `inf` and unary minus.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re

from recon4d.errors import CheckpointError
from recon4d.models.config import ModelConfig

ARCHS = ("AsymmetricCroCo3DStereo", "AsymmetricMASt3R")
# value types by keyword name (SLAM3R's extra keywords included; which names a class accepts is
# decided by the caller of `parse_call`)
INT_FIELDS = {"enc_embed_dim", "enc_depth", "enc_num_heads", "dec_embed_dim", "dec_depth",
              "dec_num_heads", "patch_size", "enc_minibatch", "corr_depth"}
BOOL_FIELDS = {"norm_im2_in_dec", "landscape_only", "two_confs", "need_encoder"}
STR_FIELDS = {"pos_embed", "head_type", "output_mode", "patch_embed_cls", "freeze", "desc_mode",
              "mv_dec1", "mv_dec2", "input_type"}
MODE_FIELDS = {"depth_mode", "conf_mode", "desc_conf_mode"}
KWARGS = {f.name for f in dataclasses.fields(ModelConfig)} - {"arch", "extra"}
INF_TOKENS = {"inf": math.inf, "Infinity": math.inf, "-inf": -math.inf, "-Infinity": -math.inf}


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _checked(name: str, value: object) -> object:
    """The value of constructor keyword `name`, type-checked (CheckpointError otherwise)."""
    ok = True
    if name in INT_FIELDS:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif name in BOOL_FIELDS:
        ok = isinstance(value, bool)
    elif name in STR_FIELDS:
        ok = isinstance(value, str)
    elif name == "mlp_ratio":
        ok = _is_number(value) and value > 0
    elif name == "img_size":
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value, value)
        ok = isinstance(value, tuple) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)
    elif name in MODE_FIELDS:
        if isinstance(value, tuple):
            value = tuple(INF_TOKENS.get(v, v) if i else v for i, v in enumerate(value))
        ok = (value is None and name != "depth_mode") or (
            isinstance(value, tuple) and len(value) == 3 and isinstance(value[0], str)
            and _is_number(value[1]) and _is_number(value[2]))
    if not ok:
        raise CheckpointError(f"model argument {name}={value!r} has the wrong type or form")
    return value


def _literal(node: ast.AST) -> object:
    """Value of a whitelisted literal expression; CheckpointError for anything else."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(
            node.value, (bool, int, float, str))):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.Name) and node.id == "inf":
        return math.inf
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand)
        if _is_number(value):
            return -value
    raise CheckpointError("model constructor: only literal argument values are allowed, found "
                          f"{ast.unparse(node)[:80]!r}")


def parse_constructor(text: str) -> ModelConfig:
    """ModelConfig from an official constructor string, e.g. `AsymmetricMASt3R(enc_depth=24, ...)`.

    Raises CheckpointError for anything but one call of a known class with whitelisted keywords.
    """
    arch, kwargs = parse_call(text, ARCHS, KWARGS)
    return ModelConfig(arch=arch, **kwargs)


def parse_call(text: str, classes: tuple[str, ...], allowed: set[str]) -> tuple[str, dict]:
    """(class name, type-checked keyword arguments) of a constructor string calling one of
    `classes` with keywords from `allowed`; CheckpointError for anything else."""
    if not isinstance(text, str):
        raise CheckpointError(f"model constructor must be a string, got {type(text).__name__}")
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise CheckpointError(f"model constructor is not valid Python call syntax: {exc}") from None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise CheckpointError(f"model constructor must be one call of a model class: {text!r}")
    if call.func.id not in classes:
        raise CheckpointError(f"unknown model class {call.func.id!r} (expected one of {classes})")
    if call.args:
        raise CheckpointError("model constructor: positional arguments are not allowed")
    kwargs: dict[str, object] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise CheckpointError("model constructor: **kwargs expansion is not allowed")
        if kw.arg not in allowed:
            raise CheckpointError(f"model constructor: unknown argument {kw.arg!r}")
        if kw.arg in kwargs:
            raise CheckpointError(f"model constructor: argument {kw.arg!r} given twice")
        try:
            kwargs[kw.arg] = _checked(kw.arg, _literal(kw.value))
        except RecursionError:
            raise CheckpointError(f"model constructor: value of {kw.arg!r} nests too deeply"
                                  ) from None
    return call.func.id, kwargs


def inference_rewrite(text: str) -> str:
    """The official loader's rewrite of a training constructor string for inference.

    `ManyAR_PatchEmbed` becomes `PatchEmbedDust3R`. Without `landscape_only` in the string,
    `, landscape_only=False` goes before the final `)`; with it, all spaces are removed and
    `landscape_only=True` becomes `landscape_only=False`.
    """
    text = text.replace("ManyAR_PatchEmbed", "PatchEmbedDust3R")
    if "landscape_only" not in text:
        end = text.rfind(")")
        if end < 0:
            raise CheckpointError(f"model constructor has no closing parenthesis: {text!r}")
        return text[:end] + ", landscape_only=False" + text[end:]
    return text.replace(" ", "").replace("landscape_only=True", "landscape_only=False")


def _from_json(value: object) -> object:
    """JSON lists -> tuples (recursively); other values unchanged."""
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    return value


def config_from_hf(d: dict) -> ModelConfig:
    """ModelConfig from a Hugging Face `config.json` dict (constructor kwargs as JSON).

    Unknown keys are kept in `extra`; the class is AsymmetricMASt3R when the output mode carries
    descriptors (`pts3d+desc<D>`) or the head is `catmlp+dpt`, else AsymmetricCroCo3DStereo.
    """
    kwargs, extra = hf_kwargs(d, KWARGS)
    mast3r = kwargs.get("head_type") == "catmlp+dpt" or bool(
        re.fullmatch(r"pts3d\+desc\d+", str(kwargs.get("output_mode", ""))))
    return ModelConfig(arch=ARCHS[1] if mast3r else ARCHS[0], extra=extra, **kwargs)


def hf_kwargs(d: dict, allowed: set[str]) -> tuple[dict, dict]:
    """(type-checked constructor kwargs among `allowed`, other entries) of a config.json dict."""
    if not isinstance(d, dict):
        raise CheckpointError(f"config.json must hold a JSON object, got {type(d).__name__}")
    kwargs = {k: _checked(k, _from_json(v)) for k, v in d.items() if k in allowed}
    return kwargs, {k: v for k, v in d.items() if k not in allowed}
