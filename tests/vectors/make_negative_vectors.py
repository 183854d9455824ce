"""Derive the negative Merkle proof vectors from each happy-path.json (run once; output is committed).

Every negative vector is one corruption of a published happy path, and its file is named
after that corruption. Pure data transformation: no Merkle code is imported, so the
expectations ("valid": false) do not depend on the implementation under test.

    python tests/vectors/make_negative_vectors.py
"""

import json
from pathlib import Path

HERE = Path(__file__).parent / "rfc6962"
OTHER_HASH = "abacaba000000000000000000000000000000000000000000060061e00123456"


def flip(hex_hash: str, bit: int = 3) -> str:
    raw = bytearray(bytes.fromhex(hex_hash))
    raw[0] ^= 1 << bit
    return raw.hex()


def write(directory: Path, name: str, base: dict, description: str, **changes) -> None:
    vector = {**base, **changes, "description": description, "valid": False}
    (directory / f"{name}.json").write_text(json.dumps(vector, indent=2) + "\n")


def inclusion(directory: Path) -> None:
    base = json.loads((directory / "happy-path.json").read_text())
    index, size, proof = base["leaf_index"], base["tree_size"], base["proof"]
    for i in range(len(proof)):
        changed = list(proof)
        changed[i] = flip(proof[i])
        write(directory, f"modified-proof[{i}]-bit", base, f"bit 3 of proof[{i}] flipped", proof=changed)
    write(directory, "wrong-leaf", base, "leaf hash of another leaf", leaf_hash=flip(base["leaf_hash"], 0))
    write(directory, "wrong-index", base, "leaf index off by one",
          leaf_index=index + 1 if index + 1 < size else index - 1 if index else index + 1)
    write(directory, "wrong-size", base, "tree size doubled", tree_size=size * 2)
    write(directory, "wrong-root", base, "root of an unrelated tree", root=OTHER_HASH)
    if proof:
        write(directory, "truncated", base, "last proof hash removed", proof=proof[:-1])
    write(directory, "extended", base, "an extra hash appended to the proof", proof=proof + [base["root"]])


def consistency(directory: Path) -> None:
    base = json.loads((directory / "happy-path.json").read_text())
    proof = base["proof"]
    for i in range(len(proof)):
        changed = list(proof)
        changed[i] = flip(proof[i], 4)
        write(directory, f"modified-proof[{i}]-bit", base, f"bit 4 of proof[{i}] flipped", proof=changed)
    write(directory, "wrong-root1", base, "first root of an unrelated tree", root1=OTHER_HASH)
    write(directory, "wrong-root2", base, "second root of an unrelated tree", root2=OTHER_HASH)
    if base["root1"] != base["root2"]:
        write(directory, "swapped-roots", base, "roots swapped", root1=base["root2"], root2=base["root1"])
    write(directory, "wrong-size1", base, "first size one larger", size1=base["size1"] + 1)
    write(directory, "wrong-size2", base, "second size doubled", size2=base["size2"] * 2)
    if proof:
        write(directory, "truncated", base, "last proof hash removed", proof=proof[:-1])
    write(directory, "extended", base, "an extra hash appended to the proof", proof=proof + [base["root2"]])


if __name__ == "__main__":
    for d in sorted((HERE / "inclusion").iterdir()):
        inclusion(d)
    for d in sorted((HERE / "consistency").iterdir()):
        consistency(d)
