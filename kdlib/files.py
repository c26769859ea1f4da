"""Files written whole or not at all, tensor files read back without running code, and the
content digests that name caches and identify weights and data.

Every checkpoint, cache, record, table and figure kdlib writes goes through `write_atomic`: the
bytes go to a unique temporary file beside the target, which is renamed over it only once
complete. An interrupted or failed write leaves the earlier file as it was and no temporary
file behind, and two processes writing the same path never share a temporary name.

Every tensor file kdlib reads goes through `load_tensors`, with torch's `weights_only`
unpickler: a planted or damaged file can hold tensors and plain values only, never code,
whatever the torch version's default or `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD` says.
"""

from __future__ import annotations

import ast
import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import torch


# mkstemp makes files readable by their owner only; kdlib's files get the usual mode.
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call `write(temporary_path)`, then rename the temporary file to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """The same path, or two byte-identical copies of one file (a checkout and its frozen worktree)."""
    import filecmp
    a, b = Path(a), Path(b)
    return a.resolve() == b.resolve() or (a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def save_tensors(obj, path: str | os.PathLike) -> Path:
    """torch.save of tensors and plain values (dict, list, tuple, str, numbers, None)."""
    return write_atomic(path, lambda tmp: torch.save(obj, tmp))


def load_tensors(path: str | os.PathLike):
    """torch.load that can only rebuild tensors and plain values: never runs code from the file."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_cache(path: str | os.PathLike, what: str, build=lambda held: held):
    """`build(tensors)` of a cache file, or None where there is none or it cannot be read or
    built (truncated, damaged or foreign: the caller computes it again; a warning says so)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return build(load_tensors(path))
    except Exception as error:
        warnings.warn(f"The cached {what} {path} could not be read ({type(error).__name__}: {error}); "
                      "computing them again.", stacklevel=3)
        return None


def digest(*tensors: torch.Tensor) -> str:
    """A short content hash of tensors: their dtype, shape and bytes (the same bytes read as
    another type or shape are other content). Names caches, identifies weights and data."""
    h = hashlib.sha1()
    for tensor in tensors:
        h.update(f"{tensor.dtype} {tuple(tensor.shape)};".encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def weights_digest(model: torch.nn.Module) -> str:
    """The identity of a model's weights and buffers (what records call its "teacher" or
    "weights"); a compiled model's are its original module's."""
    return digest(*getattr(model, "_orig_mod", model).state_dict().values())


def digest_text(*values) -> str:
    """A short hash of plain values (their JSON text, keys sorted): names what they describe."""
    import json
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:]
    return tree


def source_digest(*paths: str | os.PathLike) -> str:
    """A short hash of Python files' code, without their comments and docstrings: an edited
    comment or docstring keeps it, any change to the code changes it."""
    h = hashlib.sha1()
    for path in paths:
        h.update(ast.dump(_without_docstrings(ast.parse(Path(path).read_text()))).encode())
    return h.hexdigest()[:12]


def definitions_digest(source: str, roots) -> str:
    """A short hash of the module-level definitions of `source` (Python code) that `roots`
    (names) use, directly or through each other, without comments and docstrings: the code a
    recipe runs, and none of its neighbours' (a new function or table entry beside it keeps it)."""
    tree = _without_docstrings(ast.parse(source))
    defined = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            defined[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                if isinstance(target, ast.Name):
                    defined[target.id] = node
    used, todo = set(), [r for r in roots if r in defined]
    while todo:
        name = todo.pop()
        if name in used:
            continue
        used.add(name)
        todo += [n.id for n in ast.walk(defined[name])  # names read (a class's field of the same name is not)
                 if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in defined]
    missing = sorted(set(roots) - set(defined))
    if missing:
        raise ValueError(f"definitions_digest: {missing} are not defined at the top of the module.")
    return hashlib.sha1("".join(ast.dump(defined[name]) for name in sorted(used)).encode()).hexdigest()[:12]
