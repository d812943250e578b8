"""``random``: codes that carry no information — the chance level every leaderboard shows.

Each row's code is a keyed hash (BLAKE2b, keyed by the seed and the modality) of the row's
bytes, so it is a fixed pseudo-random function of the input: the same item always gets
the same code, batches do not matter, and codes of different items (or of an item's image
and text) are independent.  Scores are therefore the expected precision of a random
ranking, up to exact duplicates in the data, which share a code.

No paper; no hyper-parameters.  Memory: O(1) beyond the codes.
"""

from __future__ import annotations

import hashlib

import numpy as np

from cmhbench.methods.base import Hasher, PairedFeatures
from cmhbench.methods.registry import register


@register(
    name="random",
    title="Random codes (chance level)",
    authors="cmhbench",
    venue="reference",
    year=2026,
    kind="reference",
    fidelity="paper",
    deterministic=False,
    memory="O(1) beyond the codes",
)
class RandomCodes(Hasher):
    def _fit(self, train: PairedFeatures, n_bits: int) -> None:
        self.salt_ = int(self.seed).to_bytes(8, "little", signed=True)

    def _hash_rows(self, tag: bytes, *blocks: np.ndarray) -> np.ndarray:
        n_bytes = -(-self.n_bits_ // 8)
        out = np.empty((blocks[0].shape[0], n_bytes), dtype=np.uint8)
        for i in range(out.shape[0]):
            row = b"".join(block[i].tobytes() for block in blocks)
            digest, counter = b"", 0
            while len(digest) < n_bytes:
                h = hashlib.blake2b(row, key=self.salt_, person=tag + counter.to_bytes(4, "little"),
                                    digest_size=min(64, n_bytes - len(digest)))
                digest += h.digest()
                counter += 1
            out[i] = np.frombuffer(digest, dtype=np.uint8)
        bits = np.unpackbits(out, axis=1, count=self.n_bits_)
        return bits.astype(np.int8) * 2 - 1

    def _encode_image(self, image: np.ndarray) -> np.ndarray:
        return self._hash_rows(b"image", image)

    def _encode_text(self, text: np.ndarray) -> np.ndarray:
        return self._hash_rows(b"text", text)

    def _encode_pair(self, image: np.ndarray, text: np.ndarray) -> np.ndarray:
        return self._hash_rows(b"pair", image, text)
