"""Data and task generators for every notebook; no module here imports a lecture module.

- :mod:`.files`: the shipped files in ``data/`` (sunspots), checked against their hashes;
- :mod:`.text`: the course's character corpus (Python's help texts) and a character vocabulary;
- :mod:`.names`: surnames by language (05a, 05b); :mod:`.dates`: human dates to ISO (06);
- :mod:`.adding`: the adding problem (03, 04, 09); :mod:`.mackey_glass`: a chaotic series (09);
- :mod:`.synthetic`: word segmentation and reversal built from text (05c);
- :mod:`.padding`: sequences of different lengths into one padded batch.

The shipped-file helpers are re-exported, so ``from course_utils.data import load_sunspots`` works.
"""

from .files import DATA_DIR, DataFileError, data_path, load_sunspots, manifest, sha256_of

__all__ = ["DATA_DIR", "DataFileError", "data_path", "load_sunspots", "manifest", "sha256_of"]
