"""Download a checkpoint folder (config.json + model.safetensors) from the Hugging Face Hub.

Files land in the standard Hugging Face cache (HF_HOME / HF_HUB_CACHE) with huggingface_hub's
progress bars, so a second call, or a cache copied from another machine, needs no network.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from recon4d.errors import CheckpointError

HF_FILES = ("config.json", "model.safetensors")


def download(repo_id: str, revision: str | None = None) -> Path:
    """Local folder holding `HF_FILES` of `repo_id`; CheckpointError when they cannot be had."""
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(HF_FILES)))
    except LocalEntryNotFoundError:
        reason = ("offline mode is on (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE
                  else "the Hugging Face Hub could not be reached")
    except (RepositoryNotFoundError, RevisionNotFoundError):
        reason = "the Hub has no such repository or revision, or it needs an access token"
    except (HfHubHTTPError, OSError) as exc:
        reason = f"the download failed ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    raise CheckpointError(_cannot_download(repo_id, revision, reason))


def _cannot_download(repo_id: str, revision: str | None, reason: str) -> str:
    """One paragraph: why the weights are unavailable and how to give them locally instead."""
    at, option = (f" at revision {revision!r}", f" --revision {revision}") if revision else ("", "")
    return (
        f"could not download the weights of {repo_id!r}{at}: {reason}, and they are not in the "
        f"local Hugging Face cache ({constants.HF_HUB_CACHE}). Pass a local checkpoint instead "
        "with --weights PATH (in Python: load_model(PATH)), where PATH is an official .pth file "
        "or a Hugging Face folder holding config.json and model.safetensors; or download the "
        f"repository where there is network access (`hf download {repo_id}{option}`) and set "
        "HF_HOME to that cache on this machine (or unset HF_HUB_OFFLINE if it was set by mistake)."
    )
