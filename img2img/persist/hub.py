"""Models on the Hugging Face Hub: `hf://user/name[@revision]` wherever a checkpoint is taken.

Only a safetensors model's two files are fetched (`img2img export --format safetensors`), into
the Hub's own cache; nothing downloaded is ever unpickled. `HF_ENDPOINT`, `HF_HOME`, `HF_TOKEN`
and `HF_HUB_OFFLINE=1` (the cache only, no network) apply as in every Hub library.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import Img2ImgError

SCHEME = "hf://"
MODEL_FILES = ("model.safetensors", "config.json")
# Pushed with --with-training-state: what `img2img train --resume hf://...` continues from.
TRAINING_FILES = ("training_state.safetensors", "training_state.json")


def is_hub_reference(text: str | Path) -> bool:
    return str(text).startswith(SCHEME)


def parse_reference(text: str) -> tuple[str, str | None]:
    """("user/name", revision or None) of `hf://user/name[@revision]`."""
    repo, _, revision = str(text).removeprefix(SCHEME).partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise Img2ImgError(f"{text}: a Hub model is hf://USER/NAME or hf://USER/NAME@REVISION")
    return repo, revision or None


def fetch_model(text: str, training_state: bool = False, max_bytes: int | None = None) -> Path:
    """The local folder (in the Hub's cache) holding the model's files at the revision asked for,
    downloaded unless cached; one line naming the repo and the problem otherwise. Only what
    translating needs is fetched, and the training state too with `training_state` (to resume).
    `max_bytes`: refuse files larger than this in all, from the repo's listing, before any is
    downloaded."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, revision = parse_reference(text)
    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
    try:
        wanted = MODEL_FILES + (TRAINING_FILES if training_state else ())
        if max_bytes is not None and not offline:
            listed = HfApi(endpoint=os.environ.get("HF_ENDPOINT")).list_repo_tree(repo, revision=revision)
            size = sum(getattr(entry, "size", 0) or 0 for entry in listed if entry.path in wanted)
            if size > max_bytes:
                raise Img2ImgError(f"{text}: its files take {size / 1e6:,.1f} MB, over the limit of "
                                   f"{max_bytes / 1e6:,.1f} MB for a download (--max-download-mb)")
        folder = Path(snapshot_download(repo, revision=revision, allow_patterns=list(wanted),
                                        endpoint=os.environ.get("HF_ENDPOINT"), local_files_only=offline))
    except RevisionNotFoundError:
        raise Img2ImgError(f"{text}: the repo {repo} has no revision {revision}") from None
    except GatedRepoError:
        raise Img2ImgError(f"{text}: {repo} is gated; accept its terms on the Hub and log in (HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise Img2ImgError(f"{text}: no model repo {repo} (or it is private: log in with HF_TOKEN)") from None
    except LocalEntryNotFoundError:
        raise Img2ImgError(f"{text}: not in the Hub cache, and "
                           + ("HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached")) from None
    except (HfHubHTTPError, OSError) as e:
        raise Img2ImgError(f"{text}: cannot download it ({str(e).splitlines()[0][:200]})") from None
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise Img2ImgError(f"{text}: not an img2img model repo: no {' and no '.join(missing)} "
                           "(push one with img2img export --format safetensors)")
    return folder
